import pytest
import torch
from torch.distributions import Distribution

import vae_hub
from vae_hub import VAEConfig


@pytest.mark.parametrize("name", list(vae_hub.VARIANTS))
def test_every_variant_forward_backward(name):
    torch.manual_seed(0)
    m = vae_hub.build(name).train()
    c = m.config
    x = torch.rand(6, c.in_channels, 28, 28)
    y = torch.arange(6) % 10 if c.conditional else None
    out = m(x, y)
    assert out.loss.shape == out.recon.shape == out.kl.shape == (6,)
    assert out.x_logits.shape == x.shape and torch.isfinite(out.loss).all()
    torch.testing.assert_close(out.loss, out.recon + c.beta * out.kl)
    out.loss.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    post = m.encode(x, y)
    assert isinstance(post, Distribution)
    assert post.mean.shape == post.rsample().shape == post.sample().shape == (6, c.latent_size)
    assert m.decode(post.rsample(), y).shape == x.shape
    s = m.sample(5)
    assert s.shape == (5, c.in_channels, 28, 28) and 0 <= s.min() and s.max() <= 1
    assert m.prior.sample().shape[-1] == c.latent_size


def test_public_api_shape():
    assert {"vae-z2", "vae-z3", "vae-z2-corr", "vae-z20", "beta-vae-b0.5", "beta-vae-b1", "beta-vae-b2",
            "beta-vae-b4", "beta-vae-b8", "conv-vae-z20", "cvae", "color-vae", "color-gumbel",
            "color-joint"} <= set(vae_hub.VARIANTS)
    betas = {n: c.beta for n, c in vae_hub.VARIANTS.items() if n.startswith("beta-vae")}
    assert betas == {"beta-vae-b0.5": 0.5, "beta-vae-b1": 1, "beta-vae-b2": 2, "beta-vae-b4": 4, "beta-vae-b8": 8}
    arch = {(tuple(c.hidden), c.z_dim) for n, c in vae_hub.VARIANTS.items() if n.startswith("beta-vae")}
    assert len(arch) == 1  # one architecture, only beta differs
    c = vae_hub.VARIANTS["color-gumbel"]
    assert (c.n_cat, c.k_cat) == (6, 25)
    c = vae_hub.VARIANTS["color-joint"]
    assert (c.n_cat, c.k_cat) == (5, 65) and c.z_dim > 0


def test_bad_inputs_give_clear_errors():
    m = vae_hub.build("vae-z20")
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 1, 28, 28\), got \(2, 1, 32, 32\)"):
        m.encode(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="float images"):
        m.encode(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="expected z of shape"):
        m.decode(torch.zeros(2, 3))
    with pytest.raises(KeyError, match="unknown variant 'vae-z99'.*vae-z20"):
        vae_hub.build("vae-z99")
    cvae = vae_hub.build("cvae")
    with pytest.raises(ValueError, match="class-conditional"):
        cvae.encode(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="0..9"):
        cvae.encode(torch.rand(2, 1, 28, 28), torch.tensor([3, 12]))


def test_config_parsing_is_strict():
    d = vae_hub.get_config("vae-z2").to_dict()
    assert VAEConfig.from_dict(d) == vae_hub.get_config("vae-z2")
    with pytest.raises(ValueError, match=r"missing field\(s\) \['beta'\]"):
        VAEConfig.from_dict({k: v for k, v in d.items() if k != "beta"}, "x.json")
    with pytest.raises(ValueError, match="unknown field"):
        VAEConfig.from_dict({**d, "bogus": 1})
    with pytest.raises(ValueError, match="'latent' is 'spiky'"):
        VAEConfig.from_dict({**d, "latent": "spiky"})
    with pytest.raises(ValueError, match="prior_cov must be 2x2"):
        VAEConfig.from_dict({**d, "prior_cov": [[1.0]]})


def test_a_channels_last_encoder_gets_its_gradient_back_channels_last_with_the_same_numbers():
    """vae.Flatten hands the last feature map's gradient back in its own layout; nn.Flatten's would be NCHW."""
    name = "conv-vae-z20"
    torch.manual_seed(0)
    a = vae_hub.build(name).train().to(memory_format=torch.channels_last)
    b = vae_hub.build(name).train().to(memory_format=torch.channels_last)
    b.load_state_dict(a.state_dict())
    b.features[-1] = torch.nn.Flatten()
    seen = {}
    a.features[-2].register_forward_hook(lambda m, i, out: out.register_hook(lambda g: seen.update(grad=g)) and None)
    x = torch.rand(8, 1, 28, 28)
    for m in (a, b):
        torch.manual_seed(1)
        m(x).loss.mean().backward()
    assert seen["grad"].is_contiguous(memory_format=torch.channels_last) and not seen["grad"].is_contiguous()
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(a.parameters(), b.parameters(), strict=True))
