"""Seeing inside a convolutional VAE: first-layer filters and the encoder's feature maps.

Works on models built from either kit (``vae_hub.model.scratch`` or ``torch.nn``): the encoder is
``model.features``, an nn.Sequential of [conv, (batch norm), activation] blocks ending in Flatten.
Imported on demand (``from vae_hub.model.scratch import inspect``) because it needs matplotlib.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from vae_hub.model.scratch.layers import Conv2d, LeakyReLU, ReLU  # noqa: E402

# isinstance checks only: these torch.nn classes are recognised here, never used to compute anything
_CONVS = (nn.Conv2d, Conv2d)
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, ReLU, LeakyReLU)


def _encoder(model: nn.Module) -> nn.Sequential:
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential) or not any(isinstance(m, _CONVS) for m in features):
        raise ValueError(f"{type(model).__name__} has no convolutional encoder (model.features with a Conv2d)")
    return features


def first_layer_filters(model: nn.Module) -> Tensor:
    """The first Conv2d's weights, detached: (out_channels, in_channels, kh, kw)."""
    for m in _encoder(model):
        if isinstance(m, _CONVS):
            return m.weight.detach().clone()
    raise AssertionError("unreachable: _encoder checked for a Conv2d")


@torch.no_grad()
def feature_maps(model: nn.Module, x: Tensor) -> list[Tensor]:
    """Activations after each conv block of the encoder for one image x of shape (C, H, W) or (1, C, H, W).

    Returns one (channels, height, width) tensor per block. The model runs in eval mode (batch norm
    uses its running statistics, as it would for any single image) and its mode is restored after.
    """
    features = _encoder(model)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"feature_maps: expected one image (C, H, W) or (1, C, H, W), got {tuple(x.shape)}")
    was_training = model.training
    model.eval()
    try:
        maps: list[Tensor] = []
        h, open_block = x.to(next(model.parameters()).device), False
        for layer in features:
            if isinstance(layer, nn.Flatten):
                break
            if isinstance(layer, _CONVS) and open_block:  # a block without an activation ends here
                maps.append(h[0].contiguous())
            h = layer(h)
            if isinstance(layer, _CONVS):
                open_block = True
            elif open_block and isinstance(layer, _ACTIVATIONS):
                maps.append(h[0].contiguous())
                open_block = False
        if open_block:
            maps.append(h[0].contiguous())
        return maps
    finally:
        model.train(was_training)


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def plot_filters(model: nn.Module, path: str | Path, max_filters: int = 64) -> Path:
    """Save a PNG grid of the first conv layer's filters (RGB for 3 input channels, else a signed map)."""
    w = first_layer_filters(model).float().cpu()[:max_filters]
    rows, cols = _grid(w.shape[0], 8)
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows + 0.4), squeeze=False)
    vmax = float(w.abs().max()) or 1.0
    for ax in axes.flat:
        ax.axis("off")
    for i, f in enumerate(w):
        ax = axes.flat[i]
        if f.shape[0] == 3:
            # each filter stretched to [0, 1] on its own so its colour pattern is visible
            lo, hi = f.min(), f.max()
            ax.imshow(((f - lo) / (hi - lo + 1e-12)).permute(1, 2, 0).numpy(), interpolation="nearest")
        else:
            # one shared, symmetric scale: red excites, blue inhibits, comparable across filters
            ax.imshow(f[0].numpy(), cmap="bwr", vmin=-vmax, vmax=vmax, interpolation="nearest")
    channel_note = "" if w.shape[1] in (1, 3) else f" (input channel 0 of {w.shape[1]})"
    fig.suptitle(f"first-layer filters {tuple(w.shape[1:])}{channel_note}")
    return _save(fig, path)


def plot_feature_maps(model: nn.Module, x: Tensor, path: str | Path, max_maps: int = 16) -> Path:
    """Save a PNG: the input image, then one row per conv block with up to max_maps of its channels."""
    maps = feature_maps(model, x)
    img = (x[0] if x.dim() == 4 else x).detach().float().cpu()
    cols = max(min(max_maps, max(m.shape[0] for m in maps)), 1)
    fig, axes = plt.subplots(len(maps) + 1, cols, figsize=(1.1 * cols, 1.3 * (len(maps) + 1)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if img.shape[0] == 3:
        axes[0, 0].imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
    else:
        axes[0, 0].imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title("input", fontsize=8)
    for r, m in enumerate(maps, start=1):
        m = m.float().cpu()
        for c in range(min(cols, m.shape[0])):
            axes[r, c].imshow(m[c].numpy(), cmap="viridis", interpolation="nearest")
        axes[r, 0].set_title(f"block {r}: {tuple(m.shape)}", fontsize=8, loc="left")
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
