"""Write a trained model's folder: exactly what is pushed to the Hub.

The card (README.md) is removed first and written last: the Space, ``train.py --push-only`` and
``vae_hub.hub.folders.model_folders`` treat a folder without it as unfinished, so an interrupted save is never
served or pushed, and ``train.py --resume`` finishes it from the checkpoint that is still there.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vae_hub.data.mnist import Split
from vae_hub.hub import density
from vae_hub.hub.cards import write_card
from vae_hub.hub.folders import CARD_NAME, write_atomic
from vae_hub.hub.onnx import DECODER_FILE, ENCODER_FILE, export_folder
from vae_hub.model.vae import VAE
from vae_hub.training.figures import write_figures


def save_model_folder(model: VAE, folder: str | Path, history: list[dict], info: dict, test: Split | None = None,
                      progress: dict[str, torch.Tensor] | None = None, half: bool = False) -> Path:
    """Write weights (float16 with ``half``), config, history, figures, ONNX graphs, the density of the training
    codes if the model has one attached (``vae_hub.hub.density.fit_model``) and, last, the card."""
    folder = Path(folder)
    # the card goes first: from here until it is rewritten the folder reads as unfinished;
    # a retrained model's old metrics and graphs no longer apply
    for stale in (CARD_NAME, "metrics.json", ENCODER_FILE, DECODER_FILE, density.FILE):
        (folder / stale).unlink(missing_ok=True)
    model.save_pretrained(folder, storage_dtype=torch.float16 if half else None)
    record = {"variant": model.config.variant, **info, "storage_dtype": "float16" if half else "float32",
              "epochs": history}
    write_atomic(folder / "history.json", json.dumps(record, indent=1))
    if test is not None:
        write_figures(model, folder, test, history, progress)
    # exported from the folder as saved, so the graphs hold exactly the pushed weights (float16, stored so, with --half)
    export_folder(folder, half=half)
    if model.code_density is not None:
        density.save(model.code_density, model.code_density_info, folder / density.FILE)
    write_card(folder)
    return folder
