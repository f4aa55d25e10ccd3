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
