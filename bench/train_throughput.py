"""Time to quality: how much sooner our trainer delivers a vae-z20 as good as the pytorch/examples recipe's.

    python bench/train_throughput.py --dataset ../shared/mnist [--runs 3] [--precision auto]
    python bench/train_throughput.py --quick --dataset tests/data/mnist-mini --out /tmp/tt.json   # smoke run
    python bench/train_throughput.py --probe-steps [--batches 128 512]   # bf16 vs fp32 training steps, this CPU

In one run on one machine: the reference (pytorch/examples `vae/main.py`, written out here: MLP 784-400-20,
Adam 1e-3, batch 128, a DataLoader turning each PIL image into a tensor as torchvision's MNIST + ToTensor do)
trains 10 epochs; its training seconds are the sum of its epochs' loops, its test loss L_ref is measured below.
Ours is `python train.py --variants vae-z20` with the registry recipe, as a subprocess, timed from launch to
exit: start-up, data loading, per-epoch evaluation, figures, ONNX export and the card all count.
The ratio = reference training seconds / our wall seconds, valid only if our test loss <= L_ref.

Both test losses come from the same independent evaluation: pytorch/examples' test() (BCE summed over
pixels + the analytic KL, one posterior sample per image, fixed seed, float32) on the full test split, run
here on each model's saved weights. `--runs` repeats the whole comparison; figures are medians over runs.
Images per second are ours over our training loops; the matmul share compares them, times the matmul FLOPs
of one image's step, with the matmul ceiling at the step's exact shapes in the precision the run used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import ROOT, machine, median, write
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

import vae_hub
from vae_hub.data.mnist import load_split
from vae_hub.training.precision import DTYPES, cpu_bf16_units, probe

EVAL_SEED = 1234


# ----------------------------------------------------------------------------- the reference recipe
class RefVAE(nn.Module):  # pytorch/examples vae/main.py
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x.view(-1, 784)))
        return self.fc21(h1), self.fc22(h1)

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


def ref_loss(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


class TorchvisionMNIST(Dataset):
    """What torchvision.datasets.MNIST + transforms.ToTensor() do per sample (torchvision is not a dependency):
    index the uint8 tensors, make a PIL image, and convert it back (`to_tensor`: array copy, view, HWC->CHW
    permute, contiguous, float, /255)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.data, self.targets = images[:, 0].contiguous(), labels

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        img, target = self.data[index], int(self.targets[index])
        pic = Image.fromarray(img.numpy(), mode="L")
        x = torch.from_numpy(np.array(pic, np.uint8, copy=True))
        x = x.view(pic.size[1], pic.size[0], len(pic.getbands())).permute((2, 0, 1)).contiguous()
        return x.to(dtype=torch.get_default_dtype()).div(255), target


def train_reference(train, epochs: int) -> tuple[RefVAE, float]:
    """pytorch/examples' train() for ``epochs`` epochs; returns the model and the seconds in its training loops."""
    torch.manual_seed(1)
    model = RefVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TorchvisionMNIST(train.images, train.labels), batch_size=128, shuffle=True)
    seconds = 0.0
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for data, _ in loader:
            opt.zero_grad()
            recon, mu, logvar = model(data)
            loss = ref_loss(recon, data, mu, logvar)
            loss.backward()
            opt.step()
        seconds += time.perf_counter() - t0
    return model, seconds


# ----------------------------------------------------------------------------- the shared test
@torch.no_grad()
def examples_test_loss(encode, decode, test) -> float:
    """pytorch/examples' test(): mean over the test split of BCE (summed over pixels) + analytic KL, one sample.
    ``encode(x) -> (mu, logvar)``, ``decode(z) -> pixel probabilities``."""
    torch.manual_seed(EVAL_SEED)
    total = 0.0
    for i in range(0, len(test), 1000):
        x = test.images[i:i + 1000].float().div(255)
        mu, logvar = encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        total += ref_loss(decode(z), x, mu, logvar).item()
    return total / len(test)


def ours_test_loss(model: vae_hub.VAE, test) -> float:
    def encode(x):
        post = model.encode(x)
        return post.mean, 2 * post.stddev.log()

    return examples_test_loss(encode, lambda z: torch.sigmoid(model.decode(z)).flatten(1), test)


# ----------------------------------------------------------------------------- our trainer, as a user runs it
def train_ours(dataset: str, out: Path, args: argparse.Namespace) -> tuple[float, vae_hub.VAE, dict]:
    """`train.py --variants vae-z20` in a subprocess; returns (wall seconds, the saved model, its history.json)."""
    local = Path(dataset).expanduser()
    dataset = str(local.resolve()) if local.exists() else dataset  # train.py runs from the project root
    cmd = [sys.executable, str(ROOT / "train.py"), "--variants", "vae-z20", "--dataset", dataset, "--out", str(out),
           "--no-progress"]
    cmd += ["--precision", args.precision] if args.precision else []
    cmd += ["--epochs", str(args.epochs)] if args.epochs else []
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"error: train.py failed ({r.returncode}):\n{r.stderr[-2000:]}")
    folder = out / "vae-z20"
    return wall, vae_hub.load(folder), json.loads((folder / "history.json").read_text())


FLOOR = "import torch; torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)"


def startup_floor(repeats: int = 3) -> float:
    """Median seconds of a Python process that only imports torch and builds an Adam optimizer (which imports
    torch._dynamo lazily), launch to exit: the part of our wall time no trainer in this stack can avoid."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", FLOOR], check=True)
        times.append(time.perf_counter() - t0)
    return median(times)


# ----------------------------------------------------------------------------- the matmul ceiling at the step's shapes
# vae-z20's Linear layers (in, out), encoder then decoder
MLP_LAYERS = ((784, 400), (400, 40), (20, 400), (400, 784))


def step_shapes(layers: list[tuple[int, int]] | tuple, batch: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of every matmul in one training step of Linear layers (in, out): forward, input gradient
    (not for the first layer) and weight gradient."""
    shapes = []
    for i, (a, b) in enumerate(layers):
        shapes.append((batch, a, b))
        if i:
            shapes.append((batch, b, a))
        shapes.append((a, batch, b))
    return shapes


def linear_layers(model: nn.Module) -> list[tuple[int, int]]:
    """(in, out) of a model's torch Linear layers, in module order."""
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


class Gemms:
    """Random operands for ``torch.mm`` at ``shapes`` in one dtype, and a timer for passes over all of them."""

    def __init__(self, shapes: list[tuple[int, int, int]], dtype: torch.dtype, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.mats = [(torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype))
                     for m, k, n in shapes]
        self.flops = sum(2 * m * k * n for m, k, n in shapes)
        self.gflops(1)  # warm-up: first-call allocations and kernel selection

    def gflops(self, passes: int) -> float:
        """GFLOP/s over ``passes`` passes through every shape."""
        t0 = time.perf_counter()
        for _ in range(passes):
            for a, b in self.mats:
                torch.mm(a, b)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return self.flops * passes / (time.perf_counter() - t0) / 1e9

    def passes_for(self, seconds: float) -> int:
        """How many passes take about ``seconds`` (at least one)."""
        return max(1, round(seconds * self.gflops(1) * 1e9 / self.flops))


def gemm_ceiling(shapes: list[tuple[int, int, int]], dtype: torch.dtype, device: torch.device | str = "cpu",
                 seconds: float = 0.05, rounds: int = 5) -> float:
    """Median GFLOP/s of ``torch.mm`` over ``shapes`` in ``dtype``: the matmul ceiling of a step at those shapes."""
    g = Gemms(shapes, dtype, device)
    n = g.passes_for(seconds)
    return median([g.gflops(n) for _ in range(rounds)])


def matmul_share(model: vae_hub.VAE, precision: str, images_per_s: float) -> dict:
    """Our matmul GFLOP/s (images/s x matmul FLOPs of one image's step) against the ceiling at the step's shapes."""
    shapes = step_shapes(linear_layers(model), model.config.batch_size)
    flops = sum(2 * m * k * n for m, k, n in shapes) / model.config.batch_size
    ceiling = gemm_ceiling(shapes, DTYPES[precision] or torch.float32)
    achieved = images_per_s * flops / 1e9
    return {"dtype": {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[precision],
            "flops_per_image": flops, "ceiling_gflops": ceiling, "achieved_gflops": achieved,
            "share_of_ceiling": achieved / ceiling}


def one_run(train, test, args: argparse.Namespace) -> dict:
    """The reference, then ours, then the matmul ceiling in the precision ours used."""
    ref, ref_seconds = train_reference(train, args.ref_epochs)
    ref_test = examples_test_loss(ref.encode, ref.decode, test)
    with tempfile.TemporaryDirectory() as tmp:
        wall, model, hist = train_ours(args.dataset, Path(tmp), args)
    ours_test = ours_test_loss(model, test)
    precision = hist["epochs"][-1].get("precision", "fp32")
    ips = len(hist["epochs"]) * hist["n_train"] / hist["seconds_total"]
    return {"startup_floor_seconds": startup_floor(),
            "reference": {"train_seconds": ref_seconds, "test_loss": ref_test,
                          "images_per_s": args.ref_epochs * len(train) / ref_seconds},
            "vae_hub": {"wall_seconds": wall, "train_seconds": hist["seconds_total"], "test_loss": ours_test,
                        "epochs": len(hist["epochs"]), "batch_size": model.config.batch_size, "precision": precision,
                        "images_per_s": ips},
            "ratio": ref_seconds / wall, "valid": ours_test <= ref_test, "matmul": matmul_share(model, precision, ips)}


# ----------------------------------------------------------------------------- bf16 vs fp32 steps on this CPU
def step_probe(batches: list[int], rounds: int = 5, seconds: float = 1.0) -> dict:
    """vae-z20 training steps (forward, backward, fused Adam) in fp32 and under bf16 autocast, alternating round
    by round (vae_hub.training.precision.probe, which `auto` runs briefly); per batch size the best round's images/s of each."""
    out = {}
    for batch in batches:
        torch.manual_seed(0)
        f32, b16 = probe(vae_hub.build("vae-z20"), batch, torch.device("cpu"), rounds=rounds, seconds=seconds)
        out[batch] = {"fp32_images_per_s": f32, "bf16_images_per_s": b16, "bf16_over_fp32": b16 / f32,
                      "rounds": rounds, "seconds_per_round": seconds}
        print(f"batch {batch:5d}: fp32 {f32:8,.0f} img/s   bf16 autocast {b16:8,.0f} img/s   bf16/fp32 {b16 / f32:.2f}x "
              f"(best of {rounds} alternating rounds of ~{seconds:g} s)", flush=True)
    return out


def capability() -> dict:
    return {"bf16_units": cpu_bf16_units(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


# ----------------------------------------------------------------------------- main
def summarise(runs: list[dict], args: argparse.Namespace) -> dict:
    ref = {k: median([r["reference"][k] for r in runs]) for k in ("train_seconds", "test_loss", "images_per_s")}
    ours = {k: median([r["vae_hub"][k] for r in runs])
            for k in ("wall_seconds", "train_seconds", "test_loss", "images_per_s")}
    precisions = sorted({r["vae_hub"]["precision"] for r in runs})
    mm = {k: median([r["matmul"][k] for r in runs])
          for k in ("flops_per_image", "ceiling_gflops", "achieved_gflops", "share_of_ceiling")}
    ratio = median([r["ratio"] for r in runs])
    floor = median([r["startup_floor_seconds"] for r in runs])
    valid = all(r["valid"] for r in runs)
    return {"quick": args.quick, "runs": len(runs), "reference_epochs": args.ref_epochs,
            "epochs": runs[0]["vae_hub"]["epochs"], "capability": capability(),
            "reference": {**ref, "images_per_s_median": ref["images_per_s"]},
            "vae_hub": {**ours, "images_per_s_median": ours["images_per_s"], "precision": "/".join(precisions),
                        "batch_size": runs[0]["vae_hub"]["batch_size"]},
            "ratio": ratio, "valid": valid, "ratio_per_run": [r["ratio"] for r in runs], "startup_floor_seconds": floor,
            "matmul": {**mm, "dtype": runs[0]["matmul"]["dtype"]}, "per_run": runs}


def report(res: dict) -> None:
    ref, ours, mm, cap = res["reference"], res["vae_hub"], res["matmul"], res["capability"]
    print(f"\nCPU: {machine()['cpu']}; bf16 units: {', '.join(cap['bf16_units']) or 'none'} "
          f"(torch CPU capability {cap['torch_cpu_capability']}); our precision: {ours['precision']}")
    print(f"| recipe | training s | wall s | test loss | images/s |  (medians of {res['runs']} run(s))")
    print("|---|---:|---:|---:|---:|")
    print(f"| pytorch/examples, {res['reference_epochs']} epochs | {ref['train_seconds']:.1f} | | "
          f"{ref['test_loss']:.2f} | {ref['images_per_s']:,.0f} |")
    print(f"| vae_hub vae-z20, {res['epochs']} epochs, batch {ours['batch_size']}, {ours['precision']} | "
          f"{ours['train_seconds']:.1f} | {ours['wall_seconds']:.1f} | {ours['test_loss']:.2f} | "
          f"{ours['images_per_s']:,.0f} |")
    print(f"start-up floor: a process that imports torch and builds an Adam optimizer takes "
          f"{res['startup_floor_seconds']:.1f} s launch to exit")
    verdict = "valid" if res["valid"] else "NOT valid: our test loss is above the reference's"
    print(f"time to quality: {res['ratio']:.2f}x (reference training s / our wall s; target >= 5x); {verdict}")
    print(f"matmul: {mm['achieved_gflops']:.1f} of {mm['ceiling_gflops']:.1f} GFLOP/s {mm['dtype']} at the step's "
          f"shapes = {100 * mm['share_of_ceiling']:.0f}% of the ceiling ({mm['flops_per_image'] / 1e6:.2f} MFLOP/image)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ylecun/mnist")
    p.add_argument("--runs", type=int, default=3, help="repeat the whole comparison; figures are medians over runs")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], help="override the recipe's precision")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 epoch each, one run (use with small data)")
    p.add_argument("--probe-steps", action="store_true", help="only time bf16 against fp32 training steps")
    p.add_argument("--batches", type=int, nargs="+", default=[128, 512], help="batch sizes for --probe-steps")
    p.add_argument("--threads", type=int, help="torch threads here and in train.py (default: torch's own choice)")
    p.add_argument("--out")
    args = p.parse_args()
    if args.threads:  # on a shared machine one thread can beat two many times over: both sides get the same
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # read by train.py's torch at start-up
    if args.probe_steps:
        write("train_step_precision", {"capability": capability(), "batches": step_probe(args.batches)}, args.out)
        return
    args.ref_epochs, args.epochs = (1, 1) if args.quick else (10, None)
    runs_n = 1 if args.quick else args.runs
    train, test = load_split(args.dataset, "train"), load_split(args.dataset, "test")
    runs = []
    for i in range(runs_n):
        runs.append(one_run(train, test, args))
        r = runs[-1]
        print(f"run {i + 1}/{runs_n}: reference {r['reference']['train_seconds']:.1f} s -> {r['reference']['test_loss']:.2f}; "
              f"ours {r['vae_hub']['wall_seconds']:.1f} s wall -> {r['vae_hub']['test_loss']:.2f} "
              f"({r['vae_hub']['precision']}); ratio {r['ratio']:.2f}x{'' if r['valid'] else ' (not valid)'}", flush=True)
    res = summarise(runs, args)
    report(res)
    write("train_throughput", res, args.out)


if __name__ == "__main__":
    main()
