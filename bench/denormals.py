"""What flushing denormal floats (vae_hub.cli.flush_denormals) does to training: seconds per epoch, with and without.

    python bench/denormals.py --dataset ../shared/mnist [--variant beta-vae-b1] [--epochs 4] [--threads 1]

Each setting trains in a fresh process (the flag is per thread and inherited by the threads a process starts) with
the trainer's own epoch loop (vae_hub.training.loop.train_epoch) over the whole training split, the recipe's seeds,
in float32. It prints every epoch's seconds and, at the end, how many of the weights and of Adam's state are
denormal (nonzero and below 1.2e-38 in magnitude), where the slowdown comes from.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import ROOT, machine, write


def child(variant: str, epochs: int, dataset: str, flush: bool) -> dict:
    """In this process: ``epochs`` epochs of ``variant``; their seconds, losses and the denormal counts at the end."""
    import torch

    from vae_hub import get_config
    from vae_hub.cli import flush_denormals
    from vae_hub.data.mnist import load_split
    from vae_hub.training.loop import _new_run, train_epoch

    if flush:
        flush_denormals()
    run = _new_run(get_config(variant), load_split(dataset, "train"), load_split(dataset, "test").subset(16),
                   ROOT / "runs" / "bench-denormals", torch.device("cpu"))
    run.model.train()
    seconds, losses = [], []
    for epoch in range(1, epochs + 1):
        (loss, _, _), _, s = train_epoch(run, epoch)
        seconds.append(round(s, 2))
        losses.append(round(loss, 4))

    def denormal(ts) -> int:
        return sum(int(((t != 0) & (t.abs() < torch.finfo(torch.float32).tiny)).sum())
                   for t in ts if torch.is_tensor(t) and t.is_floating_point())

    adam = [v for state in run.opt.state_dict()["state"].values() for v in state.values()]
    return {"epoch_seconds": seconds, "train_loss": losses, "denormal_weights": denormal(run.model.state_dict().values()),
            "denormal_adam_state": denormal(adam), "adam_state_values": sum(t.numel() for t in adam if torch.is_tensor(t))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ylecun/mnist")
    p.add_argument("--variant", default="beta-vae-b1")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out")
    p.add_argument("--child", choices=["flush", "keep"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(child(args.variant, args.epochs, args.dataset, args.child == "flush")))
        return
    print(f"CPU: {machine()['cpu']}, {args.threads} thread(s); {args.variant}, {args.epochs} epochs, float32", flush=True)
    results = {}
    for setting in ("keep", "flush"):
        out = subprocess.run([sys.executable, __file__, "--child", setting, "--variant", args.variant, "--epochs",
                              str(args.epochs), "--dataset", args.dataset, "--threads", str(args.threads)],
                             capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"error: the {setting} run failed:\n{out.stderr[-2000:]}")
        results[setting] = r = json.loads(out.stdout.splitlines()[-1])
        print(f"denormals {setting:5s}: s/epoch {' '.join(f'{s:.2f}' for s in r['epoch_seconds'])}; train loss "
              f"{' '.join(f'{v:.3f}' for v in r['train_loss'])}; denormal values at the end: "
              f"{r['denormal_adam_state']:,} of Adam's {r['adam_state_values']:,}, {r['denormal_weights']:,} weights",
              flush=True)
    keep, flush = results["keep"]["epoch_seconds"][-1], results["flush"]["epoch_seconds"][-1]
    print(f"last epoch: {keep:.2f} s kept, {flush:.2f} s flushed ({keep / flush:.2f}x)")
    write("denormals", {"variant": args.variant, "epochs": args.epochs, "threads": args.threads, **results}, args.out)


if __name__ == "__main__":
    main()
