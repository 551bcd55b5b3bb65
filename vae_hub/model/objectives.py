"""Training objectives: the ELBO (with an optional KL warm-up) and the importance-weighted bound (IWAE).

IWAE (Burda et al. 2016): log p(x) >= E[log (1/k) sum_i w_i], w_i = p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x); the
bound tightens as k grows and k = 1 is the ELBO (with a one-sample KL). DReG (Tucker et al. 2019) replaces the
encoder's gradient by its doubly reparameterised form: the score term (log q's direct dependence on the
encoder) is dropped and the pathwise terms are weighted by the squared normalised weights, which has the same
expectation and a variance that does not grow with k. The decoder's gradient is IWAE's, unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from vae_hub.model.config import VAEConfig
from vae_hub.model.distributions import diagonal_gaussian
from vae_hub.model.vae import VAE


class Terms(NamedTuple):
    """Per-image training terms in nats, shape (B,)."""

    loss: torch.Tensor  # what is minimised: -ELBO (KL weighted) or -IWAE bound
    recon: torch.Tensor  # -log p(x|z), mean over the samples
    kl: torch.Tensor  # the exact KL(q(z|x) || p(z)), for the record


def kl_weight_at(config: VAEConfig, step: int, steps_per_epoch: int) -> float:
    """KL warm-up: the KL weight rises linearly from 0 at the first step to 1 after kl_warmup_epochs, then holds."""
    if not config.kl_warmup_epochs:
        return 1.0
    return min(1.0, step / (config.kl_warmup_epochs * steps_per_epoch))


def log_weights_at(model: VAE, x: torch.Tensor, y: torch.Tensor | None, z: torch.Tensor,
                   q: torch.distributions.Distribution, weight: float = 1.0,
                   nll: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Importance log-weights of the codes ``z`` (k, B, D) drawn for the inputs ``x`` (B, ...): (log_w, recon),
    both (k, B), log_w = log p(x|z) + weight (log p(z) - log q(z|x)) and recon = -log p(x|z). ``nll`` scores the
    pixels (default: the model's own kit). The training bound (``iwae_log_weights``) and the evaluation's
    likelihood (``vae_hub.evaluation.metrics.log_weights``) are both this."""
    k = z.shape[0]
    zz = z.flatten(0, 1)
    logits = model.decode(zz) if y is None else model.decode(zz, y.repeat(k))
    recon = (nll or model.recon_nll)(logits, x.repeat(k, *([1] * (x.dim() - 1)))).view(k, x.shape[0])
    return -recon + weight * (model.prior.log_prob(z) - q.log_prob(z)), recon


def iwae_log_weights(model: VAE, x: torch.Tensor, y: torch.Tensor | None, k: int, dreg: bool = False,
                     kl_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.distributions.Distribution]:
    """(log_w (k, B), recon (k, B), posterior): log_w_i = log p(x|z_i) + weight (log p(z_i) - log q(z_i|x)) with
    weight = beta * kl_weight and reparameterised z_i ~ q(z|x), differentiable. With ``dreg`` log q is scored with
    the posterior's parameters detached and the gradient reaching z_i is reweighted by w~_i (call backward on
    ``-(logsumexp(log_w) - log k)``): the encoder then gets the DReG estimator, the decoder IWAE's gradient."""
    post = model.encode(x, y)
    z = post.rsample((k,))  # (k, B, D)
    q = diagonal_gaussian(post.mean.detach(), post.stddev.detach()) if dreg else post
    log_w, recon = log_weights_at(model, x, y, z, q, model.config.beta * kl_weight)
    if dreg and z.requires_grad:
        # d(-bound)/d log_w_i = -w~_i; one more factor w~_i on the pathwise gradient gives DReG's w~_i^2
        norm_w = torch.softmax(log_w.detach(), 0).unsqueeze(-1)
        z.register_hook(lambda g: g * norm_w)
    return log_w, recon, post


def iwae_terms(model: VAE, x: torch.Tensor, y: torch.Tensor | None, k: int, dreg: bool = False,
               kl_weight: float = 1.0) -> Terms:
    """The negative k-sample IWAE bound per image, with the mean recon and exact KL beside it."""
    log_w, recon, post = iwae_log_weights(model, x, y, k, dreg, kl_weight)
    bound = log_w.logsumexp(0) - math.log(k)
    return Terms(-bound, recon.mean(0), model.kl(post).detach())


def training_terms(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0) -> Terms:
    """The loss the config's objective minimises. The ELBO at full KL weight is exactly ``model(x, y).loss``."""
    c = model.config
    if c.objective == "iwae":
        return iwae_terms(model, x, y, c.iwae_k, c.dreg, kl_weight)
    out = model(x, y)
    loss = out.loss if kl_weight == 1.0 else out.recon + c.beta * kl_weight * out.kl
    return Terms(loss, out.recon, out.kl)
