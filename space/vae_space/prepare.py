"""What each loaded variant needs before its first request, computed once in a background thread and cached on disk
(``diskcache``): the test sample's posterior means and ELBOs (encoders), the 2-D models' latent maps, and the ONNX
graphs the browser runs. Then the warm-up: what the tabs otherwise build on first use.

Every cached file is keyed by a fingerprint of the weights, the test sample and ``CACHE_VERSION``, and checked
when read (a damaged or foreign file is computed again); a cache that cannot be written costs the browser its
files for that model (it is served by the server), never the feature.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from vae_hub.data.mnist import cache_dir
from vae_hub.hub import repo as hub
from vae_hub.hub.onnx import DECODER_FILE, ENCODER_FILE, export_onnx, weights_sha256

from . import plots as P
from .diskcache import DiskCache, codes_problem, onnx_problem
from .entries import BETAS, MAP_MODEL, TEST_DIGITS, Entry, TestDigits, is_colour, is_conditional_generator, is_encoder
from .errors import Unavailable

log = logging.getLogger("vae_space")

CACHE_VERSION = 1  # bump when what is cached (encodings, map pictures) is computed differently
FIRST = [MAP_MODEL, "vae-z20", "vae-z2-corr", "vae-z3", *BETAS]  # prepared first: what most visitors open
MAPPED = ("vae-z2", "vae-z2-corr")  # the 2-D models whose latent maps are drawn


class Preparation:
    """The prepared results of the loaded variants (test codes and browser graphs on their entries, latent maps
    here) and the background threads that make them. ``Engine.start`` starts it; ``shutdown`` stops it."""

    def __init__(self, test: TestDigits):
        self.test = test
        self.maps: dict[str, P.LatentMap] = {}
        self.seconds: float | None = None  # how long preparing every variant took, once done
        self.cache = DiskCache()  # best effort: a cache that cannot be written costs a log line, not a feature
        self.stopping = threading.Event()  # set by shutdown(): background work stops between steps
        self._threads: list[threading.Thread] = []
        self._asset_hash = ""

    # ------------------------------------------------------------------ running
    def start(self, models: Mapping[str, Entry], background: bool = True) -> None:
        """Prepare every model, most needed first: in a background thread, or now."""
        if background:
            self._background(lambda: self.run(models), "vae-space-prepare")
        else:
            self.run(models)

    def run(self, models: Mapping[str, Entry]) -> None:
        t0 = time.perf_counter()
        order = [n for n in FIRST if n in models] + [n for n in models if n not in FIRST]
        for name in order:
            if self.stopping.is_set():
                break
            self.prepare(models[name])
        if self.stopping.is_set():
            return
        self.seconds = time.perf_counter() - t0
        log.info("test-set encodings and maps ready in %.1f s", self.seconds)

    def prepare(self, e: Entry) -> None:
        """What e's features need: test codes, map and graphs (encoders), graphs alone (the page draws the
        conditional model's digits and sweeps the colour models' codes). ``e.ready`` is set whatever happens."""
        try:
            if is_encoder(e.config):
                self.encode_test(e)
                if e.name in MAPPED:
                    self.maps[e.name] = self.latent_map(e)
                self.export_onnx(e)
            elif is_conditional_generator(e.config) or is_colour(e.config):
                self.export_onnx(e, needs_codes=False)
        except Exception as ex:  # the reason goes to the log: users see no server path or errno
            e.error = f"could not encode the test digits ({type(ex).__name__})"
            log.exception("preparing %s failed", e.name)
        finally:
            e.ready.set()

    def warm(self, models: Mapping[str, Entry], jobs: Iterable[Callable[[], Any]],
             skip: tuple[type[BaseException], ...] = ()) -> threading.Thread:
        """Run ``jobs`` in a background thread once every model is prepared: what is otherwise made on first use
        (the tabs pass their cached pictures), so the first request does not pay for it. A job refused because
        its model is missing (``Unavailable``, or the ``skip`` exceptions: a handler's answer) is passed over:
        its feature says so when asked."""

        def run() -> None:
            for e in list(models.values()):
                e.ready.wait(600)
            t0 = time.perf_counter()
            for job in jobs:
                if self.stopping.is_set():
                    return
                try:
                    job()
                except (Unavailable, *skip):
                    pass
                except Exception:
                    log.exception("warm-up step failed")
            log.info("warm-up done in %.1f s", time.perf_counter() - t0)

        return self._background(run, "vae-space-warm")

    def _background(self, target: Callable[[], None], name: str) -> threading.Thread:
        t = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(t)
        t.start()
        return t

    def shutdown(self, models: Mapping[str, Entry], timeout: float = 15.0) -> None:
        """Stop the background work and wait for its current step: a daemon thread still inside torch or
        writing a log line while the interpreter exits can abort the process instead of a clean exit."""
        self.stopping.set()
        for e in models.values():
            e.ready.set()  # the warm-up waits on these
        for t in self._threads:
            t.join(timeout)

    # ------------------------------------------------------------------ where results are cached
    def map_png(self, e: Entry) -> Path:
        """The cached picture of a 2-D model's latent map (its limits in the PNG's text)."""
        return self._cache_path(e, "-map.png")

    def codes_path(self, e: Entry) -> Path:
        """The cached posterior means and ELBOs of the test sample (safetensors: mu (N, z), elbo (N,))."""
        return self._cache_path(e, ".safetensors")

    def _cache_path(self, e: Entry, suffix: str) -> Path:
        if not e.fingerprint:
            e.fingerprint = self._fingerprint(e)
        return cache_dir() / "space" / f"{e.name}-{e.fingerprint}{suffix}"

    def _fingerprint(self, e: Entry) -> str:
        """Identifies what a cached result depends on: the weights, the test sample, the code version."""
        if not self._asset_hash:
            self._asset_hash = hashlib.sha256(TEST_DIGITS.read_bytes()).hexdigest()
        h = hashlib.sha256(f"{CACHE_VERSION}:{self._asset_hash}:{e.name}".encode())
        for k, v in e.model.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().contiguous().cpu().numpy().tobytes())
        return h.hexdigest()[:20]

    # ------------------------------------------------------------------ what is cached
    def encode_test(self, e: Entry) -> None:
        """Posterior means and ELBOs of the test sample, computed once per set of weights and cached on disk
        (a cached file of the wrong shape or with non-finite values is computed again)."""
        path = self.codes_path(e)
        codes = self._cached_codes(e, path)
        if codes is None:
            codes = self._encode(e)
            self.cache.write(path, lambda tmp: safetensors.torch.save_file({"mu": codes[0], "elbo": codes[1]}, str(tmp)))
        mu, elbo = codes
        e.mu = mu.float().numpy()
        e.elbo = elbo.numpy()
        e.elbo_sorted = np.sort(e.elbo)
        e.active = int((e.mu.var(0) > 0.01).sum())

    def _cached_codes(self, e: Entry, path: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The codes cached at ``path`` when they are there and usable; None (logged when refused) otherwise."""
        if not path.is_file():
            return None
        try:
            t = safetensors.torch.load_file(str(path))
            mu, elbo = t["mu"], t["elbo"]
            problem = (codes_problem(mu.float().numpy(), elbo.numpy(), len(self.test.x), e.config.z_dim)
                       or ("" if mu.dtype == torch.float16 else f"means stored as {mu.dtype}, not float16"))
        except Exception as ex:  # a damaged file
            problem = f"unreadable ({type(ex).__name__})"
        if problem:
            log.warning("%s: cached test codes refused (%s); encoding again", e.name, problem)
            return None
        return mu, elbo

    def _encode(self, e: Entry, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        mus, elbos = [], []
        with torch.inference_mode():
            for i in range(0, len(self.test.x), batch):
                x = self.test.x[i:i + batch]
                post = e.model.encode(x)
                logits = e.model.decode(post.mean)
                elbos.append(-(e.model.recon_nll(logits, x) + e.model.kl(post)))
                mus.append(post.mean)
        # the means in float16: what browsers download (half the bytes) and what the server searches, so the
        # nearest neighbours are the same on both sides; 3 significant digits are plenty for a map or a search
        return torch.cat(mus).half().contiguous(), torch.cat(elbos).contiguous()

    def latent_map(self, e: Entry) -> P.LatentMap:
        """A 2-D model's map of the test sample; the matplotlib rendering is cached on disk as a PNG."""
        path = self.map_png(e)
        try:
            return P.LatentMap.from_png(path)
        except Exception:
            m = P.LatentMap(e.mu, self.test.labels, f"{e.name}: {len(e.mu):,} test digits in latent space")
            self.cache.write(path, m.save_png)
            return m

    def export_onnx(self, e: Entry, needs_codes: bool = True) -> None:
        """The graphs the browser runs (encoder.onnx, decoder.onnx), exported once per set of weights and
        cached on disk beside the test codes: the bundled folders carry no ONNX copies (size budget). Weights are
        stored as float16 in the graphs (half the download; exact for the float16-stored weights we ship).
        Cached graphs are served only once they load and name this variant and these weights (else exported
        again); the browser gets a model only when its graphs and test codes are on disk."""
        folder, ok = self._cache_path(e, "-onnx16"), False
        try:
            ok = self._cached_graphs(e, folder)
            if not ok:
                t0 = time.perf_counter()
                export_onnx(e.model, folder, half=True)
                ok = True
                log.info("exported %s to ONNX in %.1f s", e.name, time.perf_counter() - t0)
        except OSError as ex:  # a cache that cannot be written: the browser falls back to the server for it
            self.cache.failed(folder, ex)
        except Exception as ex:
            e.onnx_error = f"could not export to ONNX ({type(ex).__name__})"
            log.exception("ONNX export of %s failed", e.name)
            return
        if ok and (self.codes_path(e).is_file() or not needs_codes):
            e.onnx = {"encoder": folder / ENCODER_FILE, "decoder": folder / DECODER_FILE}
        else:
            e.onnx_error = "runs on the server here: the cache for the browser's files cannot be written"

    @staticmethod
    def _cached_graphs(e: Entry, folder: Path) -> bool:
        """Whether ``folder`` holds graphs that load and are e's (a refused pair is logged)."""
        if not hub.has_onnx(folder):
            return False
        problem = onnx_problem(folder, e.name, weights_sha256(e.model))
        if problem:
            log.warning("%s: cached ONNX graphs refused (%s); exporting again", e.name, problem)
        return problem is None
