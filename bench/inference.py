"""Inference speed and the Space's memory.

    python bench/inference.py [--models pretrained]

Encode+decode images/s (posterior mode -> Bernoulli means) at batch 1 and batch 256 for every bundled
variant (median of repeated timings), the peak resident memory of a process that loads every model
(a fresh subprocess of this script, its VmHWM), and that of the Space's own process (space/app.py started on
127.0.0.1, read once its background preparation is done): on a first start, its disk cache empty (a new Space),
and on a start that finds the cache filled, as every later start does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import torch
from common import ROOT, launch, median, rss_mib, stop, write

import vae_hub
from vae_hub.hub.repo import model_folders


def throughput(model, batch: int, seconds: float = 1.0) -> float:
    c = model.config
    x = torch.rand(batch, c.in_channels, 28, 28)
    y = torch.arange(batch) % 10 if c.conditional else None
    with torch.inference_mode():
        model.reconstruct(x, y)
        rates = []
        for _ in range(5):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / 5:
                model.reconstruct(x, y)
                n += batch
            rates.append(n / (time.perf_counter() - t0))
    return median(rates)


def peak_child(folder: str) -> None:
    """In a fresh process (this script with --peak-child): the peak resident memory after importing torch and
    vae_hub, and after loading every model of ``folder``."""
    after_import = rss_mib(peak=True)
    models = [vae_hub.load(str(f)) for f in model_folders(folder)]
    print(json.dumps({"after_import_mib": after_import, "peak_mib": rss_mib(peak=True), "models": len(models)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=str(ROOT / "pretrained"))
    p.add_argument("--no-space", action="store_true", help="skip starting the Space app to read its memory")
    p.add_argument("--out")
    p.add_argument("--peak-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.peak_child:
        return peak_child(args.models)

    folders = model_folders(args.models)
    rows = {}
    print("| variant | batch 1 (img/s) | batch 256 (img/s) |\n|---|---:|---:|")
    for f in folders:
        m = vae_hub.load(str(f))
        rows[f.name] = {"batch1": throughput(m, 1), "batch256": throughput(m, 256)}
        print(f"| {f.name} | {rows[f.name]['batch1']:,.0f} | {rows[f.name]['batch256']:,.0f} |")
    child = [sys.executable, __file__, "--peak-child", "--models", args.models]
    mem = json.loads(subprocess.run(child, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    del mem["models"]
    print(f"peak RSS of a process holding all {len(folders)} models: {mem['peak_mib']:.0f} MiB "
          f"(after importing torch + vae_hub: {mem['after_import_mib']:.0f} MiB)")
    if not args.no_space:
        # a new Space's first start prepares everything into an empty disk cache; every later start finds it there
        with tempfile.TemporaryDirectory() as cache:
            mem["space_first_start_peak_mib"] = space_peak(args.models, {"VAE_HUB_CACHE": cache})
            mem["space_process_peak_mib"] = space_peak(args.models, {"VAE_HUB_CACHE": cache})
        print(f"peak RSS of the Space's process (space/app.py) once started and ready: {mem['space_process_peak_mib']} MiB "
              f"with its disk cache filled; {mem['space_first_start_peak_mib']} MiB on a first start, the cache empty "
              "(under load: bench/space_latency.py --load)")
    write("inference", {"models": rows, "memory": mem}, args.out)


def space_peak(weights: str, env: dict[str, str] | None = None) -> float | None:
    """Start the real app, wait until its background preparation is done, read its peak resident memory."""
    _, proc, _ = launch(weights, env, ready=True)  # ready: its background preparation done
    try:
        return round(peak, 1) if (peak := rss_mib(proc.pid, peak=True)) else None
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
