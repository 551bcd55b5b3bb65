"""The layer kit, chosen once per config: the layers, the Bernoulli NLL, the KL and the optimizer.

``torch``: torch.nn layers, torch's BCE, the exact KL of ``torch.distributions`` and fused Adam.
``scratch``: the hand-written kit in ``vae_hub.scratch`` (every backward pass and Adam written by hand);
its KL is the closed-form diagonal-Gaussian one against N(0, I), the only prior the config allows it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, kl_divergence

from . import scratch
from .config import VAEConfig


@dataclass(frozen=True)
class LayerKit:
    layers: ModuleType  # provides Linear, ReLU, Conv2d, ConvTranspose2d, BatchNorm2d
    bce: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, x) -> nats per image, summed over pixels
    kl: Callable[[Distribution, Distribution], torch.Tensor]  # (posterior, prior) -> nats per image
    adam: Callable[[Iterable[nn.Parameter], float], torch.optim.Optimizer]


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for Bernoulli pixels given logits, summed over all but the first dimension (the torch kit's
    reconstruction loss, and the likelihood the evaluation scores)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def _torch_adam(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    # the fused kernel does the whole update in one pass per tensor: ~10-15% faster steps for the MLPs here
    return torch.optim.Adam(params, lr=lr, fused=True)


def _scratch_kl(post: Distribution, prior: Distribution) -> torch.Tensor:
    return scratch.gaussian_kl(post.mean, 2 * post.stddev.log())


KITS: dict[str, LayerKit] = {
    "torch": LayerKit(nn, bernoulli_nll, kl_divergence, _torch_adam),
    "scratch": LayerKit(scratch, lambda logits, x: scratch.bce_with_logits(logits.flatten(1), x.flatten(1)),
                        _scratch_kl, lambda params, lr: scratch.Adam(params, lr=lr)),
}


def kit_for(config: VAEConfig) -> LayerKit:
    return KITS[config.layers]
