"""Quantized bases (``--base-quant nf4|int8``): the base model's linear weights loaded by bitsandbytes
through transformers' ``from_pretrained``, so that a LoRA cell is a QLoRA-style cell.

- ``nf4``: 4-bit NormalFloat with double quantization, the QLoRA recipe (Dettmers et al. 2023); the
  matmuls compute in bf16 when the cell runs in bf16, else in fp32.
- ``int8``: LLM.int8() (Dettmers et al. 2022), 8-bit weights with outliers kept in 16 bits.

Only the linear layers are quantized; embeddings, norms and the LM head stay in fp32, as
``load_pretrained`` loads them. A cell whose device or installation cannot do it is not applicable, with
the reason (``unavailable``: bitsandbytes missing, or a short probe of it on the cell's device fails),
before anything is loaded. Loading goes through ``load_pretrained``, which
every built-in source and ``PretrainedSource`` use: ``quantized_loading`` hands it the bitsandbytes config
for the duration of one load, and the cell checks afterwards that the model did come back quantized (a
third-party source that loads otherwise is not applicable rather than silently unquantized).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

BASE_QUANTS = ("nf4", "int8")

# Extra from_pretrained keyword arguments for the load in progress (empty: an ordinary fp32 load).
_LOAD_ARGUMENTS: ContextVar[dict[str, Any]] = ContextVar("tbench_quantized_load", default={})


def unavailable(quant: str, device: Any) -> str | None:
    """Why a cell on ``device`` cannot load a ``quant`` base here, or None when it can.

    Whether bitsandbytes supports a quantization on a device changes from release to release (its CPU
    backend ran nf4 and int8 in 0.50.2 here; older releases were CUDA only), so a short probe decides: one
    small quantized linear layer, placed on the device and run once.
    """
    if importlib.util.find_spec("bitsandbytes") is None:
        return f"--base-quant {quant} needs bitsandbytes, which is not installed here (pip install bitsandbytes)"
    try:
        _probe(quant, device)
    except Exception as exc:  # any failure of the backend is a reason, never a crash of the cell
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return (f"--base-quant {quant}: bitsandbytes {_version()} cannot run {quant} on {device.type} here "
                f"({type(exc).__name__}: {first})")
    return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bitsandbytes")
    except PackageNotFoundError:  # importable without its metadata (a bare copy on the path)
        return "(version unknown)"


def _probe(quant: str, device: Any) -> None:
    import bitsandbytes
    import torch

    if quant == "nf4":
        layer = bitsandbytes.nn.Linear4bit(64, 64, compute_dtype=torch.float32, quant_type="nf4")
    else:
        layer = bitsandbytes.nn.Linear8bitLt(64, 64, has_fp16_weights=False)
    layer = layer.to(device)  # bitsandbytes quantizes the weight as it is placed
    with torch.no_grad():
        layer(torch.randn(2, 64, device=device))


def bitsandbytes_config(quant: str, compute_dtype: Any) -> Any:
    """The transformers ``BitsAndBytesConfig`` for ``quant`` (one of ``BASE_QUANTS``)."""
    from transformers import BitsAndBytesConfig

    if quant == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype)
    if quant == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"unknown base quantization {quant!r}; expected one of {', '.join(BASE_QUANTS)}")


@contextmanager
def quantized_loading(quant: str | None, device: Any, compute_dtype: Any) -> Iterator[None]:
    """Within this context ``load_pretrained`` loads quantized onto ``device`` (bitsandbytes quantizes the
    weights as from_pretrained places them). ``quant`` None: nothing changes."""
    if quant is None:
        yield
        return
    token = _LOAD_ARGUMENTS.set({"quantization_config": bitsandbytes_config(quant, compute_dtype),
                                 "device_map": {"": _placement(device)}})
    try:
        yield
    finally:
        _LOAD_ARGUMENTS.reset(token)


def _placement(device: Any) -> Any:
    """Where from_pretrained puts every weight: a CUDA device's index (the current one for plain "cuda")."""
    if device.type != "cuda":
        return device.type
    if device.index is not None:
        return device.index
    import torch

    return torch.cuda.current_device()


def load_arguments() -> dict[str, Any]:
    """The extra ``from_pretrained`` arguments of the load in progress (``load_pretrained`` reads them)."""
    return dict(_LOAD_ARGUMENTS.get())
