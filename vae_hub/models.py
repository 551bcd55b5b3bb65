"""One VAE family: backbone, latent, prior and likelihood all chosen by a VAEConfig."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from torch import nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal, kl_divergence

from .checks import check_finite, check_header
from .config import VAEConfig
from .distributions import Joint, OneHotGumbel, diagonal_gaussian
from .tensorfiles import save_safetensors

IMAGE_SIZE = 28
WEIGHTS_NAME = "model.safetensors"


@dataclass
class VAEOutput:
    """Per-image terms in nats (shape (B,)), plus what produced them."""

    loss: torch.Tensor  # recon + beta * kl
    recon: torch.Tensor  # -log p(x|z), Bernoulli, summed over pixels
    kl: torch.Tensor  # KL(q(z|x) || p(z))
    x_logits: torch.Tensor  # (B, C, 28, 28) Bernoulli logits
    z: torch.Tensor
    posterior: Distribution


def fast_layout(config: VAEConfig) -> bool:
    """Channels-last tensors let oneDNN run the convolutions ~40% faster on this CPU (the scratch kit lays out its own)."""
    return config.backbone == "conv" and config.layers == "torch"


def _kit(config: VAEConfig):
    if config.layers == "scratch":
        from . import scratch

        return scratch
    return nn


def _build_nets(c: VAEConfig) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """(features, enc_fc, dec_fc, dec_body): x -> h, [h, y] -> params, [z, y] -> h, h -> logits."""
    L = _kit(c)
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
    features = nn.Sequential(*enc, nn.Flatten())
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
    PyTorchModelHubMixin,
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
        self._storage_dtype: torch.dtype | None = None

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
        """KL(q(z|x) || p(z)) per image, exact, through torch.distributions."""
        if self.config.layers == "scratch":
            from . import scratch

            base = posterior.base_dist
            return scratch.gaussian_kl(base.loc, 2 * base.scale.log())
        return kl_divergence(posterior, self.prior)

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
        return self._posterior(self.enc_fc(h))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.config.latent_size:
            raise ValueError(f"{self.config.variant}: expected z of shape (B, {self.config.latent_size}), got {tuple(z.shape)}")
        onehot = self._onehot(y, z.shape[0])
        if onehot is not None:
            z = torch.cat([z, onehot], 1)
        return self.dec_body(self.dec_fc(z))

    def recon_nll(self, x_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) under a Bernoulli per pixel intensity, summed over pixels (nats per image)."""
        if self.config.layers == "scratch":
            from . import scratch

            return scratch.bce_with_logits(x_logits.flatten(1), x.flatten(1))
        return F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").flatten(1).sum(1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> VAEOutput:
        post = self.encode(x, y)
        # training: reparameterised (Gumbel-softmax) samples; evaluation: true discrete samples
        z = post.rsample() if self.training else post.sample()
        x_logits = self.decode(z, y)
        recon = self.recon_nll(x_logits, x)
        kl = self.kl(post)
        return VAEOutput(recon + self.config.beta * kl, recon, kl, x_logits, z, post)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """n images from the prior in [0, 1]; conditional models default to labels 0..9 in turn."""
        if self.config.conditional and y is None:
            y = torch.arange(n, device=self.prior_device) % self.config.n_classes
        z = self.prior.sample((n,))
        return torch.sigmoid(self.decode(z, y))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the most likely code of each input (posterior mode), in [0, 1]."""
        return torch.sigmoid(self.decode(self.encode(x, y).mode, y))

    # ----------------------------------------------------------------- hub mixin hooks
    def _save_pretrained(self, save_directory: Path) -> None:
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        if self._storage_dtype is not None:
            state = {k: v.to(self._storage_dtype) if v.is_floating_point() else v for k, v in state.items()}
        save_safetensors(state, Path(save_directory) / WEIGHTS_NAME, metadata={"format": "pt"})

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision=None, cache_dir=None, force_download=False,
                         local_files_only=False, token=None, map_location: str = "cpu", strict: bool = True,
                         **model_kwargs) -> VAE:
        # Never falls back to a pickled pytorch_model.bin, and always loads strictly.
        config = model_kwargs.pop("config", None)
        if not isinstance(config, VAEConfig):  # the mixin hands over config.json as a dict
            config = VAEConfig.from_dict(config, f"{model_id}/config.json")
        model = cls(config, **model_kwargs)
        if Path(model_id).is_dir():
            weights = Path(model_id) / WEIGHTS_NAME
            if not weights.is_file():
                raise FileNotFoundError(f"{weights}: missing; a vae-hub folder holds {WEIGHTS_NAME} and config.json")
        else:
            weights = Path(hf_hub_download(model_id, WEIGHTS_NAME, revision=revision, cache_dir=cache_dir,
                                           force_download=force_download, token=token,
                                           local_files_only=local_files_only))
        load_weights(model, weights)
        if fast_layout(config):  # as the trainer runs them: ~25% faster decoding (bench/eval_cost.py)
            model = model.to(memory_format=torch.channels_last)
        return model.to(map_location).eval()


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a safetensors file into model, strictly: every tensor present, none extra, shapes equal, stored as a
    float type (or the buffer's own integer type), every value finite."""
    expected = model.state_dict()
    check_header(Path(path), {k: (tuple(v.shape), v.dtype) for k, v in expected.items()})
    try:
        state = safetensors.torch.load_file(str(path))
    except Exception as e:  # safetensors raises several types for truncated/garbled files
        raise ValueError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    state = {k: v.to(expected[k].dtype) for k, v in state.items()}
    check_finite(state, Path(path))  # after the cast: float32 checks run faster than float16
    model.load_state_dict(state, strict=True)


def build(name_or_config: str | VAEConfig, **overrides) -> VAE:
    """A fresh, randomly initialised model from a variant name (or a config)."""
    from .variants import get_config

    config = get_config(name_or_config, **overrides) if isinstance(name_or_config, str) else name_or_config
    return VAE(config)
