"""MNIST through Hugging Face `datasets`, decoded once into uint8 tensors and cached.

`load_split` accepts a Hub id (default ``ylecun/mnist``), a local folder in the Hub layout, or
parquet file(s) with the same schema (``image``, ``label``). Inputs for the models are made per
batch from the uint8 arrays: grayscale in [0, 1], a fresh Bernoulli binarisation, or coloured.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from vae_hub.checks import check_labels, open_image
from vae_hub.files.tensors import save_safetensors

DEFAULT_DATASET = "ylecun/mnist"


def cache_dir() -> Path:
    return Path(os.environ.get("VAE_HUB_CACHE", Path.home() / ".cache" / "vae_hub"))


@dataclass
class Split:
    """One split in memory: images uint8 (N, 1, 28, 28), labels int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str = "train"

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int) -> Split:
        return Split(self.images[:n], self.labels[:n], self.name)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device), self.name)


def shown_dataset(dataset: str) -> str:
    """A dataset as reports and folders name it: a local folder relative to the working directory, not this
    machine's absolute path (a Hub id is left as it is)."""
    p = Path(dataset)
    if not p.is_absolute() or not p.exists():
        return dataset
    return os.path.relpath(p)


def _is_local(dataset: str) -> bool:
    return os.path.exists(dataset) or dataset.startswith((".", "/", "~")) or dataset.endswith(".parquet")


def _load_hf(dataset: str, split: str):
    import datasets

    if _is_local(dataset):
        path = Path(dataset).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"dataset {dataset!r} not found: expected a folder in the ylecun/mnist layout "
                                    "(train/test parquet files) or a .parquet file")
        verbosity = datasets.utils.logging.get_verbosity()
        datasets.utils.logging.set_verbosity(logging.CRITICAL)  # its own error lines would come before ours
        try:
            if path.is_file():
                ds = datasets.load_dataset("parquet", data_files={split: str(path)})
            else:
                ds = datasets.load_dataset(str(path))
        except Exception as e:  # DatasetGenerationError and the like: 40-60 lines of traceback otherwise
            raise ValueError(f"dataset {dataset!r}: {_unreadable(e) or _first_line(e)}") from None
        finally:
            datasets.utils.logging.set_verbosity(verbosity)
    else:
        try:
            ds = datasets.load_dataset(dataset)
        except Exception as e:
            raise RuntimeError(f"could not load dataset {dataset!r} from the Hugging Face Hub ({type(e).__name__}: "
                               f"{e}). Offline? Pass --dataset a local folder or parquet file with the "
                               "ylecun/mnist schema (columns 'image', 'label').") from None
    if split not in ds:
        raise ValueError(f"dataset {dataset!r} has no split {split!r}; it has {sorted(ds)}; expected 'train' and 'test'")
    part = ds[split]
    missing = {"image", "label"} - set(part.column_names)
    if missing:
        raise ValueError(f"dataset {dataset!r} split {split!r} lacks column(s) {sorted(missing)}: expected the "
                         f"ylecun/mnist schema (image, label); it has {part.column_names}")
    return part


def _causes(e: BaseException) -> list[BaseException]:
    out = []
    while e is not None and len(out) < 8:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _first_line(e: BaseException) -> str:
    text = str(e).strip().split("\n")[0]
    return f"{type(e).__name__}: {text[:200]}"


def _unreadable(e: BaseException) -> str | None:
    """What a failed load of local parquet files means, in words: mismatched columns or a damaged file."""
    chain = _causes(e)
    for c in chain:
        if type(c).__name__ == "CastError" or "column names don't match" in str(c):
            return ("its parquet files do not all have the same columns; every split needs the ylecun/mnist "
                    "schema (image, label)")
    if any(type(c).__name__ == "DatasetGenerationError" or type(c).__module__.startswith("pyarrow") for c in chain):
        return f"a parquet file is damaged or not parquet ({_first_line(chain[-1])})"
    return None


def _decode(part, source: str = "dataset") -> tuple[torch.Tensor, torch.Tensor]:
    import datasets

    raw = part.cast_column("image", datasets.Image(decode=False))
    images = np.empty((len(raw), 1, 28, 28), np.uint8)
    for i, item in enumerate(raw["image"]):
        img = open_image(item, f"{source}: image {i}")
        if img.size != (28, 28):
            raise ValueError(f"{source}: image {i} is {img.size[0]}x{img.size[1]}; expected 28x28 MNIST digits")
        images[i, 0] = np.asarray(img.convert("L"))
    labels = raw["label"]  # one read: the column is materialised on every access
    check_labels(labels, source)
    labels = torch.tensor(np.asarray(labels, dtype=np.int64))
    return torch.from_numpy(images), labels


def _local_key(dataset: str) -> str | None:
    """A cache key for a local dataset from its files' names, sizes and modification times, so a cached split
    loads without importing `datasets` (about a second of every start-up); None for a Hub id."""
    p = Path(dataset).expanduser()
    if not _is_local(dataset) or not p.exists():
        return None
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file()
                                           and not any(s.startswith(".") for s in f.relative_to(p).parts))
    h = hashlib.sha256(str(p.resolve()).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name if f == p else f.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _read_cache(cache: Path, split: str) -> Split | None:
    """The cached split, or None (no cache yet, or a damaged one, which is removed)."""
    if not cache.is_file():
        return None
    try:
        t = safetensors.torch.load_file(str(cache))
        return Split(t["images"], t["labels"], split)
    except Exception:
        cache.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
        return None


def load_split(dataset: str = DEFAULT_DATASET, split: str = "train", use_cache: bool = True) -> Split:
    """Decode a split once and cache it (a local dataset by its files' sizes and times, a Hub dataset by its
    fingerprint), so later runs start in about a second."""
    key = _local_key(dataset)
    cache = cache_dir() / f"mnist-local-{key}-{split}.safetensors" if key else None
    if use_cache and cache is not None and (hit := _read_cache(cache, split)) is not None:
        return hit
    part = _load_hf(dataset, split)
    if cache is None:  # a Hub dataset: its fingerprint names the cache
        cache = cache_dir() / f"mnist-{part._fingerprint}-{split}.safetensors"
        if use_cache and (hit := _read_cache(cache, split)) is not None:
            return hit
    images, labels = _decode(part, f"dataset {dataset!r} split {split!r}")
    if use_cache:
        save_safetensors({"images": images, "labels": labels}, cache)
    return Split(images, labels, split)


# ---------------------------------------------------------------------------- input transforms
def color_table(n: int, seed: int) -> torch.Tensor:
    """(n, 3) stroke colours, one per index, reproducible for a seed; the brightest channel is 1."""
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(n, 3, generator=g)
    return c / c.amax(1, keepdim=True)


def split_seed(seed: int, split: str) -> int:
    # train and test get different colours for the same index
    return seed * 2 + (split == "test")


def make_inputs(images: torch.Tensor, kind: str, colors: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, 1, 28, 28) -> model input (B, C, 28, 28) float in [0, 1].

    gray: intensities / 255. binarized: a fresh Bernoulli draw each call. color: strokes times
    per-image colours ``colors`` (B, 3).
    """
    x = images.float().div_(255)
    if kind == "gray":
        return x
    if kind == "binarized":
        return torch.bernoulli(x, generator=generator)
    if kind == "color":
        if colors is None:
            raise ValueError("coloured inputs need a (B, 3) colour per image")
        return x * colors[:, :, None, None]
    raise ValueError(f"unknown input kind {kind!r}; expected gray, binarized or color")
