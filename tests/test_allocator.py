"""vae_hub.cli: the trainer's malloc settings take effect, make re-allocation fault-free, and can be refused; its
denormal floats flush to zero in every thread, and stay flushed through an ONNX export."""

import json
import os
import subprocess
import sys

import pytest

# a fresh process per case: malloc settings are per process and cannot be undone
CHILD = """
import json, resource, torch
from vae_hub.cli import keep_freed_memory
applied = keep_freed_memory()
def heap():
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            return tuple(int(x, 16) for x in line.split()[0].split("-"))
    return 0, 0
first = torch.ones(3 << 21)  # 24 MiB: glibc's default serves a fresh process's first one with mmap
lo, hi = heap()
in_heap = lo <= first.data_ptr() < hi
del first
for _ in range(3):  # warm-up: the heap may grow once to fit the pattern
    a = torch.ones(1 << 21); b = torch.ones(1 << 21); del a, b
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # two 8 MiB buffers allocated, written and freed per round, as a training step does
    a = torch.ones(1 << 21); b = torch.ones(1 << 21); del a, b
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": applied, "in_heap": in_heap, "faults": faults}))
"""


def run_child(keep: str) -> dict:
    env = {**os.environ, "VAE_HUB_KEEP_FREED_MEMORY": keep, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_blocks_come_from_the_heap_and_are_reused_without_page_faults():
    kept = run_child("1")
    assert kept["applied"] and kept["in_heap"]
    # 20 rounds x 2 x 8 MiB would be 80,000 page faults if every buffer were fresh memory
    assert kept["faults"] < 200


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_opt_out_leaves_malloc_as_it_is():
    default = run_child("0")
    assert not default["applied"] and not default["in_heap"]


# a denormal float32 times one, on two threads (OpenMP splits 65,536 elements between them): zero where flushed
DENORMALS = """
import json, sys, torch
from vae_hub.cli import training_process
if sys.argv[1] == "1":
    training_process()
torch.set_num_threads(2)
x = torch.full((1 << 16,), 1e-39)
print(json.dumps({"supported": torch.set_flush_denormal(sys.argv[1] == "1"), "zeros": int((x * 1.0 == 0).sum())}))
"""


def test_a_training_process_flushes_denormals_in_every_thread_it_starts():
    def child(flush: str) -> dict:
        out = subprocess.run([sys.executable, "-c", DENORMALS, flush], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.splitlines()[-1])

    flushed = child("1")
    if not flushed["supported"]:
        pytest.skip("this CPU cannot flush denormals")
    assert flushed["zeros"] == 1 << 16  # both OpenMP threads, not only the one that set the flag
    assert child("0")["zeros"] == 0


EXPORT = """
import tempfile, vae_hub
from vae_hub.cli import denormals_flushed, training_process
from vae_hub.hub.onnx import export_onnx
training_process()
print(denormals_flushed())  # False: a CPU that cannot flush them
with tempfile.TemporaryDirectory() as d:
    export_onnx(vae_hub.build(vae_hub.get_config("vae-z2")).eval(), d)  # checked in onnxruntime, as train.py does
print(denormals_flushed())
"""


def test_the_onnx_export_leaves_a_training_process_flushing_denormals():
    # onnxruntime switched it off: every variant a train.py worker trained after its first ran at the slow speed
    before, after = subprocess.run([sys.executable, "-c", EXPORT], capture_output=True, text=True,
                                   check=True).stdout.split()[-2:]
    if before != "True":
        pytest.skip("this CPU cannot flush denormals")
    assert after == "True"
