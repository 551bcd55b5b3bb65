"""The process a command runs in: what every `python -m vae_hub.X` command does first (parse, pin threads, remember
how it was called), the machine it runs on (the one CPU-name reader of the repository), and the process set for a
training loop (``training_process``: glibc's malloc keeps freed memory, denormal floats flush to zero).

Keeping freed memory: glibc's malloc, set for a training loop's steady state.

Every step frees and allocates again the same large buffers (activations, the bf16 copies of the weights, their
gradients). By default glibc serves large blocks with mmap and hands freed memory at the top of the heap back to
the kernel, so each step writes to fresh pages: ~100 page faults per step for vae-z20, ~1,900 for conv-vae-bin
at batch 128, and a fault is dear in a virtual machine. Serving blocks below 32 MiB from the heap and keeping up to
1 GiB of freed memory for reuse makes those steps fault-free: conv-vae-bin's 1.3x faster on a 2-core EPYC VM,
vae-z20's the same within noise (``python bench/allocator.py``). Both settings are needed: either alone makes
things worse (fixing one threshold switches off glibc's adaptive mmap threshold).

Flushing denormals: Adam's second moments of weights that stop learning (a beta-VAE's switched-off latent units)
decay below float32's smallest normal number, 1.2e-38, and x86 CPUs compute on such denormal numbers many times
slower: beta-vae-b1's epochs on one thread grew from 3.7 s to 6.1 s as they appeared, and flushed they stay at 3.6 s,
with the same losses (``python bench/denormals.py``). Treating them as zero changes nothing a float32 model can
tell. The flag is the CPU's (MXCSR), per thread, and threads inherit it when they start: it is set before the first
parallel operation, so OpenMP's threads start with it.

The settings hold for the whole process, so the command lines apply them (``train.py`` and its workers,
``python -m vae_hub.sweep``), not ``fit()``: a program that imports vae_hub keeps its own allocator and floats.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


def start(prog: str, parse_args: Callable[[list[str]], argparse.Namespace],
          argv: list[str] | None) -> tuple[argparse.Namespace, str]:
    """Parse ``argv``, apply ``--threads`` if the command has it, and return the args and the command line
    (reports print it, so every generated number says how it was made)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return args, f"python -m {prog} " + " ".join(shlex.quote(a) for a in argv)


def cpu_model() -> str:
    """The CPU as lscpu names it (platform.processor() where there is no lscpu)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        name = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name:")), "")
    except (OSError, subprocess.SubprocessError):
        name = ""
    return name or platform.processor() or platform.machine()


def hardware() -> str:
    dev = "CPU"
    if torch.cuda.is_available():
        dev = torch.cuda.get_device_name(0)
    return f"{dev}, {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 1 << 30
OPT_OUT = "VAE_HUB_KEEP_FREED_MEMORY"  # set to 0 to leave malloc as it is (e.g. inside a larger application)


def keep_freed_memory() -> bool:
    """Apply the settings above to this process (idempotent). Returns whether they took effect: False off Linux
    glibc, or with VAE_HUB_KEEP_FREED_MEMORY=0."""
    if os.environ.get(OPT_OUT, "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mmap_set = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        return bool(mmap_set and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False


def flush_denormals() -> bool:
    """Denormal floats as zero in this thread and every thread it starts from now on (see the module docstring).
    Returns whether the CPU supports it (x86 with SSE3)."""
    return torch.set_flush_denormal(True)


def denormals_flushed() -> bool:
    """Whether this thread treats denormal floats as zero: a denormal float32 times one comes out zero."""
    return bool(torch.tensor(1e-39) * 1.0 == 0)


def training_process() -> None:
    """What a command that trains sets first, before any parallel operation: freed memory kept, denormals flushed."""
    keep_freed_memory()
    flush_denormals()


@contextmanager
def single_thread() -> Iterator[None]:
    """Small dense linear algebra (d <= a few hundred) runs fastest on one thread, and many times faster when
    the cores are shared: idle OpenMP workers spin while other processes hold the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
