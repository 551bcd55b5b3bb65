"""The one configuration that describes every vae-hub model: architecture, latent, prior and recipe."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from vae_hub.checks import brief, check_covariance, check_field_types, check_range, check_sizes

BACKBONES = ("mlp", "conv")
LATENTS = ("gaussian", "categorical", "joint")
DATA_KINDS = ("gray", "binarized", "color")
LAYER_KITS = ("torch", "scratch")
LR_SCHEDULES = ("constant", "cosine", "linear")
# generous bounds: far beyond any MNIST model, yet they stop a config from asking for gigabytes
MAX_WIDTH, MAX_CHANNELS, MAX_LATENT = 16384, 1024, 1024
MAX_EPOCHS, MAX_BATCH = 100_000, 65_536
VARIANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")  # also a folder and Hub repo name
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # a recipe field; vae_hub.training.precision acts on it
OBJECTIVES = ("elbo", "iwae")
# fields added after models were first published: a config.json without them means these defaults, the way
# those models were trained (fp32, the ELBO, no warm-up)
ADDED_FIELDS = ("precision", "objective", "iwae_k", "dreg", "kl_warmup_epochs", "lr_warmup")
MAX_IWAE_K = 5000


@dataclass
class VAEConfig:
    """Everything needed to rebuild a model and retrain it; serialised as config.json."""

    variant: str = "vae-z20"
    description: str = ""
    # architecture
    in_channels: int = 1
    backbone: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [400])  # MLP hidden sizes, encoder order
    conv_channels: list[int] = field(default_factory=lambda: [32, 64])
    conv_hidden: int = 256  # fully connected width after the conv stack (0: none)
    batch_norm: bool = False
    layers: str = "torch"  # "scratch": the hand-written kit in vae_hub.model.scratch
    # latent and prior
    latent: str = "gaussian"
    z_dim: int = 20  # continuous dimensions (gaussian and joint)
    n_cat: int = 0  # categorical variables (categorical and joint)
    k_cat: int = 0  # categories per variable
    prior_cov: list[list[float]] | None = None  # None: N(0, I); else N(0, prior_cov)
    beta: float = 1.0
    conditional: bool = False
    n_classes: int = 10
    # Gumbel-softmax temperature: exponential decay from tau_start to tau_min, reached after
    # anneal_frac of the training steps and held there.
    tau_start: float = 1.0
    tau_min: float = 0.5
    anneal_frac: float = 0.7
    # data and recipe
    data: str = "gray"
    color_seed: int = 0
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    # after the warm-up: constant, cosine or linear decay to 0 over the remaining steps
    lr_schedule: str = "constant"
    lr_warmup: float = 0.0  # fraction of the steps (<= 0.5) over which the rate rises linearly to lr: a higher lr starts stably
    seed: int = 0
    # "auto": bf16 autocast where measured faster (vae_hub.training.precision), else fp32; loss, KL, Adam and weights stay fp32
    precision: str = "fp32"
    objective: str = "elbo"  # "iwae": the k-sample importance-weighted bound (Burda et al. 2016)
    iwae_k: int = 1  # importance samples per image for the iwae objective (1 with elbo)
    dreg: bool = False  # iwae: doubly reparameterised encoder gradients (Tucker et al. 2019)
    kl_warmup_epochs: int = 0  # KL weight rises linearly from 0 to 1 over these epochs (0: none)
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_field_types(self)  # first: the checks below compare and compute with these values
        checks = [
            ("backbone", self.backbone, BACKBONES),
            ("latent", self.latent, LATENTS),
            ("data", self.data, DATA_KINDS),
            ("layers", self.layers, LAYER_KITS),
            ("lr_schedule", self.lr_schedule, LR_SCHEDULES),
            ("precision", self.precision, PRECISIONS),
            ("objective", self.objective, OBJECTIVES),
        ]
        for name, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"config field {name!r} is {value!r}; expected one of {list(allowed)}")
        if not VARIANT_NAME.fullmatch(self.variant):
            raise ValueError(f"field 'variant' is {brief(self.variant)}; expected a name of letters, digits, '.', '_', '-'")
        if self.in_channels != (3 if self.data == "color" else 1):
            raise ValueError(f"in_channels={self.in_channels} does not match data={self.data!r}")
        check_sizes("hidden", self.hidden, 1, MAX_WIDTH, (0, 8))
        # each stride-2 convolution halves 28 exactly only twice (28 -> 14 -> 7)
        check_sizes("conv_channels", self.conv_channels, 1, MAX_CHANNELS, (1, 2))
        check_range("conv_hidden", self.conv_hidden, 0, MAX_WIDTH)
        for name in ("z_dim", "n_cat", "k_cat"):
            check_range(name, getattr(self, name), 0, MAX_LATENT)
        if self.latent in ("gaussian", "joint") and self.z_dim < 1:
            raise ValueError(f"latent {self.latent!r} needs z_dim >= 1, got {self.z_dim}")
        if self.latent in ("categorical", "joint") and (self.n_cat < 1 or self.k_cat < 2):
            raise ValueError(f"latent {self.latent!r} needs n_cat >= 1 and k_cat >= 2")
        if self.latent == "gaussian" and (self.n_cat or self.k_cat):
            raise ValueError(f"latent 'gaussian' has no categorical part: n_cat and k_cat must be 0, "
                             f"got {self.n_cat} and {self.k_cat}")
        if self.latent == "categorical":
            self.z_dim = 0
        if self.prior_cov is not None:
            if self.latent != "gaussian":
                raise ValueError("prior_cov applies to gaussian latents only")
            check_covariance("prior_cov", self.prior_cov, self.z_dim)
        if self.layers == "scratch" and (self.latent != "gaussian" or self.prior_cov is not None):
            raise ValueError("the scratch kit supports a gaussian latent with an N(0, I) prior only")
        check_range("beta", self.beta, 0)
        if self.n_classes != 10:
            raise ValueError(f"field 'n_classes' is {self.n_classes}; expected 10 (the MNIST digits)")
        check_range("tau_start", self.tau_start, 0, lo_open=True)
        check_range("tau_min", self.tau_min, 0, self.tau_start, lo_open=True)
        check_range("anneal_frac", self.anneal_frac, 0, 1)
        for name in ("seed", "color_seed"):
            check_range(name, getattr(self, name), 0, 2**63 - 1)
        check_range("epochs", self.epochs, 1, MAX_EPOCHS)
        check_range("batch_size", self.batch_size, 1, MAX_BATCH)
        check_range("lr", self.lr, 0, 1, lo_open=True)
        check_range("lr_warmup", self.lr_warmup, 0, 0.5)
        self._check_objective()

    def _check_objective(self) -> None:
        """The recipe options of precision and objective that only make sense together."""
        if self.layers == "scratch" and self.precision in ("bf16", "fp16"):
            raise ValueError(f"field 'precision' is {self.precision!r}; the scratch kit trains in 'fp32' (or 'auto') "
                             "only: its hand-written backward passes are float32")
        if not 1 <= self.iwae_k <= MAX_IWAE_K:
            raise ValueError(f"field 'iwae_k' is {self.iwae_k}; expected 1 to {MAX_IWAE_K}")
        if self.objective == "elbo" and (self.iwae_k != 1 or self.dreg):
            raise ValueError("fields 'iwae_k' and 'dreg' apply to objective 'iwae'; with 'elbo' expected iwae_k=1 "
                             "and dreg=false")
        if self.objective == "iwae" and (self.latent != "gaussian" or self.layers != "torch"):
            raise ValueError("objective 'iwae' needs a gaussian latent and the torch kit (it scores samples with "
                             "log q(z|x), which a relaxed categorical sample has not)")
        if not 0 <= self.kl_warmup_epochs <= self.epochs:
            raise ValueError(f"field 'kl_warmup_epochs' is {self.kl_warmup_epochs}; expected 0 to epochs "
                             f"({self.epochs})")

    @property
    def latent_size(self) -> int:
        """Width of z as the decoder sees it: continuous dims, then N one-hot blocks of K."""
        return self.z_dim + self.n_cat * self.k_cat

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> VAEConfig:
        """Strictly parse a config dict: every field present, none unknown, values valid."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - data.keys() - set(ADDED_FIELDS))
        unknown = sorted(data.keys() - names)
        if missing:
            raise ValueError(f"{source}: missing field(s) {missing}")
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {unknown}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from None
