"""Model folders on disk: where they are, which are finished and what config they hold.

A model folder (what train.py writes and what is pushed to the Hub) holds model.safetensors, config.json,
history.json, figures/*.png, encoder.onnx and decoder.onnx, metrics.json once evaluated, and README.md
(the card). The card is written last (``vae_hub.hub.save``): a folder without it is unfinished.
"""

from __future__ import annotations

import os
from pathlib import Path

from vae_hub.checks import read_json
from vae_hub.files.tensors import CONFIG_NAME, WEIGHTS_NAME, atomic_path, read_config_json, write_atomic
from vae_hub.model.config import VAEConfig
from vae_hub.model.variants import REGISTRY

CARD_NAME = "README.md"
COMPLETE = (CONFIG_NAME, WEIGHTS_NAME, "history.json", CARD_NAME)  # the card last: the completion marker
DEFAULT_NAMESPACE = "vae-hub"
REPO_PREFIX = "vae-hub-"


def bundled_dir() -> Path:
    """The repository's bundled pretrained set (override with VAE_HUB_PRETRAINED)."""
    return Path(os.environ.get("VAE_HUB_PRETRAINED", Path(__file__).resolve().parents[2] / "pretrained"))


def repo_id_for(variant: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    return f"{namespace}/{REPO_PREFIX}{variant}"


def read_config(folder: str | Path) -> VAEConfig:
    """Parse and validate a folder's config.json strictly; the variant must be a registered one."""
    path = Path(folder) / CONFIG_NAME
    config = VAEConfig.from_dict(read_config_json(folder), str(path))
    if config.variant not in REGISTRY:
        raise ValueError(f"{path}: unknown variant {config.variant!r}; known variants: {', '.join(REGISTRY)}")
    return config


def config_fields(folder: str | Path) -> dict:
    """config.json as a dict for sorting folders by kind; {} when it is missing, unreadable or not an object."""
    try:
        data = read_json(Path(folder) / CONFIG_NAME)
    except (OSError, ValueError):  # read_json turns bad encoding, syntax, size and nesting into ValueError
        return {}
    return data if isinstance(data, dict) else {}


def is_vae_folder(folder: str | Path) -> bool:
    """config.json names a VAE variant (other models, e.g. the classifier, carry a ``model_type``)."""
    return _names_vae(config_fields(folder))


def _names_vae(fields: dict) -> bool:
    return "variant" in fields and "model_type" not in fields


def is_complete(folder: str | Path) -> bool:
    """Every file of a finished folder is there, the card (written last) included."""
    return all((Path(folder) / f).is_file() for f in COMPLETE)


def model_folders(root: str | Path) -> list[Path]:
    """Complete VAE model folders under root (or root itself), in registry order; the evaluation classifier
    and unfinished runs are skipped."""
    root = Path(root)
    if (root / CONFIG_NAME).is_file():
        return [root] if is_vae_folder(root) else []
    fields = {p: config_fields(p) for p in sorted(root.iterdir()) if p.is_dir() and is_complete(p)}
    order = {name: i for i, name in enumerate(REGISTRY)}
    return sorted((p for p, f in fields.items() if _names_vae(f)),
                  key=lambda p: (order.get(fields[p]["variant"], 999), p.name))


__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "atomic_path", "read_config_json", "write_atomic"]  # re-exported: the folder API
