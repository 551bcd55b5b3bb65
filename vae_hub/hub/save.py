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
from vae_hub.model.vae import VAE, build
from vae_hub.training.figures import write_figures
from vae_hub.training.loop import Batcher, evaluate_elbo


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


def float16_check(model: VAE, test: Split, loss_fp32: float, tolerance: float = 0.1) -> dict:
    """The test loss of the weights rounded to float16 (as ``half=True`` stores them) against ``loss_fp32``; a
    ValueError where storage moves it by ``tolerance`` nat or more. Returns the record history.json keeps."""
    half = build(model.config)
    half.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    loss_fp16 = evaluate_elbo(half.to(next(model.parameters()).device), Batcher(test, model.config, half.prior_device))["loss"]
    delta = loss_fp16 - loss_fp32
    if abs(delta) >= tolerance:
        raise ValueError(f"{model.config.variant}: float16 storage moves the test loss by {delta:+.3f} nat")
    return {"test_loss_float32": loss_fp32, "test_loss_float16": loss_fp16, "delta": delta}
