"""What keeping freed memory (vae_hub.cli) does to a training step: ms per step and page faults per step.

    python bench/allocator.py --dataset ../shared/mnist [--rounds 5] [--threads 2]

Each measurement is a fresh process (malloc settings are per process and cannot be undone), running the trainer's
own epoch loop (vae_hub.training.loop.train_epoch) over the first --steps batches of the training split after one warm-up
epoch. The two settings alternate round by round, so drift in the machine's speed hits both; medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

from common import ROOT, machine, median, write

VARIANTS = {"vae-z20": 120, "conv-vae-bin": 30}  # variant: steps per measured epoch


def measure(variant: str, steps: int, dataset: str, precision: str) -> dict:
    """In this process: one warm-up epoch, then two measured ones; ms/step and minor faults/step of the faster."""
    import torch

    from vae_hub import get_config
    from vae_hub.data.mnist import load_split
    from vae_hub.training.loop import _new_run, train_epoch
    from vae_hub.training.precision import Choice

    config = get_config(variant)
    train = load_split(dataset, "train").subset(steps * config.batch_size)
    run = _new_run(config, train, load_split(dataset, "test").subset(16), ROOT / "runs" / "bench-allocator",
                   torch.device("cpu"))
    run.precision = Choice(precision, "bench")
    run.model.train()
    train_epoch(run, 1)
    best = None
    for epoch in (2, 3):
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        seconds = train_epoch(run, epoch)[2]
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        if best is None or seconds < best[0]:
            best = (seconds, faults)
    return {"ms_per_step": best[0] / run.steps * 1e3, "faults_per_step": best[1] / run.steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ylecun/mnist")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    p.add_argument("--child", nargs=2, metavar=("VARIANT", "STEPS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        if os.environ.get("VAE_HUB_KEEP_FREED_MEMORY") != "0":
            from vae_hub.cli import keep_freed_memory
            assert keep_freed_memory(), "mallopt refused the settings"
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.dataset, args.precision)))
        return
    info = machine()
    print(f"{info['cpu']}, {args.threads} thread(s), torch {info['torch']}, {args.precision}")
    results: dict = {}
    for rnd in range(args.rounds):
        for variant, steps in VARIANTS.items():
            for setting, flag in (("glibc default", "0"), ("keep freed memory", "1")):
                env = {**os.environ, "VAE_HUB_KEEP_FREED_MEMORY": flag, "OMP_NUM_THREADS": str(args.threads)}
                cmd = [sys.executable, __file__, "--child", variant, str(steps), "--dataset", args.dataset,
                       "--threads", str(args.threads), "--precision", args.precision]
                r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                results.setdefault(variant, {}).setdefault(setting, []).append(json.loads(r.stdout.splitlines()[-1]))
        print(f"round {rnd + 1}/{args.rounds} done")
    print("| variant | malloc | ms/step | page faults/step | speed-up |  (medians of", args.rounds, "rounds)")
    print("|---|---|---:|---:|---:|")
    summary = {}
    for variant, by in results.items():
        base = median([r["ms_per_step"] for r in by["glibc default"]])
        for setting, runs in by.items():
            ms, faults = median([r["ms_per_step"] for r in runs]), median([r["faults_per_step"] for r in runs])
            summary.setdefault(variant, {})[setting] = {"ms_per_step": ms, "faults_per_step": faults, "runs": runs}
            print(f"| {variant} | {setting} | {ms:.2f} | {faults:,.0f} | {base / ms:.2f}x |")
    write("allocator", {"threads": args.threads, "precision": args.precision, "rounds": args.rounds,
                        "results": summary})


if __name__ == "__main__":
    main()
