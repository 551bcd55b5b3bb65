"""Files on disk: atomic writes, the file names of a model folder, its config.json read with clear errors, and
safetensors files written atomically with the usual file mode and failures that name the file."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from vae_hub.checks import read_json

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary sibling of ``path`` to write, then move it into place in one step: readers
    (and a crash) see the old file or the new one, never half of one. The name matches ``*.tmp*``, so a
    leftover is never staged for a Hub push. The name is new on every call: two threads writing one file never
    write into the same temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | Path, data: bytes | str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def read_config_json(folder: str | Path) -> Any:
    """The parsed config.json of a model folder, with clear errors for a missing, oversized or garbled file."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; a vae-hub model folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    return read_json(path)


def usual_mode() -> int:
    """The mode open() gives a new file: 0o666 less the umask (safetensors writes 0o600 through a temp file)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write path atomically through ``atomic_path`` (a crash or a full disk leaves any previous file
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
