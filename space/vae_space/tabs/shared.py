"""What more than one tab computes: picking an input, the nearest test digits, drawing on a latent map (or
saying why there is none), and seeded prior samples."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vae_hub.data.preprocess import sketch_image, to_mnist
from vae_hub.model.vae import VAE

from .. import plots as P
from ..engine import Engine
from ..entries import MAP_MODEL, Entry
from ..handler import choice, seed_of

SOURCES = (["my drawing", "random test digit"] + [f"test digit {d}" for d in range(10)]
           + [f"{w} test digit {d}" for w in ("thick", "thin") for d in range(10)])
STYLE_SHARE = 0.15  # "thick"/"thin": a test digit from the 15% of its class with the most/least ink
N_NEIGHBOURS = 8


def pick_input(engine: Engine, source: Any, drawing: Any, seed: Any, slot: int) -> tuple[torch.Tensor, int | None, str]:
    """One input image (1, 1, 28, 28), its label (None for a drawing) and its description: the drawing, or
    a test digit picked by class (thick/thin: by ink within the class) or at random."""
    source = choice(source, SOURCES, "input source")
    if source == "my drawing":
        return torch.from_numpy(to_mnist(sketch_image(drawing)))[None, None], None, "your drawing"
    test = engine.test
    rng = np.random.default_rng([seed_of(seed), slot])
    pool = np.arange(len(test.labels)) if source == "random test digit" else \
        np.flatnonzero(test.labels == int(source.rsplit(" ", 1)[1]))
    if source.startswith(("thick", "thin")):  # stroke weight by ink mass within the class
        ink = test.images[pool].reshape(len(pool), -1).sum(1, dtype=np.int64)
        k = max(1, int(len(pool) * STYLE_SHARE))
        order = np.argsort(ink)
        pool = pool[order[-k:] if source.startswith("thick") else order[:k]]
    i = int(rng.choice(pool))
    return test.x[i:i + 1], int(test.labels[i]), f"test digit #{int(test.index[i])} (a {test.labels[i]})"


def neighbours(e: Entry, z: np.ndarray, k: int = N_NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """The k test digits whose codes are nearest z in e's latent space (indices, distances), closest first."""
    d2 = ((e.mu - z) ** 2).sum(1)
    idx = np.argpartition(d2, k)[:k]
    idx = idx[np.argsort(d2[idx])]
    return idx, np.sqrt(d2[idx])


def vote(engine: Engine, idx: np.ndarray) -> tuple[int, int]:
    """The most common label among test digits idx, and how many of them carry it."""
    counts = np.bincount(engine.test.labels[idx], minlength=10)
    return int(counts.argmax()), int(counts.max())


def map_picture(engine: Engine, name: str, paint: Callable[[P.Overlay], None], what: str) -> np.ndarray:
    """``name``'s latent map with ``paint`` drawn over it; without that model, a panel saying why."""
    m = engine.latent_map(name)
    if m is None:
        return P.placeholder(f"{what} needs {name}, which is not available: "
                             f"{engine.missing.get(name, 'not loaded')}.", (440, 450))
    return m.draw(paint)


def map_model(e: Entry) -> str:
    """The model whose 2-D map shows e's codes: e itself when it is 2-D, else the map model."""
    return e.name if e.config.z_dim == 2 else MAP_MODEL


def prior_codes(model: VAE, n: int, seed: int) -> torch.Tensor:
    """n codes from the model's prior, the same for the same seed (a private generator: thread-safe)."""
    return model.sample_prior(n, generator=torch.Generator().manual_seed(seed))


def r2(v: float | None, nd: int = 2) -> float | None:
    """A number for a table, rounded (None stays None: a blank cell)."""
    return None if v is None else round(float(v), nd)
