"""Experiment tracking with trackio (Hugging Face's local-first tracker, wandb-style API), optional.

trackio is imported only when tracking is asked for; its store is local (``~/.cache/huggingface/trackio``,
or ``$TRACKIO_DIR``) unless a Space is named. ``trackio show`` opens the dashboard.
"""

from __future__ import annotations

import math
from typing import Any

import torch

INSTALL_HINT = "pip install 'trackio>=0.43,<0.44' (pinned in requirements.txt)"


def require_trackio():
    try:
        import trackio
    except ImportError as e:
        raise ImportError(f"tracking needs the optional package trackio ({e}); install it with: {INSTALL_HINT}") from None
    return trackio


def epoch_metrics(record: dict) -> dict[str, float]:
    """A history record as flat scalars: train/ and test/ terms, lr, temperature, seconds, grad_norm/<param>."""
    out: dict[str, float] = {}
    for split in ("train", "test"):
        for term in ("loss", "recon", "kl"):
            out[f"{split}/{term}"] = record[f"{split}_{term}"]
    for key in ("lr", "temperature", "seconds"):
        if record.get(key) is not None:
            out[key] = record[key]
    for name, value in record.get("grad_norms", {}).items():
        out[f"grad_norm/{name}"] = value
    return out


def image_grid(images: torch.Tensor) -> Any:
    """(N, C, 28, 28) uint8 -> one H x W x 3 uint8 array, a near-square grid with a 2-pixel black gutter."""
    from vae_hub.training.figures import image_grid as tile  # matplotlib only when tracking

    return tile(images, nrow=math.ceil(math.sqrt(len(images))), pad_value=0)


class Tracker:
    """One trackio run; call it as fit's ``on_epoch`` hook, then ``finish()``.

    Each epoch is logged at step = epoch: the scalars of ``epoch_metrics`` and the progress images
    (prior samples from fixed z, reconstructions of fixed test digits).
    """

    def __init__(self, project: str, name: str, config: dict, *, space_id: str | None = None,
                 group: str | None = None, images: bool = True):
        self.trackio = require_trackio()
        self.images = images
        self.run = self.trackio.init(project=project, name=name, config=config, space_id=space_id, group=group,
                                     auto_log_cpu=False, auto_log_gpu=False)

    def __call__(self, record: dict, frame: dict[str, torch.Tensor] | None = None) -> None:
        metrics: dict[str, Any] = epoch_metrics(record)
        if self.images and frame:
            for key, caption in (("samples", "prior samples (fixed z)"), ("recons", "reconstructions (fixed test digits)")):
                if key in frame:
                    metrics[f"progress/{key}"] = self.trackio.Image(image_grid(frame[key]),
                                                                    caption=f"epoch {record['epoch']}: {caption}")
        self.run.log(metrics, step=record["epoch"])

    def finish(self) -> None:
        self.run.finish()
