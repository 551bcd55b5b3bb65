"""Writing safetensors files: atomically, with the usual file mode, and failures that name the file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from .folders import atomic_path


def usual_mode() -> int:
    """The mode open() gives a new file: 0o666 less the umask (safetensors writes 0o600 through a temp file)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write path atomically through ``folders.atomic_path`` (a crash or a full disk leaves any previous file
    intact, and no temp file behind), mode as for other files.

    safetensors reports I/O failures as SafetensorError("... (os error N)") without the file name; they are
    re-raised as OSError(N, ..., path) so callers can say which file could not be written.
    """
    try:
        with atomic_path(path) as tmp:
            safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)
            os.chmod(tmp, usual_mode())
    except safetensors.SafetensorError as e:
        code = re.search(r"\(os error (\d+)\)", str(e))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from None
