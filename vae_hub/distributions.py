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


def diagonal_gaussian(mean: torch.Tensor, std: torch.Tensor) -> Independent:
    # argument validation costs a few kernels per step; the encoder's exp() already guarantees std > 0
    return Independent(Normal(mean, std, validate_args=False), 1, validate_args=False)


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
    as_mvn = MultivariateNormal(p.base_dist.loc, scale_tril=torch.diag_embed(p.base_dist.scale))
    return kl_divergence(as_mvn, q)
