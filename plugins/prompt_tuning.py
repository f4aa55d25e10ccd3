"""Prompt tuning: a trainable soft prompt of virtual tokens in front of the input; the model stays frozen."""

from tuning_bench import Option, hookimpl
from tuning_bench.api.method import SOFT_PROMPT, learning_rate, peft_task_type
from tuning_bench.api.peft_method import PeftMethod


class PromptTuning(PeftMethod):
    name = "prompt"
    family = SOFT_PROMPT
    description = "Prompt tuning: learn num_virtual_tokens soft-prompt embeddings; all model weights frozen."
    paper = "Lester, Al-Rfou & Constant 2021, The Power of Scale for Parameter-Efficient Prompt Tuning"
    decoding = "soft-prompt"  # virtual tokens in front of the input: the engine's exact decoding loop
    options = (
        Option("num_virtual_tokens", int, 20, "Length of the soft prompt.", minimum=1, maximum=512,
               source="Lester et al. 2021: gains level off around 20 tokens"),
        Option("init", str, "text", "Initialisation: text (embeddings of init_text), vocab (sampled "
               "vocabulary embeddings) or random.", choices=("text", "vocab", "random"),
               source="Lester et al. 2021: vocabulary/class-label init beats random; PEFT's guide uses text"),
        Option("init_text", str, "", "Text for init=text; empty means the task's instruction.",
               source="PEFT prompt-tuning guide (task description as init text)"),
        learning_rate(3e-2, "PEFT prompt-tuning causal-LM guide (3e-2 with AdamW), confirmed best of 1e-2/3e-2/9e-2 "
                            "by results/sweep-lr-cpu; Lester et al. 2021 used 0.3 with Adafactor: soft prompts need "
                            "rates far above weight fine-tuning; "
                            "trains without diverging at 48 and 240 steps (results/lr-5x-cpu)"),
    )

    def peft_config(self, loaded, task, config):
        from peft import PromptTuningConfig, PromptTuningInit  # imported here: listing methods must not load torch

        init = {"text": PromptTuningInit.RANDOM, "vocab": PromptTuningInit.SAMPLE_VOCAB,
                "random": PromptTuningInit.RANDOM}[config["init"]]
        return PromptTuningConfig(task_type=peft_task_type(loaded), num_virtual_tokens=config["num_virtual_tokens"],
                                  prompt_tuning_init=init)

    def adapt(self, loaded, task, config):
        model = super().adapt(loaded, task, config)
        if config["init"] == "text":
            init_from_text(model, loaded.tokenizer, config["init_text"] or task.instruction or task.name)
        return model


def init_from_text(model, tokenizer, text):
    """Set the soft prompt to the embeddings of ``text``'s tokens, repeated or cut to the prompt length.

    Done here rather than through PEFT's TEXT init, which needs a tokenizer path, not a tokenizer.
    """
    import torch

    embedding = model.prompt_encoder[model.active_adapter].embedding
    length = embedding.weight.shape[0]
    ids = tokenizer(text, add_special_tokens=False).input_ids or [tokenizer.eos_token_id]
    ids = (ids * (length // len(ids) + 1))[:length]
    with torch.no_grad():
        words = model.get_base_model().get_input_embeddings()(torch.tensor(ids, device=embedding.weight.device))
        embedding.weight.copy_(words)


@hookimpl
def register_methods(register):
    register(PromptTuning())
