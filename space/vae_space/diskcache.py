"""The Space's disk cache (``$VAE_HUB_CACHE/space``): written when it can be, checked whenever it is read.

Writing is best effort: a cache that cannot be written (a read-only or full disk, whatever the writer raises)
costs one log line and a note in ``/status``; what was computed stays in memory and is served from there,
and the browser is sent to the server for the models whose files are not on disk. Reading trusts nothing:
test codes must have the test sample's shape and finite values, ONNX graphs must load in onnxruntime and name
the variant and the weights they are served for; anything else is computed again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vae_hub.files.tensors import atomic_path
from vae_hub.hub.onnx import DECODER_FILE, ENCODER_FILE

log = logging.getLogger("vae_space")

NOT_WRITTEN = "not being written (read-only or full disk): results are kept in memory until a restart"


class DiskCache:
    """Atomic, best-effort writes, and whether the cache is being written (for /status)."""

    def __init__(self) -> None:
        self.failures = 0
        self._lock = threading.Lock()

    def write(self, path: Path, write: Callable[[Path], None]) -> bool:
        """``write(tmp)``, then ``tmp`` moved into place (``atomic_path``): a concurrent reader never sees half a
        file. False when it could not be written (nothing is left behind): the caller keeps its result in memory."""
        try:
            with atomic_path(path) as tmp:
                write(tmp)
            return True
        except Exception as e:  # OSError, safetensors' SafetensorError, ...: any writer's failure
            self.failed(path, e)
            return False

    def failed(self, path: Path, e: BaseException) -> None:
        """Count a failed write; the first one is logged (one line), the rest are summed up in /status."""
        with self._lock:
            self.failures += 1
            first = self.failures == 1
        if first:
            log.warning("the cache %s cannot be written (%s: %s); results are kept in memory",
                        path.parent, type(e).__name__, str(e).split("\n")[0][:160])

    @property
    def writing(self) -> bool:
        return self.failures == 0

    def status(self) -> str:
        return "ok" if self.writing else NOT_WRITTEN


def codes_problem(mu: np.ndarray, elbo: np.ndarray, n: int, z_dim: int) -> str | None:
    """Why cached test codes (posterior means (n, z_dim), ELBOs (n,)) are not usable; None when they are."""
    if mu.shape != (n, z_dim) or elbo.shape != (n,):
        return f"shapes {tuple(mu.shape)} and {tuple(elbo.shape)}, expected ({n}, {z_dim}) and ({n},)"
    if not (np.issubdtype(mu.dtype, np.floating) and np.issubdtype(elbo.dtype, np.floating)):
        return f"dtypes {mu.dtype} and {elbo.dtype}"
    if not (np.isfinite(mu).all() and np.isfinite(elbo).all()):
        return "non-finite values"
    return None


def onnx_problem(folder: Path, variant: str, weights_sha256: str) -> str | None:
    """Why the cached graphs in ``folder`` cannot be served for ``variant`` with these weights; None when they can:
    each must load in onnxruntime and carry the variant, its graph's role and the weights' hash in its metadata."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # quiet: a refused file is reported here, in one line
    opts.intra_op_num_threads = 1
    for graph, name in (("encoder", ENCODER_FILE), ("decoder", DECODER_FILE)):
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        try:
            meta = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).get_modelmeta()
        except Exception as e:
            return f"{name} does not load ({type(e).__name__})"
        props = meta.custom_metadata_map
        if props.get("variant") != variant or props.get("graph", graph) != graph:
            return f"{name} is {props.get('variant')!r}'s {props.get('graph', 'graph')}, not {variant}'s {graph}"
        if props.get("weights_sha256") != weights_sha256:
            return f"{name} was exported from other weights"
    return None
