import math

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

import vae_hub
from vae_hub.model.distributions import Joint, OneHotGumbel, diagonal_gaussian
from vae_hub.training.loop import temperature_at


def test_isotropic_kl_matches_closed_form():
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 4), torch.randn(5, 4)
    q = diagonal_gaussian(mu, (0.5 * logvar).exp())
    p = Independent(Normal(torch.zeros(4), torch.ones(4)), 1)
    closed = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
    torch.testing.assert_close(kl_divergence(q, p), closed)


def test_correlated_prior_kl_is_exact_not_isotropic():
    torch.manual_seed(0)
    cov = torch.tensor([[1.0, 0.4], [0.4, 0.5]], dtype=torch.float64)
    p = MultivariateNormal(torch.zeros(2, dtype=torch.float64), covariance_matrix=cov)
    mu, std = torch.randn(3, 2, dtype=torch.float64), torch.rand(3, 2, dtype=torch.float64) + 0.3
    q = diagonal_gaussian(mu, std)
    kl = kl_divergence(q, p)
    # closed form: 0.5 [tr(Σ⁻¹S) + μᵀΣ⁻¹μ − k + ln|Σ| − ln|S|]
    inv = torch.linalg.inv(cov)
    closed = torch.stack([0.5 * (torch.trace(inv @ torch.diag(s**2)) + m @ inv @ m - 2 + torch.logdet(cov)
                                 - torch.log(s**2).sum()) for m, s in zip(mu, std)])
    torch.testing.assert_close(kl, closed)
    # Monte Carlo: E_q[log q − log p]
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    torch.testing.assert_close(mc, kl, atol=0.03, rtol=0.02)
    iso = kl_divergence(q, Independent(Normal(torch.zeros(2, dtype=torch.float64), 1.0), 1))
    assert (kl - iso).abs().min() > 0.05  # the isotropic KL would be a different objective


def test_model_uses_the_correlated_prior():
    m = vae_hub.build("vae-z2-corr")
    assert isinstance(m.prior, MultivariateNormal)
    torch.testing.assert_close(m.prior.covariance_matrix, torch.tensor([[1.0, 0.4], [0.4, 0.5]]))
    post = m.encode(torch.rand(4, 1, 28, 28))
    torch.testing.assert_close(m.kl(post), kl_divergence(
        MultivariateNormal(post.mean, scale_tril=torch.diag_embed(post.base_dist.scale)), m.prior))


def test_categorical_kl_closed_form_and_monte_carlo():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 25, dtype=torch.float64)
    q, p = OneHotGumbel(logits, 0.5), OneHotGumbel(torch.zeros(6, 25, dtype=torch.float64))
    probs = logits.softmax(-1)
    closed = (probs * (probs.log() + math.log(25))).sum((-1, -2))
    kl = kl_divergence(q, p)
    torch.testing.assert_close(kl, closed)
    z = q.sample((100_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    torch.testing.assert_close(mc, kl, atol=0.05, rtol=0.02)


def test_onehot_samples_and_relaxation():
    torch.manual_seed(0)
    q = OneHotGumbel(torch.randn(4, 5, 7), temperature=0.5)
    hard, soft = q.sample().unflatten(-1, (5, 7)), q.rsample().unflatten(-1, (5, 7))
    assert set(hard.unique().tolist()) == {0.0, 1.0} and (hard.sum(-1) == 1).all()
    torch.testing.assert_close(soft.sum(-1), torch.ones(4, 5))
    assert q.mean.shape == (4, 35) and q.mode.shape == (4, 35)


def test_joint_kl_is_sum_of_parts_and_matches_monte_carlo():
    torch.manual_seed(0)
    g = diagonal_gaussian(torch.randn(2, 3, dtype=torch.float64), torch.rand(2, 3, dtype=torch.float64) + 0.5)
    c = OneHotGumbel(torch.randn(2, 2, 4, dtype=torch.float64))
    pg = Independent(Normal(torch.zeros(3, dtype=torch.float64), 1.0), 1)
    pc = OneHotGumbel(torch.zeros(2, 4, dtype=torch.float64))
    q, p = Joint(g, c), Joint(pg, pc)
    kl = kl_divergence(q, p)
    torch.testing.assert_close(kl, kl_divergence(g, pg) + kl_divergence(c, pc))
    z = q.sample((100_000,))
    assert z.shape == (100_000, 2, 11)
    torch.testing.assert_close((q.log_prob(z) - p.log_prob(z)).mean(0), kl, atol=0.05, rtol=0.02)


@pytest.mark.parametrize("name", ["vae-z20", "color-gumbel", "color-joint"])
def test_reparameterised_gradients_reach_the_encoder(name):
    torch.manual_seed(0)
    m = vae_hub.build(name).train()
    x = torch.rand(8, m.config.in_channels, 28, 28)
    post = m.encode(x)
    # only the decoder path through z (no KL): gradient must flow through rsample
    m.recon_nll(m.decode(post.rsample()), x).sum().backward()
    first = next(m.enc_fc.parameters()) if m.config.backbone == "mlp" else next(m.features.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_temperature_schedule_reaches_its_minimum():
    c = vae_hub.get_config("color-gumbel")
    total = 1000
    assert temperature_at(c, 0, total) == pytest.approx(c.tau_start)
    assert temperature_at(c, int(c.anneal_frac * total), total) == pytest.approx(c.tau_min)
    assert temperature_at(c, total, total) == pytest.approx(c.tau_min)
    taus = [temperature_at(c, s, total) for s in range(0, total, 50)]
    assert all(a >= b for a, b in zip(taus, taus[1:]))


def _space_prior_sample(model, n, g):
    """The Space's own prior sampler (space/vae_space/engine.py) that model.sample_prior(n, generator) replaces."""
    c = model.config
    parts = []
    if c.z_dim:
        eps = torch.randn(n, c.z_dim, generator=g)
        parts.append(eps @ model.prior_scale_tril.T if c.prior_cov is not None else eps)
    if c.n_cat:
        probs = torch.softmax(model.prior_logits, -1)
        idx = torch.stack([torch.multinomial(p, n, replacement=True, generator=g) for p in probs], 1)
        parts.append(torch.nn.functional.one_hot(idx, c.k_cat).float().flatten(1))
    return torch.cat(parts, 1)


@pytest.mark.parametrize("name", ["vae-z20", "vae-z2-corr", "color-gumbel", "color-joint"])
def test_prior_sampling_with_a_generator_is_reproducible_and_matches_the_space(name):
    model = vae_hub.build(name)
    a = model.sample_prior(64, generator=torch.Generator().manual_seed(3))
    b = model.sample_prior(64, generator=torch.Generator().manual_seed(3))
    assert a.shape == (64, model.config.latent_size) and torch.equal(a, b)
    torch.testing.assert_close(a, _space_prior_sample(model, 64, torch.Generator().manual_seed(3)), rtol=0, atol=0)
    torch.manual_seed(0)
    untouched = torch.rand(3)
    torch.manual_seed(0)
    model.sample_prior(8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(3), untouched)  # the global generator is not drawn from


def test_prior_sampling_with_a_generator_has_the_prior_covariance():
    model = vae_hub.build("vae-z2-corr")
    z = model.sample_prior(200_000, generator=torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(torch.cov(z.T), torch.tensor(model.config.prior_cov, dtype=torch.float64),
                               atol=0.01, rtol=0)


def test_stddev_of_every_latent():
    logits = torch.randn(4, 3, 5)
    cat = OneHotGumbel(logits)
    p = torch.softmax(logits, -1).flatten(-2)
    torch.testing.assert_close(cat.stddev, (p * (1 - p)).sqrt())
    gauss = diagonal_gaussian(torch.randn(4, 2), torch.rand(4, 2) + 0.1)
    joint = Joint(gauss, cat)
    torch.testing.assert_close(joint.stddev, torch.cat([gauss.stddev, cat.stddev], -1))
    # the hard one-hot draws have that spread
    draws = OneHotGumbel(logits[:1]).sample((100_000,))
    torch.testing.assert_close(draws.std(0), cat.stddev[:1], atol=0.01, rtol=0)


@pytest.mark.parametrize("name", ["vae-z20", "color-joint"])
def test_kl_per_dim_adds_up_to_the_kl(name):
    from vae_hub.model.distributions import kl_per_dim

    model = vae_hub.build(name).eval()
    post = model.encode(torch.rand(5, model.config.in_channels, 28, 28))
    cont, disc = kl_per_dim(post, model.prior)
    total = sum(t.sum(1) for t in (cont, disc) if t is not None)
    torch.testing.assert_close(total, kl_divergence(post, model.prior), rtol=1e-5, atol=1e-5)
