"""Figures: image grids, reconstructions, samples, latent maps, traversals, curves (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vae_hub.cli import single_thread  # noqa: E402
from vae_hub.data.mnist import Split, color_table, split_seed  # noqa: E402
from vae_hub.model.distributions import kl_per_dim as _kl_per_dim  # noqa: E402
from vae_hub.model.vae import VAE, encode_split  # noqa: E402
from vae_hub.training.loop import Batcher  # noqa: E402

CLASS_COLORS = plt.get_cmap("tab10")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) float in [0, 1] or uint8 -> (N, H, W, C) uint8."""
    if images.dtype != torch.uint8:
        images = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return images.cpu().permute(0, 2, 3, 1).numpy()


def image_grid(images: torch.Tensor | np.ndarray, nrow: int, pad: int = 2, pad_value: int | Sequence[int] = 255,
               k: int = 1) -> np.ndarray:
    """Tile images into one RGB uint8 array, nrow images per row, each upscaled k times (nearest neighbour).

    ``images``: a tensor (N, C, H, W) in [0, 1] or uint8, or an array (N, H, W, 3) uint8 as the Space draws them.
    ``pad_value``: a grey level or an RGB triple for the gaps.
    """
    arr = images if isinstance(images, np.ndarray) else to_uint8(images)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, -1)
    if k != 1:
        arr = np.repeat(np.repeat(arr, k, 1), k, 2)
    n, h, w, _ = arr.shape
    rows = max(1, -(-n // nrow))
    out = np.empty((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), np.uint8)
    out[:] = pad_value
    for i in range(n):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = arr[i]
    return out


def latent_grid(n: int, span: float) -> torch.Tensor:
    """(n*n, 2) codes on a regular grid over [-span, span]², row-major with z2 pointing up (as a map is read)."""
    t = torch.linspace(-span, span, n)
    return torch.stack(torch.meshgrid(t, -t, indexing="xy"), -1).reshape(-1, 2)


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
    z = encode_split(model, x, y)[0][:, : max(model.config.z_dim, 1) if model.config.latent == "gaussian" else None]
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
def plot_traversals(model: VAE, x: torch.Tensor, y: torch.Tensor | None, path: str | Path,
                    n_dims: int = 8, steps: int = 9, span: float = 3.0) -> None:
    """Decode a sweep of each most-used dimension around one digit's code; for codes, each category."""
    c = model.config
    base = model.encode(x[:1], None if y is None else y[:1]).mode
    rows = []
    if c.z_dim:
        order = _kl_per_dim(model.encode(x, y), model.prior)[0].mean(0).argsort(descending=True)[:n_dims]
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
    save_image(image_grid(torch.sigmoid(model.decode(latent_grid(n, span))), nrow=n, pad=0), path)


def write_figures(model: VAE, folder: str | Path, test: Split, history: list[dict] | None = None,
                  progress: dict[str, torch.Tensor] | None = None, n_map: int = 5000) -> list[Path]:
    """Every figure that applies to the model, saved as folder/figures/*.png; returns their paths."""
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
    from vae_hub.model.scratch.inspect import plot_feature_maps, plot_filters

    plot_filters(model, out / "filters.png")
    plot_feature_maps(model, x, out / "feature_maps.png")
    if history and history[0].get("grad_norms"):
        plot_grad_norms(history, out / "grad_norms.png", f"{model.config.variant}: per-layer gradient norms")


# ---------------------------------------------------------------------------- evaluation figures (vae_hub.evaluation.protocol)
def _save_small(fig, path: Path, dpi: int = 72, colours: int = 64) -> None:
    """Save a figure as a palette PNG: the bundled model folders have a size budget (tests/test_hub.py)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    img = Image.open(buf).convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT)
    img.save(path, optimize=True)


def plot_latent_pca(model: VAE, means: torch.Tensor, labels: torch.Tensor, path: Path, n: int = 3000) -> None:
    """PCA of posterior means of the test digits (``labels`` their digits, the whole test split), coloured by
    digit (and, for coloured MNIST, by stroke colour)."""
    z = means[:n].double()
    zc = z - z.mean(0)
    with single_thread():
        vals, vecs = torch.linalg.eigh(zc.T @ zc)  # d x d: cheaper and steadier than an SVD of the N x d data
    pts = (zc @ vecs[:, [-1, -2]]).numpy()
    share = float(vals[-2:].sum() / vals.clamp(min=0).sum())
    colour = model.config.data == "color"
    fig, axes = plt.subplots(1, 2 if colour else 1, figsize=(10.5 if colour else 5.6, 4.6), squeeze=False)
    ax = axes[0, 0]
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=labels[:n].numpy(), cmap="tab10", s=3, alpha=0.6, vmin=-0.5, vmax=9.5)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
    ax.set_title("coloured by digit")
    if colour:
        rgb = color_table(len(labels), split_seed(model.config.color_seed, "test"))[:n].numpy()
        axes[0, 1].scatter(pts[:, 0], pts[:, 1], c=rgb, s=3, alpha=0.8)
        axes[0, 1].set_title("coloured by stroke colour")
    for a in axes[0]:
        a.set_xlabel("PC 1")
        a.set_ylabel("PC 2")
    fig.suptitle(f"{model.config.variant}: PCA of {model.config.latent_size}-D posterior means "
                 f"({100 * share:.0f}% of variance in 2 PCs)")
    fig.tight_layout()
    _save_small(fig, path)


@torch.inference_mode()
def plot_uncertainty(model: VAE, x_all: torch.Tensor, y_all: torch.Tensor | None, labels: torch.Tensor, path: Path,
                     n_inputs: int = 8, n_samples: int = 64, seed: int = 0) -> None:
    """Rows: the first test digit of each class below ``n_inputs``, the mean of decodings of ``n_samples``
    posterior samples, and their per-pixel standard deviation."""
    idx = torch.stack([(labels == k).nonzero()[0, 0] for k in range(n_inputs) if (labels == k).any()])
    x, y = x_all[idx], None if y_all is None else y_all[idx]
    torch.manual_seed(seed)
    z = model.encode(x, y).sample((n_samples,))
    probs = torch.sigmoid(model.decode(z.flatten(0, 1), None if y is None else y.repeat(n_samples)))
    probs = probs.view(n_samples, *x.shape)
    mean, std = probs.mean(0), probs.std(0).mean(1, keepdim=True)  # std averaged over colour channels
    vmax = max(float(std.max()), 1e-6)
    heat = torch.from_numpy(plt.get_cmap("magma")((std / vmax).squeeze(1).numpy())[..., :3]).permute(0, 3, 1, 2)
    rgb = lambda t: t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t
    grid = image_grid(torch.cat([rgb(x), rgb(mean), heat.float()]), nrow=len(x))
    fig, ax = plt.subplots(figsize=(1.0 * len(x) + 1.2, 3.6))  # one axes: drawing 24 small ones is slow
    ax.imshow(grid)
    ax.set_xticks([])
    ax.set_yticks([(i + 0.5) * grid.shape[0] / 3 for i in range(3)], ["input", "mean", "pixel std"])
    fig.colorbar(plt.cm.ScalarMappable(cmap="magma", norm=plt.Normalize(0, vmax)), ax=ax, shrink=0.6, label="std")
    ax.set_title(f"{model.config.variant}: decodings of {n_samples} posterior samples", fontsize=9)
    _save_small(fig, path, dpi=80, colours=128)  # more colours: the colour models' strokes must stay true
