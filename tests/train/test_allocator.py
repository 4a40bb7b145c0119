import subprocess
import sys

import pytest

# A child process mallocs 64 MiB and says whether the block lies in the [heap] mapping.
PROBE = """
import ctypes, ctypes.util, sys
from superconverge.train.allocator import freed_memory_kept, keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
p = libc.malloc(64 << 20)
heap = [line.split()[0].split("-") for line in open("/proc/self/maps") if line.rstrip().endswith("[heap]")]
print(applied, freed_memory_kept(), any(int(a, 16) <= p < int(b, 16) for a, b in heap))
"""


def probe(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], check=True, capture_output=True, text=True)
    return done.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_blocks_come_from_the_heap_once_kept():
    assert probe("default") == ["None", "False", "False"]  # glibc's default: a fresh mmap, returned on free
    assert probe("keep") == ["True", "True", "True"]


def test_without_glibc_it_does_nothing(monkeypatch):
    from superconverge.train import allocator

    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False


def test_the_module_does_not_import_torch():
    code = "import sys, superconverge.train.allocator; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_the_command_line_keeps_freed_memory_unless_told_not_to(monkeypatch):
    from click.testing import CliRunner

    from superconverge import cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1))
    assert CliRunner().invoke(cli.main, ["schedule", "--help"]).exit_code == 0
    assert calls == [1]
    monkeypatch.setenv("SUPERCONVERGE_SYSTEM_MALLOC", "1")
    assert CliRunner().invoke(cli.main, ["schedule", "--help"]).exit_code == 0
    assert calls == [1]
