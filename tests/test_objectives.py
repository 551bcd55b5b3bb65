"""The objectives: ELBO with KL warm-up, the IWAE bound and DReG gradients."""

import pytest
import torch

import vae_hub
from vae_hub.model.objectives import iwae_terms, kl_weight_at, training_terms


@pytest.fixture(scope="module")
def digits(mini):
    return mini[1].images[:256].float() / 255


def test_iwae_with_one_sample_is_the_elbo(digits):
    model = vae_hub.load("vae-z20").train()
    x = digits[:128]
    with torch.no_grad():
        torch.manual_seed(0)
        out = model(x)
        torch.manual_seed(0)
        one = iwae_terms(model, x, None, k=1)
        # the same draw of z: the same reconstruction term, and the KL is then estimated by one sample
        assert torch.equal(one.recon, out.recon) and torch.equal(one.kl, out.kl)
        torch.manual_seed(1)
        gaps = torch.stack([iwae_terms(model, x, None, k=1).loss - out.loss for _ in range(8)])
    # E[-log w] = recon + KL: over the draws, the one-sample KL averages to the exact one
    # (the gap also holds recon's sampling noise: compared with its own standard error)
    gap = gaps.mean(0)
    assert abs(float(gap.mean())) < 4 * float(gap.std()) / len(gap) ** 0.5


def test_the_bound_tightens_as_k_grows(digits):
    model = vae_hub.load("vae-z20").eval()
    with torch.no_grad():
        torch.manual_seed(0)
        bound = {k: -iwae_terms(model, digits, None, k).loss for k in (1, 5, 50)}
    for lo, hi in ((1, 5), (5, 50)):
        d = bound[hi] - bound[lo]  # per image, paired
        assert float(d.mean()) > 4 * float(d.std()) / len(d) ** 0.5 > 0  # ~2 nats each step, ~8-12 standard errors


def _grads(model, x, dreg: bool, seed: int) -> dict[str, torch.Tensor]:
    model.zero_grad()
    torch.manual_seed(seed)
    iwae_terms(model, x, None, 4, dreg).loss.mean().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_dreg_keeps_the_decoder_gradient_and_the_encoder_gradient_in_expectation(digits):
    torch.manual_seed(0)
    model = vae_hub.VAE(vae_hub.get_config("vae-z20", hidden=[32], z_dim=3, objective="iwae", iwae_k=4)).train()
    x = digits[:8].repeat(500, 1, 1, 1)  # each row an independent estimate: the batch mean nears the expectation
    iw, dr = _grads(model, x, False, 1), _grads(model, x, True, 1)
    dec = [n for n in iw if n.startswith("dec")]
    enc = [n for n in iw if n.startswith("enc")]
    assert all(torch.equal(iw[n], dr[n]) for n in dec)  # the same draws: IWAE's decoder gradient exactly
    assert not any(torch.allclose(iw[n], dr[n]) for n in enc)  # the encoder's is another estimator

    def flat(g):
        return torch.cat([g[n].flatten() for n in enc])

    iw2, dr2 = flat(_grads(model, x, False, 2)), flat(_grads(model, x, True, 3))
    iw, dr = flat(iw), flat(dr)
    # same expectation: the IWAE-DReG gap is only the two estimators' noise, measured by their own repeats
    noise = ((iw - iw2).square().sum() + (dr - dr2).square().sum()) / 2
    assert float((iw - dr2).square().sum() / noise) < 2.5  # ~0.5-1.3 over seeds; a biased one (STL) gives 8-36


def test_kl_warmup_is_linear_then_holds(digits):
    cfg = vae_hub.get_config("vae-z20", kl_warmup_epochs=2)
    assert [kl_weight_at(cfg, s, 10) for s in (0, 5, 10, 20, 35)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert kl_weight_at(vae_hub.get_config("vae-z20"), 0, 10) == 1.0
    model = vae_hub.load("vae-z20").train()
    torch.manual_seed(0)
    half = training_terms(model, digits[:16], kl_weight=0.5)
    assert torch.allclose(half.loss, half.recon + 0.5 * half.kl)
    torch.manual_seed(0)
    assert torch.equal(training_terms(model, digits[:16]).loss, half.recon + half.kl)


def test_iwae_needs_a_gaussian_latent_and_k_with_elbo_is_an_error():
    with pytest.raises(ValueError, match="needs a gaussian latent"):
        vae_hub.get_config("color-gumbel", objective="iwae", iwae_k=5)
    with pytest.raises(ValueError, match="apply to objective 'iwae'"):
        vae_hub.get_config("vae-z20", iwae_k=5)
    with pytest.raises(ValueError, match="kl_warmup_epochs"):
        vae_hub.get_config("vae-z20", kl_warmup_epochs=11)
