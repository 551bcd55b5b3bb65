"""A from-scratch layer kit: every backward pass and the optimizer written by hand.

The layers are drop-in twins of their torch.nn namesakes (same parameter names, shapes and default
initialisation), but their maths runs inside ``torch.autograd.Function`` subclasses whose backward is
hand-written (see ``functional.py``), so autograd only chains these hand-made gradients together.
``inspect`` (imported on demand, it needs matplotlib) plots filters and feature maps.
"""

from vae_hub.model.scratch.functional import bce_with_logits, gaussian_kl
from vae_hub.model.scratch.layers import BatchNorm2d, Conv2d, ConvTranspose2d, LeakyReLU, Linear, ReLU
from vae_hub.model.scratch.optim import Adam

__all__ = [
    "Adam",
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "LeakyReLU",
    "Linear",
    "ReLU",
    "bce_with_logits",
    "gaussian_kl",
]
