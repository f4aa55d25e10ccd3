"""Loading models with transformers' ``from_pretrained``, shared by every model source."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from tuning_bench.api.errors import UsageError
from tuning_bench.api.kinds import ModelKind, TaskKind
from tuning_bench.api.model import LoadedModel, ModelSource
from tuning_bench.models.quantization import load_arguments

# Architectures whose config also maps to a *ForCausalLM class in transformers but which are encoders.
_ENCODER_TYPES = {"bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2", "xlm-roberta",
                  "mpnet", "camembert", "modernbert", "ernie", "nomic_bert"}


def infer_kind(config: Any) -> ModelKind:
    """Decide whether a transformers config describes a causal LM or an encoder."""
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in architectures):
        return ModelKind.CAUSAL_LM
    if config.model_type in _ENCODER_TYPES:
        return ModelKind.ENCODER
    return ModelKind.CAUSAL_LM


def _remote_code_error(name: str, exc: Exception) -> UsageError:
    return UsageError(
        f"model '{name}' needs custom code from its repository, which tbench does not run by default; "
        f"pass --trust-remote-code if you trust it ({type(exc).__name__})"
    )


def load_pretrained(
    location: str | Path,
    *,
    kind: ModelKind,
    task_kind: TaskKind,
    labels: tuple[str, ...] = (),
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """Load model and tokenizer in fp32 (the engine casts or autocasts later).

    Encoders get a sequence-classification head sized by ``labels``; causal LMs their LM head. A
    tokenizer without a pad token pads with its end-of-sequence token.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    common = {"trust_remote_code": trust_remote_code, **kwargs}
    quantized = load_arguments()  # --base-quant: bitsandbytes config and device placement, for the model only
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **common)
        if kind is ModelKind.ENCODER:
            if task_kind is not TaskKind.CLASSIFICATION:
                raise UsageError(f"model '{location}' is an encoder; it can only run classification tasks")
            model = AutoModelForSequenceClassification.from_pretrained(
                location,
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={label: i for i, label in enumerate(labels)},
                dtype=torch.float32,
                **common,
                **quantized,
            )
        else:
            model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32, **common, **quantized)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise _remote_code_error(str(location), exc) from None
        raise
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


class PretrainedSource(ModelSource):
    """Any Hugging Face model id (needs the network once) or a local folder, through ``from_pretrained``."""

    description = "A Hugging Face model id or a local model folder"

    def __init__(self, location: str, revision: str | None = None, trust_remote_code: bool = False):
        self.name = location
        self.location = location
        self.revision = revision
        self.trust_remote_code = trust_remote_code  # False, never None: None makes transformers ask on stdin
        self._kind: ModelKind | None = None

    @property
    def kind(self) -> ModelKind:  # type: ignore[override]
        if self._kind is None:
            from transformers import AutoConfig

            local = is_local_path(self.location)
            if local:
                check_model_folder(self.location)
            try:
                try:
                    config = AutoConfig.from_pretrained(self.location, revision=self.revision, local_files_only=True,
                                                        trust_remote_code=self.trust_remote_code)
                except OSError:
                    if local:
                        raise
                    hub_reachable_or_fail(self.location)  # seconds, not the ~25 s of retries when offline
                    config = AutoConfig.from_pretrained(self.location, revision=self.revision,
                                                        trust_remote_code=self.trust_remote_code)
            except ValueError as exc:
                if "trust_remote_code" in str(exc):
                    raise _remote_code_error(self.location, exc) from None
                if local:
                    raise UsageError(f"--model {self.location}: not a model folder transformers can read "
                                     f"({str(exc).splitlines()[0]})") from None
                raise
            except OSError as exc:
                raise UsageError(f"could not load model '{self.location}': {str(exc).splitlines()[0]}") from None
            if local:  # after the config, so a model that needs remote code is told so first
                check_model_weights(self.location)
            self._kind = infer_kind(config)
        return self._kind

    def load(self, *, task_kind: TaskKind, labels: tuple[str, ...] = (), trust_remote_code: bool = False) -> LoadedModel:
        extra = {"revision": self.revision} if self.revision else {}
        model, tokenizer = load_pretrained(self.location, kind=self.kind, task_kind=task_kind, labels=labels,
                                           trust_remote_code=trust_remote_code or self.trust_remote_code, **extra)
        return LoadedModel(model, tokenizer, self.kind, self.name, self.fingerprint())

    def prepare(self, force: bool = False) -> None:
        """Download (online) or check the model's config, so that cells load from the local cache."""
        _ = self.kind

    def fingerprint(self) -> str:
        path = Path(self.location)
        if path.is_dir():
            # A local folder is identified by its files' names, sizes and modification times.
            stats = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in path.iterdir() if p.is_file())
            return f"{self.location}:{hashlib.sha256(repr(stats).encode()).hexdigest()[:12]}"
        return f"{self.location}@{self.revision or 'main'}"


def looks_like_pretrained(name: str) -> bool:
    """Whether a --model value names a local folder or a hub id (``org/model``) rather than a registered name."""
    return os.path.isdir(name) or "/" in name or is_local_path(name)


def is_local_path(name: str) -> bool:
    """Whether a --model value is written as a path (./x, ../x, /x, ~/x) or names an existing folder."""
    return name.startswith(("./", "../", "/", "~", ".\\")) or name in (".", "..") or os.path.isdir(name)


_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json", "*.pt", "*.gguf")


def check_model_folder(location: str) -> None:
    """Refuse, in one line, a --model folder that is missing, empty or lacks config.json."""
    folder = Path(location).expanduser()
    if not folder.exists():
        raise UsageError(f"--model {location}: the folder does not exist; check the path (a hub model is written org/name)")
    if not folder.is_dir():
        raise UsageError(f"--model {location}: not a folder; give the folder that holds config.json and the weights")
    if not (folder / "config.json").is_file():
        what = "is empty" if not any(folder.iterdir()) else "has no config.json"
        raise UsageError(f"--model {location}: the folder {what}; give a folder written by save_pretrained "
                         "(config.json, tokenizer files and weights)")


def check_model_weights(location: str) -> None:
    """Refuse, in one line, a --model folder with a config but no weight files."""
    folder = Path(location).expanduser()
    if not any(next(folder.glob(pattern), None) for pattern in _WEIGHT_PATTERNS):
        raise UsageError(f"--model {location}: no weights in the folder (model.safetensors or pytorch_model.bin); "
                         "copy them there or save the model again with save_pretrained")


HUB_PROBE_SECONDS = 3.0


def hub_reachable_or_fail(name: str) -> None:
    """Fail at once, with the fix, when a hub model is not cached and the hub cannot be reached.

    ``HF_HUB_OFFLINE`` is honoured; otherwise one TCP connection to the hub host decides (a proxy, which
    a direct connection would not use, leaves the decision to the hub library).
    """
    import socket
    import urllib.parse

    fix = (f"download it once while online (any tbench run with --model {name}), "
           "or give a local folder written by save_pretrained")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise UsageError(f"model '{name}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; {fix}")
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    endpoint = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=HUB_PROBE_SECONDS).close()
    except OSError as exc:
        raise UsageError(f"model '{name}' is not in the local Hugging Face cache and {host} cannot be reached "
                         f"({exc.strerror or type(exc).__name__}); {fix}") from None
