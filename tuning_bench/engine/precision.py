"""Choose the precision a run computes in: bf16 autocast where it is measured to be faster, fp32 elsewhere.

Whether bf16 pays on a CPU depends on the CPU: with AMX or AVX512-BF16 a bf16 matmul can be several
times faster than fp32; without them it can be ~50x slower. CPU flags are only a hint, so a short
probe decides: it times a layer-sized matmul under ``torch.autocast(bfloat16)`` against the same
matmul in fp32, alternating the two (best of several rounds, so a burst of load from another process
hits both alike). The autocast path includes the weight casts autocast pays on every call, as a run
does. The probe runs on one thread: it asks what the CPU's kernels can do, and on a shared machine a
multi-threaded matmul measures the neighbours instead (on a busy 2-core EPYC, 2-thread bf16 flipped
between 6x faster and 2x slower than fp32 from one probe to the next, while 1-thread stayed at 2-3x).
The measured ratio is cached per machine (CPU name, CPU flags, torch version) in the tbench cache
dir, so later runs pay nothing; delete the file to measure again.

CUDA keeps its own rule: bf16 where the device supports it. fp32 asked for is never probed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# bf16 is chosen automatically only when the probe's matmul is this much faster than fp32: the gain
# a whole training step sees is smaller than a matmul's (casts, optimizer, attention and elementwise
# work stay as they are), and bf16 rounds the activations, so a marginal win is not worth taking.
MIN_SPEEDUP = 1.5

# rows x in x out of one probe matmul: the MLP up-projection of the default model (SmolLM2-135M,
# hidden 576 -> 1536) over a training batch of about 4 x 64 tokens.
PROBE_SHAPE = (256, 576, 1536)
PROBE_VERSION = 1  # part of the cache key: a changed probe measures again
_MAX_ROUNDS = 8
_MIN_ROUNDS = 3
_BUDGET_SECONDS = 0.4  # after _MIN_ROUNDS, stop once this much was spent (a slow bf16 CPU stays ~1 s)
_BF16_FLAG_HINTS = ("amx_bf16", "avx512_bf16", "bf16")  # x86 flags; "bf16" is the Arm feature name


@dataclass(frozen=True)
class Probe:
    """One measurement: best seconds per matmul in fp32 and under bf16 autocast, on one thread."""

    fp32_seconds: float
    bf16_seconds: float
    shape: tuple[int, int, int] = PROBE_SHAPE
    rounds: int = 0
    cached: bool = False  # read from the cache file instead of measured now

    @property
    def speedup(self) -> float:
        """fp32 time / bf16 time: above 1, bf16 is faster."""
        return self.fp32_seconds / self.bf16_seconds


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses, and why; recorded in results.json."""

    requested: str
    precision: str
    reason: str
    device_name: str
    probe: Probe | None = None
    bf16_flags: tuple[str, ...] = ()
    warning: str | None = None

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"requested": self.requested, "precision": self.precision, "reason": self.reason,
                                  "device_name": self.device_name, "warning": self.warning}
        if self.probe is not None:
            record["probe"] = {"bf16_speedup": round(self.probe.speedup, 3), "fp32_seconds": self.probe.fp32_seconds,
                               "bf16_seconds": self.probe.bf16_seconds, "shape": list(self.probe.shape),
                               "threads": 1, "rounds": self.probe.rounds, "cached": self.probe.cached,
                               "min_speedup_for_auto": MIN_SPEEDUP, "cpu_bf16_flags": list(self.bf16_flags)}
        return record


def cpu_flags() -> list[str]:
    """The CPU's feature flags from /proc/cpuinfo (x86 ``flags``, Arm ``Features``); empty where unreadable."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return sorted(value.split())
    except OSError:
        pass
    return []


def machine_key() -> dict[str, Any]:
    """What the probe's result depends on: the cache is keyed by all of it."""
    import torch

    from tuning_bench.engine.measure import cpu_name

    return {"cpu": cpu_name(), "flags": " ".join(cpu_flags()), "torch": torch.__version__, "probe": PROBE_VERSION, "shape": list(PROBE_SHAPE)}


def measure() -> Probe:
    """Time the probe matmul in fp32 and under CPU bf16 autocast on one thread (about 0.1-0.4 s where
    bf16 is fast, about 1 s where it is very slow)."""
    import torch
    import torch.nn.functional as F

    rows, inputs, outputs = PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, inputs, generator=generator)
    weight = torch.randn(outputs, inputs, generator=generator) / inputs ** 0.5

    def fp32() -> None:
        F.linear(x, weight)

    def bf16() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            F.linear(x, weight)

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            fp32(), bf16()  # first calls pick and build kernels
            best = {fp32: float("inf"), bf16: float("inf")}
            started = time.perf_counter()
            rounds = 0
            while rounds < _MAX_ROUNDS and (rounds < _MIN_ROUNDS or time.perf_counter() - started < _BUDGET_SECONDS):
                for run in (fp32, bf16):
                    begin = time.perf_counter()
                    run()
                    best[run] = min(best[run], time.perf_counter() - begin)
                rounds += 1
    finally:
        torch.set_num_threads(previous)
    return Probe(best[fp32], best[bf16], PROBE_SHAPE, rounds)


def cache_file(key: dict[str, Any], directory: Path | None = None) -> Path:
    """Where the probe for ``key`` is cached: ``$TBENCH_CACHE/precision/bf16-probe-<hash>.json``."""
    from tuning_bench.models.fetch import cache_dir

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return (directory or cache_dir() / "precision") / f"bf16-probe-{digest}.json"


def _read_cached(path: Path, key: dict[str, Any]) -> Probe | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        fp32, bf16, rounds = data["fp32_seconds"], data["bf16_seconds"], data["rounds"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (fp32, bf16)):
            return None
        return Probe(float(fp32), float(bf16), tuple(key["shape"]), int(rounds), cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged: measure again (and overwrite)


def cached_probe(measure: Callable[[], Probe] = measure, directory: Path | None = None) -> Probe:
    """The probe for this machine: from the cache, else measured now and cached."""
    from tuning_bench.files import atomic_write_text

    key = machine_key()
    path = cache_file(key, directory)
    found = _read_cached(path, key)
    if found is not None:
        return found
    probe = measure()
    record = {"key": key, **{k: v for k, v in asdict(probe).items() if k in ("fp32_seconds", "bf16_seconds", "rounds")},
              "bf16_speedup": probe.speedup,
              "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    except OSError:
        pass  # an unwritable cache costs a probe per run, nothing more
    return probe


def choose_precision(requested: str, device: str, probe: Callable[[], Probe] | None = None) -> PrecisionChoice:
    """Resolve ``--precision`` (auto, fp32, bf16) for ``device``; ``probe`` defaults to ``cached_probe``."""
    import torch

    from tuning_bench.engine.measure import device_name

    name = device_name(torch.device(device))
    if requested == "fp32":
        return PrecisionChoice(requested, "fp32", "requested", name)
    if device.startswith("cuda"):
        if requested == "bf16":
            return PrecisionChoice(requested, "bf16", "requested", name)
        supported = torch.cuda.is_bf16_supported()
        return PrecisionChoice(requested, "bf16" if supported else "fp32",
                               "CUDA device supports bf16" if supported else "CUDA device without bf16 support", name)
    measured = (probe or cached_probe)()
    flags = tuple(f for f in cpu_flags() if f in _BF16_FLAG_HINTS)
    ratio = f"bf16 autocast matmul measured {measured.speedup:.2f}x the speed of fp32 on this CPU ({name})"
    fast = measured.speedup >= MIN_SPEEDUP
    if requested == "bf16":
        warning = None if fast else (f"--precision bf16: {ratio}; running in bf16 as asked "
                                     f"(--precision auto uses bf16 only from {MIN_SPEEDUP}x)")
        return PrecisionChoice(requested, "bf16", f"requested; {ratio}", name, measured, flags, warning)
    verdict = "at least" if fast else "below"
    return PrecisionChoice(requested, "bf16" if fast else "fp32", f"{ratio}, {verdict} the {MIN_SPEEDUP}x needed for bf16",
                           name, measured, flags)
