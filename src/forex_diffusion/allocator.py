"""Keep the memory of freed large tensors in the process instead of returning it to the OS.

A forecast or training step allocates and frees tensors of tens of megabytes many times (FFT
spectra, activations of a batch). glibc's malloc serves large blocks with ``mmap`` and, on free,
gives them back (``munmap``, or a trim of the heap top); the next allocation of the same size
then page-faults through fresh, zeroed pages, which costs about as much as the arithmetic on
them. ``keep_freed_memory`` raises the two glibc thresholds so that blocks up to the largest
``mmap`` threshold glibc accepts come from the heap and freed memory stays there for reuse,
the effect of an allocator such as jemalloc without replacing one.

The command line sets it for its process (``cli.main.run``); a program that uses the library
may call it once at start. It changes nothing but where freed memory waits, and nothing at
all where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: the largest mmap threshold glibc accepts on a 64-bit system (DEFAULT_MMAP_THRESHOLD_MAX)
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024
#: free memory at the top of the heap kept before any is returned to the OS
TRIM_THRESHOLD = 512 * 1024 * 1024


def keep_freed_memory(
    mmap_threshold: int = MAX_MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD
) -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` (bytes); True when both were
    accepted, False where the C library has no ``mallopt`` or refused a value.

    Raises:
        ValueError: a threshold below zero, or an mmap threshold above ``MAX_MMAP_THRESHOLD``.
    """
    if not 0 <= mmap_threshold <= MAX_MMAP_THRESHOLD or trim_threshold < 0:
        raise ValueError(
            f"need 0 <= mmap_threshold <= {MAX_MMAP_THRESHOLD} and trim_threshold >= 0, "
            f"got {mmap_threshold} and {trim_threshold}"
        )
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to set
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # the mmap threshold first: setting either one turns glibc's dynamic thresholds off
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, min(trim_threshold, 2**31 - 1))
    )
