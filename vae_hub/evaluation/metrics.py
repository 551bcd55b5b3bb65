"""Evaluation metrics as plain functions, each checkable on synthetic inputs (see tests/test_evaluate.py).

- importance-sampled log-likelihood (Burda et al., IWAE) and the ELBO from the same samples
- active units (Burda et al.) and KL per latent unit
- a linear probe (multinomial logistic regression) and the mutual-information gap (MIG)
- the Fréchet distance between two feature sets
- stroke colour of coloured digits and angular colour error
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vae_hub.cli import single_thread
from vae_hub.model.distributions import kl_per_dim
from vae_hub.model.objectives import log_weights_at
from vae_hub.model.vae import bernoulli_nll


# ---------------------------------------------------------------------------- likelihood
@torch.inference_mode()
def log_weights(model, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 5000, chunk: int = 2500) -> torch.Tensor:
    """(B, k) importance log-weights log p(x|z) + log p(z) - log q(z|x), z ~ q(z|x), float64.

    ``model`` needs ``encode(x[, y])`` -> Distribution, ``decode(z[, y])`` -> Bernoulli logits and ``prior``.
    Discrete latents are drawn as hard one-hot samples (``Distribution.sample``) and scored with the
    categorical probabilities, so this is the likelihood of the discrete model, not of its relaxation.
    For a conditional model (y given) the weights estimate log p(x|y). Samples are decoded ``chunk`` at a
    time, so memory stays bounded for any k. Draws use torch's global generator: seed it for repeatability.
    """
    post = model.encode(x, y) if y is not None else model.encode(x)
    per = max(1, chunk // x.shape[0])  # samples per image per decoder call
    out = []
    for start in range(0, k, per):
        z = post.sample((min(per, k - start),))  # (n, B, d)
        out.append(log_weights_at(model, x, y, z, post, nll=bernoulli_nll)[0].T.double())
    return torch.cat(out, 1)


def iwae_estimate(logw: torch.Tensor, k: int) -> torch.Tensor:
    """(B,) k-sample bounds log (1/k) sum_i w_i, averaged over the K // k disjoint groups of ``logw`` (B, K).

    k = 1 gives the ELBO estimated with all K samples; k = K the IWAE estimate of log p(x).
    Every k uses the same draws, so for a fixed batch the estimates are ordered as the bounds are (on average).
    """
    groups = logw.shape[1] // k
    if groups < 1:
        raise ValueError(f"k={k} exceeds the {logw.shape[1]} log-weights given")
    lw = logw[:, : groups * k].reshape(logw.shape[0], groups, k)
    return (lw.logsumexp(-1) - math.log(k)).mean(1)


def mean_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean and its standard error (sample standard deviation / sqrt(n))."""
    v = values.double().flatten()
    se = float(v.std() / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se


# ---------------------------------------------------------------------------- latent usage
def active_units(means: torch.Tensor, threshold: float = 0.01) -> tuple[int, list[float]]:
    """Burda et al.: unit u is active when Var_x(E_q[z_u | x]) > threshold. ``means`` is (N, d)."""
    var = means.double().var(0)
    return int((var > threshold).sum()), var.tolist()


kl_per_unit = kl_per_dim  # the name the Space and older callers use


# ---------------------------------------------------------------------------- label information
def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 n_classes: int = 10, l2: float = 1e-4, max_iter: int = 100, seed: int = 0) -> dict[str, float]:
    """Multinomial logistic regression on standardised features, full-batch L-BFGS; accuracies in [0, 1].

    Standardisation uses the training statistics; constant features (collapsed units) stay at 0.
    """
    torch.manual_seed(seed)
    mu, sd = train_x.double().mean(0), train_x.double().std(0)
    sd = torch.where(sd > 1e-8, sd, torch.ones_like(sd))
    xtr, xte = (train_x.double() - mu) / sd, (test_x.double() - mu) / sd
    w = torch.zeros(xtr.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ w + b, train_y) + l2 * (w**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad(), single_thread():
        opt.step(closure)
    with torch.no_grad():
        acc = lambda x, y: float(((x @ w + b).argmax(1) == y).double().mean())
        return {"train_accuracy": acc(xtr, train_y), "test_accuracy": acc(xte, test_y)}


def _entropy(counts: torch.Tensor) -> float:
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def discrete_mutual_info(codes: torch.Tensor, labels: torch.Tensor) -> float:
    """Plug-in mutual information (nats) between two integer-valued vectors."""
    joint = torch.zeros(int(codes.max()) + 1, int(labels.max()) + 1, dtype=torch.float64)
    joint.index_put_((codes.long(), labels.long()), torch.ones(len(codes), dtype=torch.float64), accumulate=True)
    return _entropy(joint.sum(1)) + _entropy(joint.sum(0)) - _entropy(joint.flatten())


def mutual_information_gap(means: torch.Tensor, labels: torch.Tensor, bins: int = 20) -> dict:
    """MIG with one factor (the label): each latent mean discretised into ``bins`` equal-width bins,
    MI(z_j; label) / H(label) per unit, and the gap between the two most informative units."""
    h = _entropy(torch.bincount(labels.long()))
    mi = []
    for j in range(means.shape[1]):
        m = means[:, j].double()
        lo, hi = float(m.min()), float(m.max())
        codes = torch.zeros(len(m), dtype=torch.long) if hi <= lo else \
            ((m - lo) / (hi - lo) * bins).long().clamp_(0, bins - 1)
        mi.append(discrete_mutual_info(codes, labels) / h)
    top = sorted(mi, reverse=True)
    return {"mig": top[0] - top[1] if len(top) > 1 else None, "mi_normalised": mi, "label_entropy": h}


# ---------------------------------------------------------------------------- sample quality
def _sqrt_psd(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, d) and b (M, d), in float64:
    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2). Symmetric square roots via eigh,
    so no scipy and no complex parts."""
    a, b = a.double(), b.double()
    with single_thread():
        mu_a, mu_b = a.mean(0), b.mean(0)
        s_a, s_b = torch.cov(a.T), torch.cov(b.T)
        root = _sqrt_psd(s_a)
        cross = torch.linalg.eigvalsh(root @ s_b @ root).clamp(min=0).sqrt().sum()
        fd = float((mu_a - mu_b).pow(2).sum() + s_a.trace() + s_b.trace() - 2 * cross)
    return max(fd, 0.0)  # rounding can leave -1e-12 for identical sets


# ---------------------------------------------------------------------------- colour
def stroke_colour(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3): the mean RGB of each image weighted by its per-pixel intensity
    (max over channels). A digit painted as intensity x colour returns a multiple of the colour."""
    w = images.amax(1, keepdim=True)
    return (images * w).flatten(2).sum(2) / w.flatten(1).sum(1, keepdim=True).clamp(min=1e-8)


def angular_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between RGB vectors (B, 3); insensitive to brightness."""
    cos = F.cosine_similarity(a.double(), b.double(), dim=1, eps=1e-12).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))
