"""What the Space holds of each variant and of its test sample: a loaded variant (``Entry``: its model and card, and
what is prepared for it), which features a variant serves, the measured handwriting factors, and the bundled test
digits. ``engine`` keeps them; ``prepare`` fills in their test-set encodings."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from vae_hub.checks import read_json
from vae_hub.data.mnist import color_table, split_seed
from vae_hub.model.config import VAEConfig
from vae_hub.model.vae import VAE

log = logging.getLogger("vae_space")

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TEST_DIGITS = ASSETS / "test_digits.safetensors"
BETAS = ["beta-vae-b0.5", "beta-vae-b1", "beta-vae-b2", "beta-vae-b4", "beta-vae-b8"]
COLOR_MODELS = ["color-vae", "color-gumbel", "color-joint"]
MAP_MODEL = "vae-z2"


@dataclass
class Factors:
    """How each latent dimension of a model tracks the measured handwriting factors (``vae_hub.evaluation.morpho``)."""

    corr: np.ndarray  # (d, K) Pearson ρ of the test digits' posterior means with each factor
    names: list[str]  # the K factors
    source: str  # where ρ comes from, said under the heat map

    def labels(self, min_abs: float = 0.3) -> list[tuple[str | None, float]]:
        """Each dimension's dominant factor and its signed ρ (no name below ``min_abs``)."""
        from vae_hub.evaluation.disentangle import dominant_factor

        return dominant_factor(self.corr, self.names, min_abs)


@dataclass
class Entry:
    """A loaded variant, its card, and (for grayscale Gaussian encoders) its test-set encodings."""

    name: str
    model: VAE
    folder: Path | None
    card: str
    metrics: list[tuple[str, str, float]]
    seconds: float
    mu: np.ndarray | None = None  # (N, z) posterior means of the test sample
    elbo: np.ndarray | None = None  # (N,) deterministic ELBO: recon at the posterior mean + exact KL
    elbo_sorted: np.ndarray | None = None
    active: int | None = None  # active units: Var_x(E[z|x]) > 0.01 (Burda et al.)
    fingerprint: str = ""  # hash of the weights (and test sample): the key of its disk caches
    ready: threading.Event = field(default_factory=threading.Event)  # test-set encodings (and map) computed
    error: str = ""  # why preparing them failed, if it did
    onnx: dict[str, Path] | None = None  # encoder/decoder graphs for the browser, once exported
    onnx_error: str = ""
    morpho: Factors | None = None  # from metrics.json (morpho_correlation), when the evaluation stored it

    @property
    def config(self) -> VAEConfig:
        return self.model.config


def is_encoder(c: VAEConfig) -> bool:
    """Models a drawing can go into: grayscale, Gaussian latent, no label needed."""
    return c.data != "color" and c.latent == "gaussian" and not c.conditional


def is_conditional_generator(c: VAEConfig) -> bool:
    """The class-conditional model: grayscale, Gaussian latent, a label into its decoder (the page samples it)."""
    return c.data != "color" and c.latent == "gaussian" and c.conditional


def is_colour(c: VAEConfig) -> bool:
    """The coloured-MNIST models (continuous, categorical or joint codes): the page sweeps their codes."""
    return c.data == "color"


@dataclass
class TestDigits:
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64
    index: np.ndarray  # (N,) position in the MNIST test split (fixes the coloured-MNIST colours)
    x: torch.Tensor = field(init=False)  # (N, 1, 28, 28) float in [0, 1]

    def __post_init__(self) -> None:
        self.x = torch.from_numpy(self.images).float().div_(255).unsqueeze(1)

    @classmethod
    def load(cls, path: Path = TEST_DIGITS) -> TestDigits:
        t = safetensors.torch.load_file(str(path))
        return cls(t["images"].reshape(-1, 28, 28).numpy(), t["labels"].long().numpy(), t["index"].long().numpy())

    def colours(self, i: np.ndarray | list[int], seed: int) -> torch.Tensor:
        """(len(i), 3) the stroke colours the colour models' test split gave these digits (by MNIST test index)."""
        table = color_table(10000, split_seed(seed, "test"))
        return table[torch.from_numpy(self.index[np.asarray(i)])]

    def colored(self, i: np.ndarray | list[int], seed: int) -> torch.Tensor:
        """The digits as the colour models saw the test split: strokes times a per-index colour."""
        return self.x[np.asarray(i)] * self.colours(i, seed)[:, :, None, None]


def morpho_metrics(folder: Path | None) -> Factors | None:
    """The factor correlations the evaluation stored in metrics.json (morpho_correlation, morpho_factors)."""
    try:
        m = read_json(folder / "metrics.json") if folder else {}
        corr = np.asarray(m["morpho_correlation"], np.float64)
        names = [str(n) for n in m.get("morpho_factors") or ()]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if corr.ndim != 2 or corr.shape[1] != len(names) or not np.isfinite(corr).all():
        log.warning("%s: morpho_correlation %s does not match morpho_factors %s; ignored", folder, corr.shape, names)
        return None
    return Factors(corr, names, "ρ on the test split (metrics.json)")
