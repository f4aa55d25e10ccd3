"""Keep freed memory for reuse during training, and give it back between phases (glibc only).

A training step frees and allocates the same large activation and gradient buffers every time. By
default glibc returns big freed blocks to the kernel at once (munmap, heap trim), so the next step
page-faults them back in, zero-filled. Raising the two thresholds keeps them for reuse: a full
fine-tuning step of smollm2-135m on a 2-core CPU takes 2.66 s instead of 3.17 s; LoRA, which frees
far less per step (no weight gradients), is unchanged (bench/RESULTS.md, "Levers"). The engine calls
``release_free_memory`` before each phase starts, so a phase's measured peak does not include what
an earlier phase left in the allocator. Elsewhere (macOS, musl, Windows) both calls do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_RETAIN_BYTES = 1 << 30
_GLIBC_MMAP_MAX = 32 << 20  # older glibc refuses mmap thresholds above 32 MiB on 64-bit


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both exist only in glibc
    except (OSError, AttributeError):
        return None
    return libc


def reuse_freed_memory() -> bool:
    """Make the C allocator keep freed blocks for reuse; True when it took effect."""
    libc = _glibc()
    if libc is None:
        return False
    mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, _RETAIN_BYTES) or libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_MMAP_MAX)
    return bool(mmap_set and libc.mallopt(_M_TRIM_THRESHOLD, _RETAIN_BYTES))


def release_free_memory() -> None:
    """Hand every freed block the allocator holds back to the kernel."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
