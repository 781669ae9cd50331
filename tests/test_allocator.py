"""The process keeps freed large blocks for reuse (forex_diffusion.allocator, issue 17): glibc
serves a 16 MiB block from the heap instead of a fresh mapping once the thresholds are set,
and the command line sets them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from forex_diffusion.allocator import MAX_MMAP_THRESHOLD, keep_freed_memory

PROBE = """
import ctypes, ctypes.util, sys
names = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
         "fordblks", "keepcost")
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in names]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
if sys.argv[1] == "library":
    from forex_diffusion.allocator import keep_freed_memory
    assert keep_freed_memory()
elif sys.argv[1] == "cli":
    from forex_diffusion.cli.main import run
    sys.argv = ["forex-diffusion", "config", "--help"]
    assert run() == 0
before = libc.mallinfo2().hblkhd
block = libc.malloc(16 << 20)
print("mapped" if libc.mallinfo2().hblkhd - before >= 16 << 20 else "heap")
"""


def _where_a_16_mib_block_goes(setup: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, setup], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_large_block_comes_from_the_heap_once_freed_memory_is_kept() -> None:
    assert _where_a_16_mib_block_goes("none") == "mapped"  # glibc's default: a fresh mapping
    assert _where_a_16_mib_block_goes("library") == "heap"
    assert _where_a_16_mib_block_goes("cli") == "heap"  # the command line sets it


def test_thresholds_glibc_would_refuse_are_refused_before_the_call() -> None:
    with pytest.raises(ValueError, match="mmap_threshold"):
        keep_freed_memory(mmap_threshold=MAX_MMAP_THRESHOLD + 1)
    with pytest.raises(ValueError, match="trim_threshold"):
        keep_freed_memory(trim_threshold=-1)
