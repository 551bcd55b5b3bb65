"""Latent distributions beyond what torch.distributions ships, and the KL pairs it lacks.

Every latent is a flat vector z of width ``config.latent_size``: continuous dimensions first, then
N one-hot blocks of K categories. Each class here is a real ``torch.distributions.Distribution``
and KL divergences go through ``torch.distributions.kl_divergence``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions import (
    Categorical,
    Distribution,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    RelaxedOneHotCategorical,
    constraints,
    kl_divergence,
    register_kl,
)


class OneHotGumbel(Distribution):
    """N independent K-way categoricals over flattened one-hot codes (event shape N*K).

    ``rsample`` is the Gumbel-softmax (relaxed, differentiable) sample at ``temperature``;
    ``sample`` is a hard one-hot draw from the categoricals, the true discrete model;
    ``mean`` is the probabilities (the expected one-hot code), ``mode`` the arg-max code.
    """

    arg_constraints = {"logits": constraints.real}
    support = constraints.real
    has_rsample = True

    def __init__(self, logits: torch.Tensor, temperature: float | torch.Tensor = 1.0, validate_args=None):
        self.logits = logits - logits.logsumexp(-1, keepdim=True)  # (..., N, K), normalised
        self.temperature = temperature
        self.n, self.k = logits.shape[-2:]
        super().__init__(logits.shape[:-2], torch.Size([self.n * self.k]), validate_args=False)

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()

    @property
    def categorical(self) -> Independent:
        return Independent(Categorical(logits=self.logits, validate_args=False), 1, validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return self.probs.flatten(-2)

    @property
    def mode(self) -> torch.Tensor:
        return F.one_hot(self.logits.argmax(-1), self.k).to(self.logits.dtype).flatten(-2)

    @property
    def variance(self) -> torch.Tensor:
        """Per entry of the one-hot code: a Bernoulli(p) indicator has variance p(1 - p)."""
        p = self.probs
        return (p * (1 - p)).flatten(-2)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        relaxed = RelaxedOneHotCategorical(torch.as_tensor(self.temperature, dtype=self.logits.dtype), logits=self.logits)
        return relaxed.rsample(sample_shape).flatten(-2)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            idx = self.categorical.sample(sample_shape)
            return F.one_hot(idx, self.k).to(self.logits.dtype).flatten(-2)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.categorical.log_prob(value.unflatten(-1, (self.n, self.k)).argmax(-1))

    def entropy(self) -> torch.Tensor:
        return self.categorical.entropy()

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape) + self.logits.shape[-2:]
        return OneHotGumbel(self.logits.expand(shape), self.temperature)


class Joint(Distribution):
    """A continuous and a discrete latent side by side: z = [gaussian, one-hot codes]."""

    arg_constraints = {}
    support = constraints.real
    has_rsample = True

    def __init__(self, continuous: Distribution, discrete: OneHotGumbel, validate_args=None):
        self.continuous, self.discrete = continuous, discrete
        self.split = (continuous.event_shape[-1], discrete.event_shape[-1])
        batch = torch.broadcast_shapes(continuous.batch_shape, discrete.batch_shape)
        super().__init__(batch, torch.Size([sum(self.split)]), validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return _cat(self.continuous.mean, self.discrete.mean)

    @property
    def mode(self) -> torch.Tensor:
        return _cat(self.continuous.mean, self.discrete.mode)

    @property
    def variance(self) -> torch.Tensor:
        return _cat(self.continuous.variance, self.discrete.variance)

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return _cat(self.continuous.rsample(sample_shape), self.discrete.rsample(sample_shape))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return _cat(self.continuous.sample(sample_shape), self.discrete.sample(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        zc, zd = value.split(self.split, -1)
        return self.continuous.log_prob(zc) + self.discrete.log_prob(zd)

    def entropy(self) -> torch.Tensor:
        return self.continuous.entropy() + self.discrete.entropy()


def _cat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # the prior has no batch shape: broadcast its parts to a common one before concatenating
    shape = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat([a.expand(*shape, a.shape[-1]), b.expand(*shape, b.shape[-1])], -1)


class DiagonalGaussian(Independent):
    """Independent(Normal(mean, std), 1) whose ``stddev`` is ``std`` itself: Independent's default recomputes it
    as sqrt(std²), which rounds differently and would move trained weights by a few ulps."""

    @property
    def stddev(self) -> torch.Tensor:
        return self.base_dist.stddev


def diagonal_gaussian(mean: torch.Tensor, std: torch.Tensor) -> DiagonalGaussian:
    # argument validation costs a few kernels per step; the encoder's exp() already guarantees std > 0
    return DiagonalGaussian(Normal(mean, std, validate_args=False), 1, validate_args=False)


@register_kl(OneHotGumbel, OneHotGumbel)
def _kl_onehot_onehot(p: OneHotGumbel, q: OneHotGumbel) -> torch.Tensor:
    return kl_divergence(p.categorical, q.categorical)


@register_kl(Joint, Joint)
def _kl_joint_joint(p: Joint, q: Joint) -> torch.Tensor:
    return kl_divergence(p.continuous, q.continuous) + kl_divergence(p.discrete, q.discrete)


@register_kl(Independent, MultivariateNormal)
def _kl_diag_mvn(p: Independent, q: MultivariateNormal) -> torch.Tensor:
    """Exact KL between a diagonal Gaussian posterior and a full-covariance prior."""
    if not isinstance(p.base_dist, Normal) or p.reinterpreted_batch_ndims != 1:
        raise NotImplementedError("KL(Independent, MultivariateNormal) needs an Independent(Normal, 1)")
    as_mvn = MultivariateNormal(p.mean, scale_tril=torch.diag_embed(p.stddev))
    return kl_divergence(as_mvn, q)


def parts(d: Distribution) -> tuple[Distribution | None, OneHotGumbel | None]:
    """(continuous part, categorical part) of a latent distribution; either may be None."""
    if isinstance(d, Joint):
        return d.continuous, d.discrete
    return (None, d) if isinstance(d, OneHotGumbel) else (d, None)


def _marginal_variance(d: Distribution) -> torch.Tensor:
    # the diagonal of the covariance matrix itself, as published metrics were computed (not scale_tril²'s row sums)
    return d.covariance_matrix.diagonal(dim1=-2, dim2=-1) if isinstance(d, MultivariateNormal) else d.variance


def kl_per_dim(post: Distribution, prior: Distribution) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-image KL of each continuous dimension (B, z_dim) and of each categorical variable (B, n_cat).

    With an N(0, I) prior the continuous terms sum to the Gaussian part of the KL. With a full-covariance
    prior the KL does not split by dimension: each term is then the KL to that dimension's prior marginal.
    """
    (g_post, c_post), (g_prior, c_prior) = parts(post), parts(prior)
    cont = disc = None
    if g_post is not None:
        mu, var = g_post.mean, g_post.variance
        m0, v0 = g_prior.mean, _marginal_variance(g_prior)
        cont = 0.5 * (var / v0 + (mu - m0) ** 2 / v0 - 1 - (var / v0).log())
    if c_post is not None:
        disc = (c_post.probs * (c_post.logits - c_prior.logits)).sum(-1)
    return cont, disc


def sample_with(prior: Distribution, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws (n, event size) from a latent prior (no batch shape) using ``generator``: reproducible and
    thread-safe, unlike ``Distribution.sample``, which draws from torch's global generator."""
    if isinstance(prior, MixtureSameFamily):  # a density of codes (vae_hub.hub.density): a component, then its Gaussian
        k = torch.multinomial(prior.mixture_distribution.probs, n, replacement=True, generator=generator)
        comp = prior.component_distribution
        eps = torch.randn(n, comp.event_shape[-1], 1, generator=generator, device=comp.loc.device)
        return comp.loc[k] + (comp.scale_tril[k] @ eps).squeeze(-1)
    gauss, cat = parts(prior)
    out = []
    if gauss is not None:
        eps = torch.randn(n, gauss.event_shape[-1], generator=generator, device=gauss.mean.device)
        if isinstance(gauss, MultivariateNormal):
            out.append(eps @ gauss.scale_tril.T + gauss.loc)
        else:
            out.append(gauss.mean + gauss.stddev * eps)
    if cat is not None:
        probs = torch.softmax(cat.logits, -1)  # (n_cat, k)
        idx = torch.stack([torch.multinomial(p, n, replacement=True, generator=generator) for p in probs], 1)
        out.append(F.one_hot(idx, cat.k).to(probs.dtype).flatten(1))
    return torch.cat(out, 1)
