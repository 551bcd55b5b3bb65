"""Training throughput: our trainer on vae-z20 against the pytorch/examples VAE recipe, in one run.

    python bench/train_throughput.py --dataset ../shared/mnist [--epochs 10] [--runs 3]

The reference is written out here as pytorch/examples `vae/main.py` does it: MLP 784-400-20, Adam 1e-3,
batch 128, and a DataLoader over a Dataset whose __getitem__ turns each sample from a PIL image into a
tensor (what torchvision's MNIST + ToTensor do). The contender is vae_hub's trainer (`fit`) on vae-z20:
same model, same optimizer and batch, data in memory and batches taken by index.

The two run interleaved, one epoch each in turn, the whole comparison is repeated (--runs), and
each figure is a median over all epochs; the ratio is the median of the per-epoch ratios. Test
losses are after the same number of epochs (BCE summed over pixels + KL, one sample per test image).
The matmul-ceiling part measures this CPU's float32 GEMM throughput at the exact shapes of one
training step (between epochs) and reports what share of it the trainer reaches.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from common import median, write
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

import vae_hub
from vae_hub.data import load_split
from vae_hub.train import Batcher, evaluate_elbo, fit

LAYERS = [(784, 400), (400, 40), (20, 400), (400, 784)]  # vae-z20's Linear layers (in, out); fc21+fc22 fused


# ----------------------------------------------------------------------------- the reference recipe
class RefVAE(nn.Module):  # pytorch/examples vae/main.py
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h1 = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h1), self.fc22(h1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


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


def ref_epoch(model, opt, loader) -> float:
    """One epoch of pytorch/examples' train(); returns images per second."""
    model.train()
    t0, n, train_loss = time.perf_counter(), 0, 0.0
    for data, _ in loader:
        opt.zero_grad()
        recon, mu, logvar = model(data)
        loss = ref_loss(recon, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        opt.step()
        n += len(data)
    return n / (time.perf_counter() - t0)


@torch.no_grad()
def ref_test(model, loader) -> float:
    model.eval()
    return sum(_ref_batch(model, x) for x, _ in loader) / len(loader.dataset)


def _ref_batch(model, x) -> float:
    recon, mu, logvar = model(x)
    return ref_loss(recon, x, mu, logvar).item()


# ----------------------------------------------------------------------------- matmul ceiling
def step_flops_per_image() -> float:
    """Matmul FLOPs of one training step per image: forward, input grads (not for the first layer), weight grads."""
    fwd = sum(2 * i * o for i, o in LAYERS)
    return 3 * fwd - 2 * LAYERS[0][0] * LAYERS[0][1]


def gemm_ceiling(batch: int = 128, repeats: int = 200) -> float:
    """GFLOP/s of float32 GEMMs at the shapes one training step runs (forward, input grad, weight grad)."""
    shapes = []
    for k, (i, o) in enumerate(LAYERS):
        shapes.append((batch, i, o))  # forward: (B,i) @ (i,o)
        if k:
            shapes.append((batch, o, i))  # input grad: (B,o) @ (o,i)
        shapes.append((i, batch, o))  # weight grad: (i,B) @ (B,o)
    mats = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    best = []
    for _ in range(5):
        for a, b in mats:
            a @ b
        t0 = time.perf_counter()
        for _ in range(repeats):
            for a, b in mats:
                torch.mm(a, b)
        best.append(flops * repeats / (time.perf_counter() - t0) / 1e9)
    return median(best)


def one_run(train, test, epochs: int, ref_ips: list, ours_ips: list, ceilings: list, prefix: str = "") -> tuple[float, float]:
    """Both recipes from scratch, interleaved epoch by epoch: reference epoch e, our epoch e (the trainer
    stops after each epoch and resumes exactly from its checkpoint), then the GEMM ceiling. A slow spell on
    this shared machine then hits both sides of each ratio alike. Appends per-epoch figures; returns the
    test losses after the last epoch (reference, ours)."""
    torch.manual_seed(1)
    ref = RefVAE()
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    ref_train = DataLoader(TorchvisionMNIST(train.images, train.labels), batch_size=128, shuffle=True)
    cfg = vae_hub.get_config("vae-z20", epochs=epochs)
    with tempfile.TemporaryDirectory() as tmp:
        for epoch in range(1, epochs + 1):
            ref_ips.append(ref_epoch(ref, ref_opt, ref_train))
            model, hist, _ = fit(cfg, train, test, tmp, resume=True, stop_after_epoch=epoch, progress_bar=False,
                              log=lambda s: None)
            ours_ips.append(len(train) / hist[-1]["seconds"])
            ceilings.append(gemm_ceiling())
            print(f"{prefix}epoch {epoch:2d}: reference {ref_ips[-1]:8,.0f} img/s   vae_hub {ours_ips[-1]:8,.0f} img/s   "
                  f"ratio {ours_ips[-1] / ref_ips[-1]:.2f}x   GEMM ceiling {ceilings[-1]:.0f} GFLOP/s", flush=True)
    ref_testl = DataLoader(TorchvisionMNIST(test.images, test.labels), batch_size=128)
    return ref_test(ref, ref_testl), evaluate_elbo(model, Batcher(test, cfg, torch.device("cpu")))["loss"]


def step_breakdown(steps: int = 100) -> dict[str, float]:
    """Where one vae-z20 training step's CPU time goes (torch.profiler, self time per op, shares of the total):
    matmuls, the fused Adam update, and everything else (activations, loss, KL, autograd bookkeeping)."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = vae_hub.build("vae-z20").train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = torch.rand(128, 1, 28, 28)

    def step():
        loss = model(x).loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(20):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    groups = {"matmul": 0.0, "adam": 0.0, "other": 0.0}
    for e in prof.key_averages():
        key = "matmul" if e.key in ("aten::mm", "aten::addmm") else "adam" if e.key == "aten::_fused_adam_" else "other"
        groups[key] += e.self_cpu_time_total
    total = sum(groups.values())
    return {k: v / total for k, v in groups.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ylecun/mnist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--runs", type=int, default=3, help="repeat the whole comparison; figures are medians over all epochs")
    p.add_argument("--out")
    args = p.parse_args()
    train, test = load_split(args.dataset, "train"), load_split(args.dataset, "test")

    ref_ips, ours_ips, ceilings = [], [], []
    for run in range(1, args.runs + 1):
        ref_loss_test, ours_loss = one_run(train, test, args.epochs, ref_ips, ours_ips, ceilings,
                                           prefix=f"run {run}/{args.runs} " if args.runs > 1 else "")

    ratios = [o / r for o, r in zip(ours_ips, ref_ips)]
    flops = step_flops_per_image()
    shares = [o * flops / 1e9 / c for o, c in zip(ours_ips, ceilings)]
    res = {
        "epochs": args.epochs, "runs": args.runs,
        "reference": {"images_per_s_median": median(ref_ips), "images_per_s": ref_ips, "test_loss": ref_loss_test},
        "vae_hub": {"images_per_s_median": median(ours_ips), "images_per_s": ours_ips, "test_loss": ours_loss},
        "ratio": median(ratios), "ratio_per_epoch": ratios,
        "matmul": {"flops_per_image": flops, "ceiling_gflops": median(ceilings), "ceiling_gflops_per_epoch": ceilings,
                   "achieved_gflops": median(ours_ips) * flops / 1e9, "share_of_ceiling": median(shares),
                   "share_per_epoch": shares},
    }
    print(f"\n| recipe | images/s (median of {len(ours_ips)} epochs) | test loss after {args.epochs} epochs |")
    print("|---|---:|---:|")
    print(f"| pytorch/examples reference | {median(ref_ips):,.0f} | {ref_loss_test:.2f} |")
    print(f"| vae_hub trainer, vae-z20 | {median(ours_ips):,.0f} | {ours_loss:.2f} |")
    print(f"ratio: {res['ratio']:.2f}x (median of per-epoch ratios; target >= 5x, with a test loss at least as good)")
    print(f"matmul: {res['matmul']['achieved_gflops']:.1f} GFLOP/s achieved; GEMM ceiling at the step's shapes "
          f"{median(ceilings):.1f} GFLOP/s; share {100 * median(shares):.0f}% (median of per-epoch shares; "
          f"target >= 60%); {flops / 1e6:.2f} MFLOP per image")
    res["step_breakdown"] = step_breakdown()
    shares_txt = ", ".join(f"{k} {100 * v:.0f}%" for k, v in res["step_breakdown"].items())
    print(f"one training step's time (profiler): {shares_txt}")
    write("train_throughput", res, args.out)


if __name__ == "__main__":
    main()
