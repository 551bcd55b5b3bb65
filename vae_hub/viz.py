"""Figures: image grids, reconstructions, samples, latent maps, traversals, curves (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .models import VAE  # noqa: E402

CLASS_COLORS = plt.get_cmap("tab10")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) float in [0, 1] or uint8 -> (N, H, W, C) uint8."""
    if images.dtype != torch.uint8:
        images = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return images.cpu().permute(0, 2, 3, 1).numpy()


def image_grid(images: torch.Tensor, nrow: int, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile images into one RGB uint8 array, nrow images per row."""
    arr = to_uint8(images)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, -1)
    n, h, w, _ = arr.shape
    rows = max(1, -(-n // nrow))
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), pad_value, np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = arr[i]
    return out


def save_image(arr: np.ndarray, path: str | Path, scale: int = 2) -> None:
    from PIL import Image

    if arr.ndim == 3 and (arr[..., :1] == arr).all():
        arr = arr[..., 0]  # grayscale figures as 8-bit PNGs: a third of the bytes
    img = Image.fromarray(arr)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path, optimize=True)


def compact_png(path: str | Path) -> None:
    """Re-save a matplotlib PNG with an adaptive 256-colour palette: about a third of the bytes, no visible change."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    img.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def _labels_for(model: VAE, n: int) -> torch.Tensor | None:
    return torch.arange(n) % 10 if model.config.conditional else None


@torch.no_grad()
def plot_reconstructions(model: VAE, x: torch.Tensor, y: torch.Tensor | None, path: str | Path) -> None:
    """Inputs (top row) over their reconstructions from the posterior mode (bottom row)."""
    rec = model.reconstruct(x, y)
    save_image(image_grid(torch.cat([x, rec]), nrow=len(x)), path)


@torch.no_grad()
def plot_samples(model: VAE, path: str | Path, n: int = 64, seed: int = 0) -> None:
    torch.manual_seed(seed)
    save_image(image_grid(model.sample(n, _labels_for(model, n)), nrow=int(np.sqrt(n))), path)


@torch.no_grad()
def encode_means(model: VAE, x: torch.Tensor, y: torch.Tensor | None, batch: int = 2000) -> torch.Tensor:
    out = []
    for i in range(0, len(x), batch):
        out.append(model.encode(x[i:i + batch], None if y is None else y[i:i + batch]).mean)
    return torch.cat(out)


def _project(z: torch.Tensor) -> tuple[np.ndarray, str]:
    if z.shape[1] <= 2:
        return z.numpy(), "z"
    zc = z - z.mean(0)
    _, s, v = torch.linalg.svd(zc, full_matrices=False)
    share = (s[:2] ** 2).sum() / (s**2).sum()
    return (zc @ v[:2].T).numpy(), f"PCA of the {z.shape[1]}-D means, {100 * float(share):.0f}% of variance"


@torch.no_grad()
def plot_latent_map(model: VAE, x: torch.Tensor, labels: torch.Tensor, path: str | Path) -> None:
    """Posterior means of test digits coloured by class (PCA beyond 2-D; pairwise panels for 3-D)."""
    y = labels if model.config.conditional else None
    z = encode_means(model, x, y)[:, : max(model.config.z_dim, 1) if model.config.latent == "gaussian" else None]
    pairs = [(0, 1), (0, 2), (1, 2)] if z.shape[1] == 3 else [None]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.6), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        if pair is None:
            pts, what = _project(z)
            xl, yl = ("PC1", "PC2") if what != "z" else ("z1", "z2")
            if what != "z":
                ax.set_title(what, fontsize=9)
        else:
            pts, xl, yl = z[:, list(pair)].numpy(), f"z{pair[0] + 1}", f"z{pair[1] + 1}"
        ax.scatter(pts[:, 0], pts[:, 1], c=labels.numpy(), cmap="tab10", s=3, alpha=0.6, vmin=-0.5, vmax=9.5)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_aspect("equal", "datalim")
    sm = plt.cm.ScalarMappable(cmap="tab10", norm=plt.Normalize(-0.5, 9.5))
    fig.colorbar(sm, ax=axes[0].tolist(), ticks=range(10), label="digit")
    fig.suptitle(f"{model.config.variant}: test digits in latent space")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    compact_png(path)


@torch.no_grad()
def kl_per_dim(model: VAE, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """Mean KL of each continuous dimension against N(0, 1) (diagonal view of the posterior)."""
    post = model.encode(x, y)
    g = getattr(post, "continuous", post)
    mu, var = g.base_dist.loc, g.base_dist.scale**2
    return (0.5 * (mu**2 + var - 1 - var.log())).mean(0)


@torch.no_grad()
def plot_traversals(model: VAE, x: torch.Tensor, y: torch.Tensor | None, path: str | Path,
                    n_dims: int = 8, steps: int = 9, span: float = 3.0) -> None:
    """Decode a sweep of each most-used dimension around one digit's code; for codes, each category."""
    c = model.config
    base = model.encode(x[:1], None if y is None else y[:1]).mode
    rows = []
    if c.z_dim:
        order = kl_per_dim(model, x, y).argsort(descending=True)[:n_dims]
        for d in order.tolist():
            z = base.repeat(steps, 1)
            z[:, d] = torch.linspace(-span, span, steps)
            rows.append(z)
    for v in range(min(c.n_cat, 4)):
        z = base.repeat(steps, 1)
        start = c.z_dim + v * c.k_cat
        z[:, start:start + c.k_cat] = 0
        for s, k in enumerate(np.linspace(0, c.k_cat - 1, steps).round().astype(int)):
            z[s, start + k] = 1
        rows.append(z)
    z = torch.cat(rows)
    yy = None if y is None else y[:1].repeat(len(z))
    save_image(image_grid(torch.sigmoid(model.decode(z, yy)), nrow=steps), path)


def plot_loss_curves(history: list[dict], path: str | Path, title: str = "") -> None:
    ep = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, key in zip(axes, ("loss", "recon", "kl")):
        ax.plot(ep, [h[f"train_{key}"] for h in history], "o-", label="train")
        ax.plot(ep, [h[f"test_{key}"] for h in history], "s-", label="test")
        ax.set_title(f"{key} (nats/image)")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    compact_png(path)


def plot_progress(progress: dict[str, torch.Tensor], path: str | Path) -> None:
    """Top row: fixed test digits (right half). Then one row per epoch: fixed-z prior samples (left)
    and the reconstructions of those digits (right)."""
    inputs = progress["inputs"]
    top = torch.cat([torch.full_like(inputs, 255), inputs])
    epochs = [torch.cat([s, r]) for s, r in zip(progress["samples"], progress["recons"])]
    save_image(image_grid(torch.cat([top, *epochs]), nrow=2 * len(inputs)), path, scale=1)


@torch.no_grad()
def plot_manifold(model: VAE, path: str | Path, n: int = 15, span: float = 2.5) -> None:
    """Decoded grid over a 2-D latent."""
    t = torch.linspace(-span, span, n)
    zz = torch.stack(torch.meshgrid(t, -t, indexing="xy"), -1).reshape(-1, 2)  # row-major, z2 up
    save_image(image_grid(torch.sigmoid(model.decode(zz)), nrow=n, pad=0), path)


def write_figures(model: VAE, folder: str | Path, test, history: list[dict] | None = None,
                  progress: dict[str, torch.Tensor] | None = None, n_map: int = 5000) -> list[Path]:
    """Every figure that applies to the model, saved as folder/figures/*.png; returns their paths."""
    from .train import Batcher

    out = Path(folder) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    c = model.config
    model = model.eval()
    b = Batcher(test.subset(min(n_map, len(test))), c, torch.device("cpu"))
    model_cpu = model.cpu()
    x, y = b.get(torch.arange(len(b)))
    labels = b.labels
    idx = torch.stack([(labels == d).nonzero()[0, 0] for d in range(10) if (labels == d).any()])
    xs, ys = x[idx], (None if y is None else y[idx])
    torch.manual_seed(0)
    plot_reconstructions(model_cpu, xs, ys, out / "reconstructions.png")
    plot_samples(model_cpu, out / "samples.png", n=100 if c.conditional else 64)
    plot_traversals(model_cpu, x[:500], None if y is None else y[:500], out / "traversals.png")
    if c.z_dim >= 2:
        plot_latent_map(model_cpu, x, labels, out / "latent_map.png")
    if c.z_dim == 2 and not c.conditional and c.latent == "gaussian":
        plot_manifold(model_cpu, out / "manifold.png")
    if history:
        plot_loss_curves(history, out / "loss_curves.png", c.variant)
    if c.layers == "scratch":  # "seeing inside" the hand-written model
        write_inside_figures(model_cpu, out, xs[:1], history)
    if progress:
        plot_progress(progress, out / "progress.png")
    return sorted(out.glob("*.png"))


def plot_grad_norms(history: list[dict], path: str | Path, title: str = "") -> None:
    """Per-layer gradient norms (weights only), sampled every 50 steps during training, mean per epoch."""
    names = [k for k in history[0].get("grad_norms", {}) if k.endswith("weight")]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ep = [h["epoch"] for h in history]
    for k in names:
        ax.plot(ep, [h["grad_norms"].get(k, float("nan")) for h in history], "o-", ms=3, label=k.removesuffix(".weight"))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("‖∇W‖ (mean over sampled steps)")
    ax.set_title(title or "per-layer gradient norms during training", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    compact_png(path)


def write_inside_figures(model: VAE, out: Path, x: torch.Tensor, history: list[dict] | None) -> None:
    """First-layer filters, the feature maps of one input, and gradient norms over training."""
    from .scratch.inspect import plot_feature_maps, plot_filters

    plot_filters(model, out / "filters.png")
    plot_feature_maps(model, x, out / "feature_maps.png")
    if history and history[0].get("grad_norms"):
        plot_grad_norms(history, out / "grad_norms.png", f"{model.config.variant}: per-layer gradient norms")
