"""vae-hub: variational autoencoders on MNIST, one config-driven family, shared through the Hub."""

from vae_hub.model.config import VAEConfig
from vae_hub.model.vae import VAE, VAEOutput, build
from vae_hub.model.variants import VARIANTS, get_config

__all__ = ["VAE", "VAEConfig", "VAEOutput", "VARIANTS", "build", "get_config", "load"]
__version__ = "0.1.0"


def load(name_or_path: str, **kwargs) -> VAE:
    """Load a trained model from a local folder, a Hub repo id, or a bundled variant name."""
    from vae_hub.hub.repo import load as _load

    return _load(name_or_path, **kwargs)
