"""Peak memory per phase and the environment a cell ran in.

CPU: the kernel's high-water mark of resident memory (VmHWM), reset between phases by writing 5 to
/proc/self/clear_refs after the allocator's freed blocks are handed back, so each phase's peak is its own; the resident size right after loading is the
baseline. CUDA: torch's max allocated and max reserved, with the peak reset between phases.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from tuning_bench.engine.allocator import release_free_memory


def _proc_status() -> dict[str, int]:
    values = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                values[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return values


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class MemoryProbe:
    """Records a baseline after loading, then the peak of each named phase."""

    def __init__(self, device: torch.device):
        self.device = device
        self.record: dict[str, Any] = {"device_type": device.type}
        self.process_peak = 0

    def _note_process_peak(self) -> None:
        self.process_peak = max(self.process_peak, _proc_status().get("VmHWM", 0))

    def baseline(self) -> None:
        """Call after the model is loaded and adapted: what the cell holds before any phase runs."""
        release_free_memory()  # loading's freed buffers are not the cell's to carry
        status = _proc_status()
        self._note_process_peak()
        self.record["cpu_baseline_rss_bytes"] = status.get("VmRSS")
        self.record["cpu_baseline_rss_anon_bytes"] = status.get("RssAnon")
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.record["cuda_baseline_allocated_bytes"] = torch.cuda.memory_allocated(self.device)

    def start(self, phase: str) -> None:
        self._note_process_peak()
        release_free_memory()  # so the phase's peak starts from what is live, not what an earlier phase freed
        self.record[f"{phase}_hwm_reset"] = _reset_hwm()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)

    def stop(self, phase: str) -> None:
        status = _proc_status()
        self._note_process_peak()
        self.record[f"{phase}_peak_rss_bytes"] = status.get("VmHWM")
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.record[f"{phase}_peak_allocated_bytes"] = torch.cuda.max_memory_allocated(self.device)
            self.record[f"{phase}_peak_reserved_bytes"] = torch.cuda.max_memory_reserved(self.device)

    def finish(self) -> dict[str, Any]:
        self._note_process_peak()
        self.record["process_peak_rss_bytes"] = self.process_peak
        return self.record


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({os.cpu_count()} logical CPUs)"


def project_commit() -> str:
    """The git commit of the tuning_bench checkout, or a note when it runs from an installed wheel."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return "unknown (not a git checkout)"
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


PACKAGES = ("tuning-bench", "torch", "transformers", "peft", "evaluate", "tokenizers", "safetensors", "numpy")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions


def environment(device: torch.device) -> dict[str, Any]:
    """Everything about where a result was measured."""
    return {
        "packages": package_versions(),
        "device": device.type,
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "project_commit": project_commit(),
    }
