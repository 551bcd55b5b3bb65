"""Models to and from the Hugging Face Hub: resolve a name to a folder, load it, push a folder.

``load`` accepts a local folder, a bundled variant name (``pretrained/``) or a Hub repo id; loading reads
config.json (once) and model.safetensors only, strictly, and never unpickles anything. Folder discovery and
config reading live in ``vae_hub.hub.folders``, cards in ``vae_hub.hub.cards``, writing a folder in ``vae_hub.hub.save``;
their public names are re-exported here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi, constants, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError

from vae_hub.hub import density
from vae_hub.hub.cards import card_metrics, has_onnx, read_card, render_card, write_card
from vae_hub.hub.folders import (
    DEFAULT_NAMESPACE,
    REPO_PREFIX,
    WEIGHTS_NAME,
    bundled_dir,
    model_folders,
    read_config,
    repo_id_for,
)
from vae_hub.model.vae import VAE
from vae_hub.model.variants import VARIANTS, WHY

__all__ = ["DEFAULT_NAMESPACE", "PUSH_IGNORE", "REPO_PREFIX", "WHY", "Loaded", "bundled_dir", "card_metrics",
           "has_onnx", "load", "load_entry", "model_folders", "push_folder", "read_config", "render_card",
           "repo_id_for", "staged_files", "write_card"]
PUSH_IGNORE = ["checkpoint/*", "*.tmp*", ".*"]


def __getattr__(name: str) -> Any:
    # save_model_folder draws figures and exports ONNX (matplotlib, onnx): imported on first use only,
    # so that loading a model stays light
    if name == "save_model_folder":
        from vae_hub.hub.save import save_model_folder

        return save_model_folder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _resolve(name_or_path: str, revision: str | None = None) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if name_or_path in VARIANTS:
        local = bundled_dir() / name_or_path
        if local.is_dir():
            return local
        name_or_path = repo_id_for(name_or_path)
    elif path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") != 1:
        raise FileNotFoundError(f"{name_or_path!r} is not a model folder, a bundled variant ({', '.join(VARIANTS)}) "
                                "or a Hub repo id of the form 'namespace/name'")
    try:
        return Path(snapshot_download(name_or_path, revision=revision,
                                      allow_patterns=["config.json", WEIGHTS_NAME, "README.md", "*.json", density.FILE]))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
        why = ("HF_HUB_OFFLINE=1 is set and it is not in the local Hugging Face cache" if offline
               else f"it could not be downloaded ({type(e).__name__})")
        raise OSError(f"cannot load {name_or_path!r}: {why}. Download it once while online, or point at a local "
                      "folder instead, e.g. vae_hub.load('pretrained/vae-z20') or --weights DIR") from None
    except RepositoryNotFoundError:  # also a private or gated repo without access: the Hub answers the same
        raise FileNotFoundError(f"cannot load {name_or_path!r}: repository not found on the Hub "
                                f"({constants.ENDPOINT}); check the repo id, "
                                "or log in if it is private") from None


@dataclass
class Loaded:
    """What a caller of ``load_entry`` gets: the model, where it came from, its card and card metrics."""

    model: VAE
    folder: Path
    card: str = ""
    metrics: list[tuple[str, str, float]] = field(default_factory=list)


def load_entry(name_or_path: str | Path, *, device: str | torch.device = "cpu", revision: str | None = None) -> Loaded:
    """Load a model in eval mode with its folder, card text and card metrics (one download, one config parse).
    Only the weights and config.json decide whether it loads: a card that is missing, too large or not UTF-8
    gives "" and a missing, oversized or malformed history.json or metrics.json no metrics."""
    folder = _resolve(str(name_or_path), revision)
    model = VAE.from_folder(folder, read_config(folder), map_location=str(device))
    density.attach(model, folder)
    card = read_card(folder)
    try:
        metrics = card_metrics(folder)
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):  # the model still loads
        metrics = []
    return Loaded(model, folder, card, metrics)


def load(name_or_path: str | Path, *, device: str | torch.device = "cpu", revision: str | None = None) -> VAE:
    """Load a model in eval mode from a local folder, a Hub repo id, or a bundled variant name."""
    folder = _resolve(str(name_or_path), revision)
    model = VAE.from_folder(folder, read_config(folder), map_location=str(device))
    density.attach(model, folder)
    return model


# ---------------------------------------------------------------------------- push
def staged_files(folder: str | Path) -> list[tuple[str, int]]:
    """(relative path, bytes) of everything upload_folder would send (checkpoints excluded)."""
    import fnmatch

    folder = Path(folder)
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and not any(fnmatch.fnmatch(rel, pat) for pat in PUSH_IGNORE):
            out.append((rel, p.stat().st_size))
    return out


def push_folder(folder: str | Path, namespace: str, *, private: bool = False, dry_run: bool = False,
                token: str | None = None, log=print) -> str:
    """Create NAMESPACE/vae-hub-<variant> and upload the folder with its card rendered for that repo id."""
    folder = Path(folder)
    c = read_config(folder)
    repo_id = repo_id_for(c.variant, namespace)
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / c.variant
        shutil.copytree(folder, stage, ignore=shutil.ignore_patterns("checkpoint", "*.tmp*"))
        write_card(stage, repo_id)
        files = staged_files(stage)
        log(f"{'[dry run] ' if dry_run else ''}{repo_id} ({'private' if private else 'public'}): "
            f"{len(files)} files, {sum(s for _, s in files) / 2**20:.2f} MiB")
        for rel, size in files:
            log(f"  {size:>10,d}  {rel}")
        if dry_run:
            return repo_id
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(stage), repo_id=repo_id, repo_type="model",
                          ignore_patterns=PUSH_IGNORE, commit_message=f"Upload {c.variant} from vae-hub")
    return repo_id
