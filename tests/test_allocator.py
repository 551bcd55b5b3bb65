"""vae_hub.allocator: the trainer's malloc settings take effect, make re-allocation fault-free, and can be refused."""

import json
import os
import subprocess
import sys

import pytest

# a fresh process per case: malloc settings are per process and cannot be undone
CHILD = """
import json, resource, torch
from vae_hub.allocator import keep_freed_memory
applied = keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):  # warm-up: the heap grows once
    a = torch.ones(1 << 21); b = torch.ones(1 << 21); del a, b
before = faults()
for _ in range(20):  # two 8 MiB buffers allocated, written and freed per round, as a training step does
    a = torch.ones(1 << 21); b = torch.ones(1 << 21); del a, b
print(json.dumps({"applied": applied, "faults": faults() - before}))
"""


def run_child(keep: str) -> dict:
    env = {**os.environ, "VAE_HUB_KEEP_FREED_MEMORY": keep, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_reused_without_page_faults():
    kept, default = run_child("1"), run_child("0")
    assert kept["applied"] and not default["applied"]
    # 20 rounds x 2 x 8 MiB = 80,000 pages if every buffer were fresh memory; glibc's default hands them back
    assert kept["faults"] < 200 < default["faults"]
