"""Training throughput: our trainer on vae-z20 against the pytorch/examples VAE recipe, in one run.

    python bench/train_throughput.py --dataset ../shared/mnist [--epochs 10]

The reference is written out here as pytorch/examples `vae/main.py` does it: MLP 784-400-20, Adam 1e-3,
batch 128, and a DataLoader over a Dataset whose __getitem__ turns each sample from a PIL image into a
tensor (what torchvision's MNIST + ToTensor do). The contender is vae_hub's trainer (`fit`) on vae-z20:
same model, same optimizer and batch, data in memory and batches taken by index.

Images/s are medians over the timed epochs of each;
test losses are after the same number of epochs (BCE summed over pixels + KL, one sample per test image).
The matmul-ceiling part measures this CPU's float32 GEMM throughput at the exact shapes of one training
step and reports what share of it the trainer reaches.
"""

from __future__ import annotations

import argparse
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


class PILMNIST(Dataset):  # what torchvision.datasets.MNIST + transforms.ToTensor() do per sample
    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images[:, 0].numpy(), labels.numpy()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i], mode="L")
        x = torch.from_numpy(np.array(img, np.uint8, copy=True)).float().div(255).unsqueeze(0)
        return x, int(self.labels[i])


def ref_epoch(model, opt, loader) -> tuple[float, float]:
    model.train()
    t0, n = time.perf_counter(), 0
    for x, _ in loader:
        recon, mu, logvar = model(x)
        loss = ref_loss(recon, x, mu, logvar)
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += len(x)
    return n / (time.perf_counter() - t0), time.perf_counter() - t0


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ylecun/mnist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out")
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    train, test = load_split(args.dataset, "train"), load_split(args.dataset, "test")

    torch.manual_seed(1)
    ref = RefVAE()
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    ref_train = DataLoader(PILMNIST(train.images, train.labels), batch_size=128, shuffle=True)
    ref_testl = DataLoader(PILMNIST(test.images, test.labels), batch_size=128)
    ref_ips, ref_secs = [], []
    for _ in range(args.epochs):
        ips, secs = ref_epoch(ref, ref_opt, ref_train)
        ref_ips.append(ips)
        ref_secs.append(secs)
    ref_loss_test = ref_test(ref, ref_testl)

    import tempfile

    cfg = vae_hub.get_config("vae-z20", epochs=args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        model, hist = fit(cfg, train, test, tmp, progress_bar=False, log=lambda s: None)
    ours_ips = [len(train) / h["seconds"] for h in hist]
    ours_loss = evaluate_elbo(model, Batcher(test, cfg, torch.device("cpu")))["loss"]

    ceiling = gemm_ceiling()
    achieved = median(ours_ips) * step_flops_per_image() / 1e9
    res = {
        "epochs": args.epochs,
        "reference": {"images_per_s_median": median(ref_ips), "images_per_s": ref_ips, "test_loss": ref_loss_test,
                      "seconds_total": sum(ref_secs)},
        "vae_hub": {"images_per_s_median": median(ours_ips), "images_per_s": ours_ips, "test_loss": ours_loss,
                    "seconds_total": sum(h["seconds"] for h in hist)},
        "ratio": median(ours_ips) / median(ref_ips),
        "matmul": {"flops_per_image": step_flops_per_image(), "ceiling_gflops": ceiling, "achieved_gflops": achieved,
                   "share_of_ceiling": achieved / ceiling},
    }
    print(f"| recipe | images/s (median of {args.epochs} epochs) | test loss after {args.epochs} epochs |")
    print("|---|---:|---:|")
    print(f"| pytorch/examples reference | {median(ref_ips):,.0f} | {ref_loss_test:.2f} |")
    print(f"| vae_hub trainer, vae-z20 | {median(ours_ips):,.0f} | {ours_loss:.2f} |")
    print(f"ratio: {res['ratio']:.2f}x (target >= 5x, with a test loss at least as good)")
    print(f"matmul: {achieved:.1f} GFLOP/s achieved of a {ceiling:.1f} GFLOP/s GEMM ceiling at the step's shapes "
          f"= {100 * achieved / ceiling:.0f}% (target >= 60%); {step_flops_per_image() / 1e6:.2f} MFLOP per image")
    write("train_throughput", res, args.out)


if __name__ == "__main__":
    main()
