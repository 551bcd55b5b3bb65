"""Pilot a recipe change: train one variant with overrides, in-process, and print its test loss after every epoch.

    python bench/recipe_pilot.py vae-z2 '{"batch_size": 256, "lr": 3e-3, "lr_warmup": 0.05, "lr_schedule": "linear"}'
    python bench/recipe_pilot.py conv-vae-bin '{"epochs": 20, "batch_size": 128}' --threads 1 --dataset ../shared/mnist
    python bench/recipe_pilot.py conv-vae-z20 '{"epochs": 8}' --fd   # also the prior samples' FD
    python bench/recipe_pilot.py conv-vae-z20 '{"epochs": 16}' --fd-every 2   # ... after every 2 epochs
    python bench/recipe_pilot.py conv-vae-z20 '{"epochs": 8}' --keep runs/pilot   # then: python -m vae_hub.evaluate
    python bench/recipe_pilot.py beta-vae-b1 '{}' --fd-every 5 --ema 0.999   # ... and of an average of the weights

This is how the registry's recipes were chosen (the README's Performance section lists the pilots): the
final test loss against the bundled model's, and the training seconds. Nothing is written but a temporary
folder (or, with --keep DIR, the model folder DIR/VARIANT, to evaluate); the line printed is the result.
Run two at once with --threads 1 on a 2-core CPU, as train.py --jobs 2 trains.

--ema DECAY also keeps an exponential moving average of the weights over the training steps (parameters and
batch-norm statistics alike: torch.optim.swa_utils.AveragedModel with get_ema_multi_avg_fn(DECAY)), which training
never sees, and prints its test loss (and FD) wherever the trained model's are measured. Its updates count in
the training seconds printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import ROOT, fd_judge, machine, sample_fd
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from train_all import history_row

import vae_hub
from vae_hub.cli import training_process
from vae_hub.data.mnist import load_split
from vae_hub.hub.save import float16_check, save_model_folder
from vae_hub.training.loop import Batcher, evaluate_elbo, fit, run_info


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variant", choices=list(vae_hub.model.variants.REGISTRY))
    p.add_argument("overrides", nargs="?", default="{}", help="JSON object of config fields to change")
    p.add_argument("--dataset", default="ylecun/mnist")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fd", action="store_true",
                   help="also print the FD of 10,000 prior samples, as vae_hub.evaluation.evaluate measures it (seed 0)")
    p.add_argument("--fd-every", type=int, metavar="N", default=0,
                   help="... after every N epochs too (the run stops and resumes bit for bit at each)")
    p.add_argument("--keep", metavar="DIR", help="write the trained model's folder to DIR/VARIANT (float16, as bundled)")
    p.add_argument("--ema", type=float, metavar="DECAY",
                   help="also measure an exponential moving average of the weights (decay per step, e.g. 0.999)")
    args = p.parse_args(argv)
    if args.ema is not None and not 0 < args.ema < 1:
        sys.exit(f"error: --ema {args.ema}: expected a decay per step between 0 and 1, e.g. 0.999")
    try:
        overrides = json.loads(args.overrides)
        config = vae_hub.get_config(args.variant, **overrides)
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        sys.exit(f"error: overrides {args.overrides!r}: {e}")
    training_process()  # as train.py trains: freed memory kept, denormals flushed
    torch.set_num_threads(args.threads)
    try:
        train, test = load_split(args.dataset, "train"), load_split(args.dataset, "test")
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f"error: {e}")
    t0 = time.perf_counter()
    trained, fds, ema = train_with_fd(config, train, test, args.fd_every if args.fd_every > 0 else config.epochs,
                                      args.fd or args.fd_every > 0, args.ema)
    history = trained.history
    if args.keep:
        info = {**run_info(config, history, train, test, args.dataset, torch.device("cpu")), "pilot": overrides,
                "float16_check": float16_check(trained.model, test, history[-1]["test_loss"])}  # as train.py --half
        save_model_folder(trained.model, Path(args.keep) / args.variant, history, info, test, trained.progress, half=True)
    bundled = ROOT / "pretrained" / args.variant / "history.json"
    ref = history_row(bundled)["test_loss"] if bundled.is_file() else None
    print(f"{machine()['cpu']}, {args.threads} thread(s)")
    print(f"{args.variant} {json.dumps(overrides)}: {history[-1]['precision']}, training "
          f"{sum(e['seconds'] for e in history):.0f} s, wall {time.perf_counter() - t0:.0f} s; test loss by epoch "
          + " ".join(f"{e['test_loss']:.2f}" for e in history)
          + (f"; bundled model {ref:.2f}" if ref is not None else "")
          + ("; prior-sample FD by epoch " + " ".join(f"{e}: {fd:.2f}" for e, fd in fds.items()) if fds else ""))
    if ema:
        print(f"  EMA {args.ema:g} of the weights: " + "; ".join(
            f"epoch {e}: test loss {r['test_loss']:.2f}" + (f", FD {r['fd']:.2f}" if "fd" in r else "")
            for e, r in ema.items()))


class WeightAverage:
    """An exponential moving average of a training run's weights, updated after every step (``fit``'s on_step).
    It outlives the stops of train_with_fd: each resumed fit builds a new model, and the average follows it."""

    def __init__(self, decay: float):
        self.decay, self.average = decay, None

    def __call__(self, model: torch.nn.Module) -> None:
        if self.average is None:  # the first update copies the weights, as AveragedModel does
            self.average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        self.average.update_parameters(model)


def train_with_fd(config, train, test, every: int, fd: bool, ema: float | None = None) -> tuple:
    """Train the whole recipe, stopping after every ``every`` epochs to measure the prior samples' FD (when ``fd``)
    and resuming from the checkpoint (bit for bit the uninterrupted run). With ``ema``, an average of the weights
    (WeightAverage) is measured at the same stops. Returns (trained, {epoch: FD}, {epoch: the average's figures})."""
    fds, ema_rows = {}, {}
    judge = fd_judge(test) if fd else None  # once, not at every stop
    average = WeightAverage(ema) if ema is not None else None
    test_batches = Batcher(test, config, torch.device("cpu")) if average is not None else None
    with tempfile.TemporaryDirectory() as tmp:
        for stop in range(every, config.epochs + every, every):
            trained = fit(config, train, test, tmp, resume=True, stop_after_epoch=min(stop, config.epochs),
                          progress_bar=False, log=lambda s: None, on_step=average)
            epoch = len(trained.history)
            if judge:
                fds[epoch] = sample_fd(trained.model, *judge)
            if average is not None:
                model = average.average.module.eval()
                ema_rows[epoch] = {"test_loss": evaluate_elbo(model, test_batches)["loss"]}
                if judge:
                    ema_rows[epoch]["fd"] = sample_fd(model, *judge)
    return trained, fds, ema_rows


if __name__ == "__main__":
    main()
