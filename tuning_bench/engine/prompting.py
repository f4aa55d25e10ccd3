"""How an example becomes model input: one format shared by every method on a task.

Every method sees the same text for an example: the task's instruction, then (for few-shot only)
worked examples, then the input. With a causal LM that has a chat template the instruction is the
system turn and the input a user turn; otherwise a plain "instruction / input / Output:" layout is
used. Methods differ only in what they add: soft prompts, prefixes, weights, or worked examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuning_bench.api.errors import UsageError

PLAIN_ANSWER_CUE = "Output:"


@dataclass(frozen=True)
class PromptFormat:
    """A resolved prompt style for one tokenizer: "chat" or "plain"."""

    style: str
    answer_end: str  # text that closes an answer (end of turn, or the end-of-sequence token)

    def prompt(self, tokenizer: Any, instruction: str, shots: Sequence[tuple[str, str]], text: str) -> str:
        """The full prompt text up to where the answer starts."""
        if self.style == "chat":
            messages = _chat_messages(instruction, shots, text)
            try:
                return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            except Exception:  # templates without a system role: fold the instruction into the first user turn
                messages = _chat_messages("", shots, text)
                messages[0]["content"] = f"{instruction}\n\n{messages[0]['content']}" if instruction else messages[0]["content"]
                return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        parts = [instruction] if instruction else []
        parts += [f"{shot_input}\n{PLAIN_ANSWER_CUE} {shot_target}" for shot_input, shot_target in shots]
        parts.append(f"{text}\n{PLAIN_ANSWER_CUE}")
        return "\n\n".join(parts)

    def answer(self, target: str) -> str:
        """The answer text the model is trained to produce, including its end marker."""
        prefix = " " if self.style == "plain" else ""
        return f"{prefix}{target}{self.answer_end}"


def _chat_messages(instruction: str, shots: Sequence[tuple[str, str]], text: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": instruction}] if instruction else []
    for shot_input, shot_target in shots:
        messages += [{"role": "user", "content": shot_input}, {"role": "assistant", "content": shot_target}]
    messages.append({"role": "user", "content": text})
    return messages


def _chat_answer_end(tokenizer: Any) -> str:
    """The text a chat template puts after an assistant message (e.g. "<|im_end|>")."""
    probe = [{"role": "user", "content": "x"}]
    marker = "ANSWER"
    asked = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(probe + [{"role": "assistant", "content": marker}], tokenize=False)
    if not full.startswith(asked + marker):
        return tokenizer.eos_token or ""
    return full[len(asked) + len(marker):].rstrip("\n") or (tokenizer.eos_token or "")


def resolve_format(tokenizer: Any, requested: str = "auto") -> PromptFormat:
    """Pick the prompt style: "auto" uses the chat template when the tokenizer has one."""
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if requested == "chat" and not has_chat:
        raise UsageError("--prompt-format chat: this model's tokenizer has no chat template; use --prompt-format plain")
    style = "chat" if requested == "chat" or (requested == "auto" and has_chat) else "plain"
    end = _chat_answer_end(tokenizer) if style == "chat" else (tokenizer.eos_token or "")
    return PromptFormat(style, end)
