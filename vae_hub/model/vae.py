"""One VAE family: backbone, latent, prior and likelihood all chosen by a VAEConfig, built from a layer kit.

The layer kit, chosen once per config: the layers, the Bernoulli NLL, the KL and the optimizer.
``torch``: torch.nn layers, torch's BCE, the exact KL of ``torch.distributions`` and fused Adam.
``scratch``: the hand-written kit in ``vae_hub.model.scratch`` (every backward pass and Adam written by hand);
its KL is the closed-form diagonal-Gaussian one against N(0, I), the only prior the config allows it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal, kl_divergence

from vae_hub.files.weights import HubModel
from vae_hub.model import scratch
from vae_hub.model.config import VAEConfig
from vae_hub.model.distributions import Joint, OneHotGumbel, diagonal_gaussian, kl_per_dim, sample_with

__all__ = ["IMAGE_SIZE", "VAE", "VAEOutput", "bernoulli_nll", "build", "fast_layout", "kit_for"]
IMAGE_SIZE = 28


# ---------------------------------------------------------------------------- layer kits
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


# ---------------------------------------------------------------------------- the model


@dataclass
class VAEOutput:
    """Per-image terms in nats (shape (B,)), plus what produced them."""

    loss: torch.Tensor  # recon + beta * kl
    recon: torch.Tensor  # -log p(x|z), Bernoulli, summed over pixels
    kl: torch.Tensor  # KL(q(z|x) || p(z))
    x_logits: torch.Tensor  # (B, C, 28, 28) Bernoulli logits
    z: torch.Tensor
    posterior: Distribution


def _float32(t: torch.Tensor) -> torch.Tensor:
    """Network outputs back to float32 under autocast (vae_hub.training.precision): the posterior, the KL and the loss
    stay float32. Other dtypes pass through untouched, so fp32 training and ONNX graphs are unchanged."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def fast_layout(config: VAEConfig) -> bool:
    """Channels-last tensors let oneDNN run the convolutions ~40% faster on the 2-core AMD EPYC machines this was
    measured on (the scratch kit lays out its own)."""
    return config.backbone == "conv" and config.layers == "torch"


class _GradInInputLayout(torch.autograd.Function):
    """Identity whose gradient comes back in channels-last memory, the layout of its (channels-last) input."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


class Flatten(nn.Flatten):
    """``nn.Flatten`` for the encoder's last feature map. Flattening a channels-last map copies it into NCHW order,
    so its gradient comes back in NCHW while the ReLU and batch norm before it hold channels-last tensors, and
    their backward passes then walk two layouts at once, which is slow. Training converts the gradient back
    first (one copy); the numbers are the same, bit for bit (tests/test_models.py)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.training and x.requires_grad and x.dim() == 4 and not x.is_contiguous()
                and x.is_contiguous(memory_format=torch.channels_last)):
            x = _GradInInputLayout.apply(x)
        return super().forward(x)


def _build_nets(c: VAEConfig) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """(features, enc_fc, dec_fc, dec_body): x -> h, [h, y] -> params, [z, y] -> h, h -> logits."""
    L = kit_for(c).layers
    cond = c.n_classes if c.conditional else 0
    n_params = 2 * c.z_dim + c.n_cat * c.k_cat
    pixels = c.in_channels * IMAGE_SIZE * IMAGE_SIZE

    def mlp(sizes: list[int], last_act: bool) -> nn.Sequential:
        mods: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            mods.append(L.Linear(a, b))
            if last_act or i < len(sizes) - 2:
                mods.append(L.ReLU())
        return nn.Sequential(*mods)

    if c.backbone == "mlp":
        features = nn.Flatten()
        enc_fc = mlp([pixels + cond, *c.hidden, n_params], last_act=False)
        dec_fc = mlp([c.latent_size + cond, *reversed(c.hidden), pixels], last_act=False)
        dec_body = nn.Unflatten(1, (c.in_channels, IMAGE_SIZE, IMAGE_SIZE))
        return features, enc_fc, dec_fc, dec_body

    chans = [c.in_channels, *c.conv_channels]
    side = IMAGE_SIZE // 2 ** len(c.conv_channels)
    flat = chans[-1] * side * side

    def block(conv: nn.Module, ch: int) -> list[nn.Module]:
        return [conv, *([L.BatchNorm2d(ch)] if c.batch_norm else []), L.ReLU()]

    enc: list[nn.Module] = []
    for a, b in zip(chans[:-1], chans[1:]):
        enc += block(L.Conv2d(a, b, 4, stride=2, padding=1), b)
    # the scratch kit's batch norm sums in memory order: a gradient in the other layout would change its numbers
    features = nn.Sequential(*enc, Flatten() if c.layers == "torch" else nn.Flatten())
    fc = [c.conv_hidden] if c.conv_hidden else []
    enc_fc = mlp([flat + cond, *fc, n_params], last_act=False)
    dec_fc = mlp([c.latent_size + cond, *fc, flat], last_act=True)
    dec: list[nn.Module] = [nn.Unflatten(1, (chans[-1], side, side))]
    rev = chans[::-1]
    for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
        conv = L.ConvTranspose2d(a, b, 4, stride=2, padding=1)
        dec += [conv] if i == len(rev) - 2 else block(conv, b)
    return features, enc_fc, dec_fc, nn.Sequential(*dec)


class VAE(
    nn.Module,
    HubModel,
    library_name="vae-hub",
    license="cc-by-sa-3.0",
    tags=["vae", "mnist", "vae-hub"],
    pipeline_tag="unconditional-image-generation",
):
    """A variational autoencoder configured by ``VAEConfig``.

    ``encode(x[, y])`` returns q(z|x) as a torch Distribution: an Independent Normal for gaussian
    latents, ``OneHotGumbel`` for categorical ones, ``Joint`` for both side by side. Every one has
    ``.mean``, ``.mode``, ``.sample()``, ``.rsample()`` over a flat z of ``config.latent_size``.
    ``decode(z[, y])`` returns Bernoulli logits of shape (B, C, 28, 28).
    """

    config_class = VAEConfig

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.features, self.enc_fc, self.dec_fc, self.dec_body = _build_nets(config)
        if config.z_dim:
            self.register_buffer("prior_loc", torch.zeros(config.z_dim))
            if config.prior_cov is not None:
                cov = torch.tensor(config.prior_cov, dtype=torch.float32)
                self.register_buffer("prior_scale_tril", torch.linalg.cholesky(cov))
        if config.n_cat:
            # Gumbel-softmax temperature; the trainer anneals it, and it is saved with the weights
            self.register_buffer("temperature", torch.tensor(config.tau_start))
            self.register_buffer("prior_logits", torch.zeros(config.n_cat, config.k_cat))

    @property
    def kit(self) -> LayerKit:
        """The layer kit of ``config.layers`` (looked up, not stored: a module attribute would defeat deepcopy)."""
        return kit_for(self.config)

    # ----------------------------------------------------------------- distributions
    @property
    def prior(self) -> Distribution:
        c = self.config
        gauss = None
        if c.z_dim:
            if c.prior_cov is not None:
                gauss = MultivariateNormal(self.prior_loc, scale_tril=self.prior_scale_tril)
            else:
                gauss = Independent(Normal(self.prior_loc, torch.ones_like(self.prior_loc)), 1)
        if not c.n_cat:
            return gauss
        cat = OneHotGumbel(self.prior_logits, self.temperature)
        return cat if gauss is None else Joint(gauss, cat)

    def _posterior(self, params: torch.Tensor) -> Distribution:
        c = self.config
        mu, logvar, logits = params.split([c.z_dim, c.z_dim, c.n_cat * c.k_cat], -1)
        gauss = diagonal_gaussian(mu, (0.5 * logvar).exp()) if c.z_dim else None
        if not c.n_cat:
            return gauss
        cat = OneHotGumbel(logits.unflatten(-1, (c.n_cat, c.k_cat)), self.temperature)
        return cat if gauss is None else Joint(gauss, cat)

    def kl(self, posterior: Distribution) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per image, exact (torch.distributions, or the scratch kit's closed form)."""
        return self.kit.kl(posterior, self.prior)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes z ~ p(z), (n, latent_size); with a generator, reproducible and independent of the global one."""
        if generator is None:
            return self.prior.sample((n,))
        return sample_with(self.prior, n, generator)

    # ----------------------------------------------------------------- networks
    def _check_input(self, x: torch.Tensor) -> None:
        c = self.config
        want = (c.in_channels, IMAGE_SIZE, IMAGE_SIZE)
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != want:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{c.variant}: expected images of shape (B, {', '.join(map(str, want))}), got {got}")
        if not x.is_floating_point():
            raise ValueError(f"{c.variant}: expected float images in [0, 1], got dtype {x.dtype}")

    def _onehot(self, y: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if not self.config.conditional:
            return None
        if y is None:
            raise ValueError(f"{self.config.variant} is class-conditional: pass labels y (B,) with values 0-9")
        y = torch.as_tensor(y, device=self.prior_device)
        if y.dim() == 1:
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.config.n_classes):
                raise ValueError(f"labels must be in 0..{self.config.n_classes - 1}")
            y = F.one_hot(y.long(), self.config.n_classes)
        if y.shape != (batch, self.config.n_classes):
            raise ValueError(f"labels: expected shape ({batch},) or ({batch}, {self.config.n_classes}), got {tuple(y.shape)}")
        return y.float()

    @property
    def prior_device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        self._check_input(x)
        h = self.features(x)
        onehot = self._onehot(y, x.shape[0])
        if onehot is not None:
            h = torch.cat([h, onehot], 1)
        return self._posterior(_float32(self.enc_fc(h)))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.config.latent_size:
            raise ValueError(f"{self.config.variant}: expected z of shape (B, {self.config.latent_size}), got {tuple(z.shape)}")
        onehot = self._onehot(y, z.shape[0])
        if onehot is not None:
            z = torch.cat([z, onehot], 1)
        return _float32(self.dec_body(self.dec_fc(z)))

    def recon_nll(self, x_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) under a Bernoulli per pixel intensity, summed over pixels (nats per image)."""
        return self.kit.bce(x_logits, x)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> VAEOutput:
        post = self.encode(x, y)
        # training: reparameterised (Gumbel-softmax) samples; evaluation: true discrete samples
        z = post.rsample() if self.training else post.sample()
        x_logits = self.decode(z, y)
        recon = self.recon_nll(x_logits, x)
        kl = self.kl(post)
        return VAEOutput(recon + self.config.beta * kl, recon, kl, x_logits, z, post)

    # codes drawn where the training digits' codes lie: a mixture fitted to them (vae_hub.hub.density), set on loading a
    # folder that holds one; None otherwise
    code_density: Distribution | None = None

    def sample_codes(self, n: int, source: str = "prior", generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes (n, latent_size) from the prior or, with ``source="density"``, from the density of the training
        digits' codes (Gaussian-latent models whose folder holds density.safetensors)."""
        if source == "prior":
            return self.sample_prior(n, generator)
        if source != "density":
            raise ValueError(f"source: expected 'prior' or 'density', got {source!r}")
        if self.code_density is None:
            why = ("its codes are not all Gaussian" if not self.config.z_dim or self.config.n_cat else
                   "none was loaded with it (vae_hub.load reads a folder's density.safetensors; fit one with "
                   "`python -m vae_hub.density --models FOLDER`)")
            raise ValueError(f"{self.config.variant} has no density of its training codes to sample from: {why}")
        return (self.code_density.sample((n,)) if generator is None
                else sample_with(self.code_density, n, generator)).to(self.prior_device)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, source: str = "prior",
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n images in [0, 1] decoded from codes drawn from the prior, or (``source="density"``) from where the
        training digits' codes lie; conditional models default to labels 0..9 in turn."""
        if self.config.conditional and y is None:
            y = torch.arange(n, device=self.prior_device) % self.config.n_classes
        return torch.sigmoid(self.decode(self.sample_codes(n, source, generator), y))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the most likely code of each input (posterior mode), in [0, 1]."""
        return torch.sigmoid(self.decode(self.encode(x, y).mode, y))

    # ----------------------------------------------------------------- loading hook
    def prepare_loaded(self) -> VAE:
        if fast_layout(self.config):  # as the trainer runs them: ~25% faster decoding (bench/eval_cost.py)
            return self.to(memory_format=torch.channels_last)
        return self


@torch.inference_mode()
def encode_split(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, batch: int = 2000,
                 with_kl: bool = False) -> tuple[torch.Tensor, dict]:
    """Posterior means (N, latent_size) of many inputs, encoded ``batch`` at a time, and with ``with_kl`` the mean
    KL of each continuous dimension and each categorical variable ({"kl_per_dim": ..., "kl_per_categorical": ...})."""
    means, kl_c, kl_d = [], 0.0, 0.0
    for i in range(0, len(x), batch):
        post = model.encode(x[i:i + batch], None if y is None else y[i:i + batch])
        means.append(post.mean)
        if with_kl:
            cont, disc = kl_per_dim(post, model.prior)
            kl_c = kl_c + (0 if cont is None else cont.double().sum(0))
            kl_d = kl_d + (0 if disc is None else disc.double().sum(0))
    kl = {}
    if with_kl:
        kl = {"kl_per_dim": (kl_c / len(x)).tolist() if model.config.z_dim else None,
              "kl_per_categorical": (kl_d / len(x)).tolist() if model.config.n_cat else None}
    return torch.cat(means).float(), kl


def build(name_or_config: str | VAEConfig, **overrides) -> VAE:
    """A fresh, randomly initialised model from a variant name (or a config)."""
    from vae_hub.model.variants import get_config

    config = get_config(name_or_config, **overrides) if isinstance(name_or_config, str) else name_or_config
    return VAE(config)
