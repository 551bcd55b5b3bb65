"""The one save/load path for every vae-hub model: safetensors + config.json, strict, never pickle.

``HubModel`` is ``PyTorchModelHubMixin`` with its weight hooks replaced: weights are written atomically
(optionally in a smaller float dtype) with the usual file mode, loaded strictly (the safetensors header is
checked against a meta-device build before any real allocation: every tensor present, none extra, shapes
equal, floats stored as F32/F16/BF16; then every value finite), and ``save_pretrained`` writes no
placeholder card: the real card is written last, as the folder's completion marker (``vae_hub.hub.save``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import safetensors.torch
import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from torch import nn

from vae_hub.checks import check_finite, check_header, expected_tensors
from vae_hub.files.tensors import CONFIG_NAME, WEIGHTS_NAME, read_config_json, save_safetensors, write_atomic

__all__ = ["HubModel", "save_weights"]


def save_weights(model: nn.Module, path: str | Path, dtype: torch.dtype | None = None) -> None:
    """The state dict as safetensors, floating tensors cast to ``dtype`` when given (float16 storage)."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    save_safetensors(state, path, metadata={"format": "pt"})


def _load_checked(model: nn.Module, path: Path) -> None:
    """Read weights whose header already matches the model; refuse non-finite values before they reach it."""
    try:
        state = safetensors.torch.load_file(str(path))
    except Exception as e:  # safetensors raises several types for truncated/garbled files
        raise ValueError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    expected = model.state_dict()
    state = {k: v.to(expected[k].dtype) for k, v in state.items()}
    check_finite(state, path)  # after the cast: float32 checks run faster than float16
    model.load_state_dict(state, strict=True)


class HubModel(PyTorchModelHubMixin):
    """Mixin for an ``nn.Module`` built from one dataclass config (``config_class``, with ``from_dict``)."""

    config_class: ClassVar[type]

    def save_pretrained(self, save_directory: str | Path, *, storage_dtype: torch.dtype | None = None,
                        **_: Any) -> None:
        """Write config.json and model.safetensors (floats as ``storage_dtype`` when given); no card."""
        folder = Path(save_directory)
        save_weights(self, folder / WEIGHTS_NAME, storage_dtype)
        write_atomic(folder / CONFIG_NAME, json.dumps(dataclasses.asdict(self.config), sort_keys=True, indent=2))

    @classmethod
    def from_folder(cls, folder: str | Path, config: Any = None, map_location: str | torch.device = "cpu"):
        """Build from a local folder: config.json parsed once (unless ``config`` is given), weights loaded strictly."""
        folder = Path(folder)
        if config is None:
            config = read_config_json(folder)
        return cls._build_loaded(config, folder / WEIGHTS_NAME, f"{folder}/{CONFIG_NAME}", map_location)

    @classmethod
    def _build_loaded(cls, config: Any, weights: Path, source: str, map_location: str | torch.device):
        if not isinstance(config, cls.config_class):  # the mixin hands config.json over as a dict
            config = cls.config_class.from_dict(config, source)
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: missing; a vae-hub model folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
        check_header(weights, expected_tensors(lambda: cls(config)))  # before any real allocation
        model = cls(config)
        _load_checked(model, weights)
        return model.prepare_loaded().to(map_location).eval()

    def prepare_loaded(self):
        """Hook for a layout change after loading (the VAE runs its convolutions channels-last)."""
        return self

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision=None, cache_dir=None, force_download=False,
                         local_files_only=False, token=None, map_location: str = "cpu", strict: bool = True,
                         **model_kwargs):
        # Never falls back to a pickled pytorch_model.bin, and always loads strictly.
        config = model_kwargs.pop("config", None)
        if Path(model_id).is_dir():
            weights = Path(model_id) / WEIGHTS_NAME
        else:
            weights = Path(hf_hub_download(model_id, WEIGHTS_NAME, revision=revision, cache_dir=cache_dir,
                                           force_download=force_download, token=token,
                                           local_files_only=local_files_only))
        return cls._build_loaded(config, weights, f"{model_id}/{CONFIG_NAME}", map_location)
