"""Tiny random models with tokenizers built offline: for fast unit tests of the engine and plugins only.

They are never used for a result a user sees. Register them in a test (or a plugin's own tests) with
``tuning_bench.host.plugins.register_module("tuning_bench.testing")``, which makes ``tiny-llama`` and
``tiny-bert`` available by name, also inside cell processes.
"""

from __future__ import annotations

import functools
from typing import Any

from tuning_bench.api.hookspecs import hookimpl
from tuning_bench.api.kinds import ModelKind, TaskKind
from tuning_bench.api.model import LoadedModel, ModelSource
from tuning_bench.api.task import Task

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "Features: wireless earbuds, 8-hour battery, touch controls",
    "Compact wireless earbuds with an 8-hour battery and simple touch controls.",
    "The review says the blender is loud but powerful. positive negative",
    '{"product": "water bottle", "brand": "Aqualine", "color": "blue", "capacity": "750 ml"}',
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,:;!?'\"-()[]{}/%&+=*#@_",
    "the a an and with for of to in on is it this that great good bad not very made from steel cotton",
]


@functools.lru_cache(maxsize=4)
def _tokenizer_object(kind: str, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=["<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    else:
        # Built by hand, not by WordPieceTrainer: that trainer breaks ties between equally frequent merges
        # in hash order, which differs from process to process, so the tiny BERT's vocabulary (and every
        # loss measured on it) changed between test runs.
        normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
        words = sorted({word for line in _CORPUS
                        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line))})
        chars = sorted({c for word in words for c in word})
        tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
        tokens += [w for w in words if w not in tokens][: max(0, vocab_size - len(tokens))]
        tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
        tokenizer.normalizer = normalizer
        tokenizer.pre_tokenizer = pre_tokenizer
        tokenizer.decoder = decoders.WordPiece()
        return tokenizer.to_str()
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tokenizer.to_str()


def tiny_tokenizer(kind: str = "bpe", chat: bool = True, vocab_size: int = 400) -> Any:
    """A fast tokenizer trained on a few lines of product text: byte-level BPE ("bpe") or WordPiece ("wordpiece")."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(_tokenizer_object(kind, vocab_size))
    if kind == "bpe":
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend, eos_token="<|im_end|>" if chat else "<|endoftext|>", pad_token="<|pad|>",
            bos_token="<|endoftext|>",
        )
        if chat:
            tokenizer.chat_template = CHATML
        return tokenizer
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )


def tiny_llama(tokenizer: Any, hidden: int = 32, layers: int = 2, seed: int = 0, init_std: float = 0.2) -> Any:
    """A randomly initialised two-layer Llama sized to the tokenizer.

    The initialisation is wider than transformers' 0.02 so that greedy output depends on the input
    (at 0.02 a model this small repeats one token whatever it reads, which hides generation bugs).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
        initializer_range=init_std,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval()


def trained_looking_lora(model: Any, std: float = 0.5) -> Any:
    """Draw a PEFT LoRA model's B matrices: at initialisation they are zero, so the adapter's output would be
    the base model's and a test comparing two ways of computing it could not tell them apart."""
    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, std)
    return model


def tiny_lora_llama(tokenizer: Any, seed: int = 3) -> Any:
    """``tiny_llama`` with LoRA (r 4 on q and v) whose B matrices are drawn, as after training; in eval mode."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(tokenizer, seed=seed), LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8,
                                                                        target_modules=["q_proj", "v_proj"]))
    return trained_looking_lora(model).eval()


def tiny_bert(tokenizer: Any, labels: tuple[str, ...], hidden: int = 32, layers: int = 2, seed: int = 0,
              init_std: float = 0.2) -> Any:
    """A randomly initialised two-layer BERT with a sequence-classification head (wide init, as tiny_llama)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, max_position_embeddings=512, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
        pad_token_id=tokenizer.pad_token_id, initializer_range=init_std,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,  # deterministic training in tests
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config).eval()


class TinyLlama(ModelSource):
    name = "tiny-llama"
    description = "Random 2-layer Llama with an offline BPE tokenizer and a chat template (tests only)"
    kind = ModelKind.CAUSAL_LM

    def load(self, *, task_kind: TaskKind, labels: tuple[str, ...] = (), trust_remote_code: bool = False) -> LoadedModel:
        tokenizer = tiny_tokenizer("bpe", chat=True)
        return LoadedModel(tiny_llama(tokenizer), tokenizer, self.kind, self.name, self.fingerprint())

    def fingerprint(self) -> str:
        return "tiny-llama:v1"


class TinyBert(ModelSource):
    name = "tiny-bert"
    description = "Random 2-layer BERT with an offline WordPiece tokenizer (tests only)"
    kind = ModelKind.ENCODER

    def load(self, *, task_kind: TaskKind, labels: tuple[str, ...] = (), trust_remote_code: bool = False) -> LoadedModel:
        tokenizer = tiny_tokenizer("wordpiece", chat=False, vocab_size=300)
        return LoadedModel(tiny_bert(tokenizer, labels), tokenizer, self.kind, self.name, self.fingerprint())

    def fingerprint(self) -> str:
        return "tiny-bert:v2"  # v2: a vocabulary that is the same in every process


@hookimpl
def register_models(register):
    register(TinyLlama())
    register(TinyBert())


_COLORS = ["red", "blue", "green", "black", "white", "grey", "pink", "brown"]
_THINGS = ["mug", "shirt", "lamp", "bottle", "chair", "bag", "watch", "kettle"]


def _tiny_generation_splits() -> dict[str, list[dict[str, str]]]:
    rows = [{"features": f"{c} {t}", "description": f"A {c} {t} for you."} for c in _COLORS for t in _THINGS]
    return {"train": rows[:48], "validation": rows[48:56], "test": rows[56:64]}


def _tiny_classification_splits() -> dict[str, list[dict[str, str]]]:
    good, bad = ["great", "lovely", "good", "fine"], ["awful", "broken", "bad", "poor"]
    rows = []
    for i, thing in enumerate(_THINGS * 2):
        rows.append({"review": f"The {thing} is {good[i % 4]}.", "label": "positive"})
        rows.append({"review": f"The {thing} is {bad[i % 4]}.", "label": "negative"})
    return {"train": rows[:20], "validation": rows[20:26], "test": rows[26:32]}


TINY_GENERATION = Task(
    name="tiny-gen", description="Tiny learnable generation task (tests only)", kind=TaskKind.GENERATION,
    instruction="Describe the product.", input_template="Features: {features}", target_template="{description}",
    load_splits=_tiny_generation_splits, metrics=("rouge_l",), headline="rouge_l", max_new_tokens=8,
)
TINY_CLASSIFICATION = Task(
    name="tiny-cls", description="Tiny learnable sentiment task (tests only)", kind=TaskKind.CLASSIFICATION,
    instruction="Is the review positive or negative?", input_template="Review: {review}", target_template="{label}",
    load_splits=_tiny_classification_splits, metrics=("accuracy", "macro_f1"), headline="accuracy",
    labels=("negative", "positive"), max_new_tokens=4,
)


@hookimpl
def register_tasks(register):
    register(TINY_GENERATION)
    register(TINY_CLASSIFICATION)


# Bytes a safetensors file may hold beyond its tensors: a JSON header naming each tensor with its
# dtype, shape and offsets (~100 bytes each for names like model.layers.0.self_attn.q_proj.weight),
# plus the format's metadata.
METADATA_BYTES = 1024
METADATA_BYTES_PER_TENSOR = 256

_SOURCES = {"tiny-llama": TinyLlama, "tiny-bert": TinyBert}
_TASKS = {"tiny-gen": TINY_GENERATION, "tiny-cls": TINY_CLASSIFICATION}


def _weight_bytes(directory: Any) -> tuple[int, int]:
    """Bytes of the ``*.safetensors`` files in ``directory``, and how many of them are headers (metadata)."""
    files = list(directory.rglob("*.safetensors"))
    headers = sum(8 + int.from_bytes(path.read_bytes()[:8], "little") for path in files)  # u64 length, then JSON
    return sum(path.stat().st_size for path in files), headers


def check_method(method: Any, model: str = "tiny-llama", task: str = "tiny-gen", *, learning_rate: float | None = None,
                 options: dict[str, Any] | None = None, steps: int = 40, saved: str = "trained",
                 directory: Any = None, min_drop: float = 0.2, rewrites_base: bool = False) -> dict[str, Any]:
    """The contract every method keeps, checked on a tiny model; raises AssertionError naming what broke.

    For a plugin's own tests: ``check_method(MyMethod(), "tiny-bert", "tiny-cls", learning_rate=1e-2)``.
    It adapts the model as the engine does (an encoder's head trains too) and checks that:
      - ``not_applicable_to`` accepts the tiny model;
      - training one repeated batch for ``steps`` steps lowers the loss by ``min_drop`` (20 %) or more (pass
        a ``learning_rate`` that moves a random two-layer model that fast, often ~10x the default; a method
        that can only choose among vocabulary tokens, such as a hard prompt, moves it less);
      - every parameter that was frozen is bit-identical afterwards (the method changed only its own);
      - ``save_state`` then ``load_state`` onto a freshly loaded model (other random weights for anything
        the state fails to restore) gives the same outputs;
      - the saved ``*.safetensors`` bytes equal the trained tensors' bytes plus the files' headers, which
        stay within a small bound (``METADATA_BYTES`` + ``METADATA_BYTES_PER_TENSOR`` each) (``saved="derived"``: at most that, for PEFT methods that store tensors computed from
        the trained ones, such as the prefix of a reparameterization MLP; ``saved="none"``: no tensors at all,
        for a state that is text or token ids, such as a trained hard prompt);
      - on a causal LM, the generation guard passes with the method's declared ``decoding``.
    ``rewrites_base``: the method rewrites frozen weights once, when it adapts (PiSSA leaves the residual
    W - B·A in the base weight): frozen parameters are then compared with their values after ``adapt``, and
    ``report["rewritten"]`` names those that ``adapt`` changed.
    ``directory``: where to write the state (a temporary folder by default). Returns the measured figures.
    """
    import tempfile
    from pathlib import Path

    import torch

    from tuning_bench.engine.data import encode_task
    from tuning_bench.engine.generation import GenerationSettings, eos_ids_for, generation_guard, pick_guard_prompts
    from tuning_bench.engine.head import adapt_for_training
    from tuning_bench.engine.prompting import resolve_format
    from tuning_bench.engine.trainer import TrainConfig, make_feeder, train

    source, task_obj = _SOURCES[model](), _TASKS[task]
    overrides = dict(options or {})
    if learning_rate is not None:
        overrides["learning_rate"] = learning_rate
    config = method.resolve_config(overrides)
    torch.manual_seed(0)
    loaded = source.load(task_kind=task_obj.kind, labels=task_obj.labels)
    reason = method.not_applicable_to(loaded, task_obj, config)
    assert reason is None, f"{method.name} is not applicable to {model}: {reason}"
    base = [(name, p, p.detach().clone()) for name, p in loaded.model.named_parameters()]
    torch.manual_seed(0)
    adapted = adapt_for_training(method, loaded, task_obj, config)
    rewritten = [name for name, p, copy in base if not torch.equal(copy, p.detach())]
    if rewrites_base:  # training must still leave every frozen weight as adapt left it
        base = [(name, p, p.detach().clone()) for name, p, _ in base]
    fmt = resolve_format(loaded.tokenizer) if loaded.kind is ModelKind.CAUSAL_LM else None
    encoded = encode_task(task_obj, loaded.tokenizer, loaded.kind, fmt, [], 512)
    feeder = make_feeder(adapted, loaded.kind, loaded.tokenizer.pad_token_id, torch.device("cpu"), None)
    report: dict[str, Any] = {"first_loss": None, "last_loss": None, "rewritten": rewritten}
    if method.trains:
        examples = encoded.splits["train"][:4]  # one repeated batch: learnable by any method
        log = train(adapted, examples, [], feeder,
                    TrainConfig(steps=steps, batch_size=4, learning_rate=config["learning_rate"], seed=0),
                    param_groups=method.parameter_groups(adapted, config), step_hook=method.on_step)
        first, last = sum(log.train_loss[:3]) / 3, sum(log.train_loss[-3:]) / 3
        report.update(first_loss=first, last_loss=last)
        assert last < (1 - min_drop) * first, f"{method.name} did not learn on {model}: loss {first:.3f} -> {last:.3f}"
    frozen_changed = [name for name, p, copy in base if not p.requires_grad and not torch.equal(copy, p.detach())]
    assert not frozen_changed, f"{method.name} changed frozen parameters: {frozen_changed[:5]}"
    report["changed"] = [name for name, p, copy in base if not torch.equal(copy, p.detach())]
    report["base_parameters"] = len(base)
    trainable = [p for p in adapted.parameters() if p.requires_grad]
    report["trained_bytes"] = sum(p.numel() * p.element_size() for p in trainable)

    adapted.eval()
    with tempfile.TemporaryDirectory() as scratch:
        state_dir = Path(directory or scratch)
        state_dir.mkdir(parents=True, exist_ok=True)
        report["state_kind"] = method.save_state(adapted, state_dir)
        report["saved_bytes"], report["metadata_bytes"] = _weight_bytes(state_dir)
        torch.manual_seed(1)  # other random weights: whatever the state does not restore shows up below
        fresh = source.load(task_kind=task_obj.kind, labels=task_obj.labels)
        reloaded = method.load_state(fresh, task_obj, config, state_dir).eval()
    data_bytes = report["saved_bytes"] - report["metadata_bytes"]
    assert report["metadata_bytes"] <= METADATA_BYTES + METADATA_BYTES_PER_TENSOR * max(len(trainable), 1), (
        f"{method.name}: {report['metadata_bytes']} bytes of safetensors headers for {len(trainable)} tensors")
    if saved == "none":
        assert report["saved_bytes"] == 0, f"{method.name} saved {report['saved_bytes']} bytes of tensors, expected none"
    elif saved == "trained" or not method.trains:
        assert data_bytes == report["trained_bytes"], (
            f"{method.name} saved {data_bytes} bytes of tensors for {report['trained_bytes']} trained bytes")
    else:
        assert 0 < data_bytes <= report["trained_bytes"], (
            f"{method.name} saved {data_bytes} bytes of tensors for {report['trained_bytes']} trained bytes")
    batch = feeder.batch(encoded.splits["test"][:4])
    with torch.no_grad():
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        torch.testing.assert_close(reloaded(**inputs).logits, adapted(**inputs).logits, rtol=1e-5, atol=1e-5,
                                   msg=lambda m: f"{method.name}: the reloaded state gives other outputs ({m})")

    if loaded.kind is ModelKind.CAUSAL_LM:
        settings = GenerationSettings(max_new_tokens=8, eos_ids=eos_ids_for(loaded.tokenizer, loaded.model, fmt.answer_end),
                                      pad_id=loaded.tokenizer.pad_token_id, batch_size=4, decoding=method.decoding_for(config),
                                      device=torch.device("cpu"))
        guard = generation_guard(adapted, pick_guard_prompts([e.prompt_ids for e in encoded.splits["test"]], 3), settings)
        assert guard.passed, f"{method.name}: {guard.detail}"
        report["guard"] = guard.as_record()
    return report
