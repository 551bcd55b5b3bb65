"""Everything the Space computes, as plain functions: weights, cached test-set encodings, handlers.

``Engine.start()`` loads every variant once (through ``vae_hub.load``, the one loading path); a
background thread then encodes the bundled test-digit sample with each model and renders the
latent-map backgrounds (cached on disk), so a request only encodes one image and draws a few shapes.
A variant that cannot be loaded is recorded in ``Engine.missing`` with the reason, and the features
that need it show that reason.

Every public handler validates its inputs and raises ``gr.Error`` with a short message for anything
it cannot use; unexpected failures are logged and also surface as a short ``gr.Error``, never as
a traceback. Handlers return numpy images, file paths, dicts and strings: what Gradio components
take, and what the benchmark times without a server.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import gradio as gr
import numpy as np
import pandas as pd
import safetensors.torch
import torch
from PIL import Image

import vae_hub
from vae_hub import hub
from vae_hub.config import VAEConfig
from vae_hub.data import cache_dir, color_table, split_seed
from vae_hub.models import VAE
from vae_hub.onnx import DECODER_FILE, ENCODER_FILE, export_onnx
from vae_hub.preprocess import DrawingError, sketch_image, to_mnist
from vae_hub.variants import VARIANTS

from . import plots as P
from .guard import brief

log = logging.getLogger("vae_space")

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TEST_DIGITS = ASSETS / "test_digits.safetensors"
BETAS = ["beta-vae-b0.5", "beta-vae-b1", "beta-vae-b2", "beta-vae-b4", "beta-vae-b8"]
COLOR_MODELS = ["color-vae", "color-gumbel", "color-joint"]
MAP_MODEL = "vae-z2"
CLASS_ARRAY = np.array(P.CLASS_RGB, np.uint8)
SOURCES = (["my drawing", "random test digit"] + [f"test digit {d}" for d in range(10)]
           + [f"{w} test digit {d}" for w in ("thick", "thin") for d in range(10)])
STYLE_SHARE = 0.15  # "thick"/"thin": a test digit from the 15% of its class with the most/least ink
N_NEIGHBOURS = 8
TMP_TTL_S = 120  # our output files only need to live until Gradio has copied them
COLOR_CHANGE, SHAPE_CHANGE = 0.12, 0.08  # thresholds of _color_shape_change for the "controls" column
CACHE_VERSION = 1  # bump when what is cached (encodings, map pictures) is computed differently


# ---------------------------------------------------------------------------- errors
def fail(message: str) -> NoReturn:
    """A short message for the user: a toast in the UI, a gr.Error (AppError) through the API."""
    raise gr.Error(message, duration=6, print_exception=False)


def guarded(fn: Callable) -> Callable:
    """Run a handler without gradients; turn every failure into a short gr.Error, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with torch.inference_mode():
                return fn(*args, **kwargs)
        except gr.Error:
            raise
        except DrawingError as e:
            fail(str(e))
        except Exception as e:  # a bug or an input we did not foresee: log it, tell the user briefly
            log.exception("%s failed", fn.__name__)
            fail(f"Sorry, that did not work ({type(e).__name__}). Try another input.")

    return wrapper


def _choice(value: Any, choices: list[str], what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        shown = ", ".join(choices[:12]) + (" …" if len(choices) > 12 else "")
        fail(f"{what}: expected one of {shown}; got {brief(value)}.")
    return value


def _number(value: Any, lo: float, hi: float, what: str, integer: bool = False) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            fail(f"{what}: expected a number, got {brief(value)}.")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(f"{what}: expected a number, got {brief(value)}.")
    if integer and value != int(value):
        fail(f"{what}: expected a whole number, got {brief(value)}.")
    if not lo <= value <= hi:
        fail(f"{what}: must be between {lo:g} and {hi:g}, got {value:g}.")
    return int(value) if integer else float(value)


# ---------------------------------------------------------------------------- weights
@dataclass
class WeightSource:
    """Where the weights come from: 'folder' (--weights / VAE_HUB_WEIGHTS), 'hub' (VAE_HUB_NAMESPACE)
    or 'bundled' (the repository's pretrained/)."""

    kind: str
    location: str

    def ref(self, variant: str) -> str:
        if self.kind == "hub":
            return hub.repo_id_for(variant, self.location)
        return str(Path(self.location) / variant)

    def describe(self) -> str:
        return {"folder": f"local folder `{self.shown()}` (--weights / VAE_HUB_WEIGHTS)",
                "hub": f"the Hugging Face Hub, namespace `{self.location}` (VAE_HUB_NAMESPACE)",
                "bundled": "the bundled `pretrained/` folder"}[self.kind]

    def shown(self, path: str | Path | None = None) -> str:
        """A path as visitors see it: relative to the weights source (no server paths on the page)."""
        base = Path(self.location)
        name = "pretrained" if self.kind == "bundled" else base.name
        if path is None:
            return name + "/"
        try:
            return f"{name}/{Path(path).resolve().relative_to(base.resolve()).as_posix()}"
        except ValueError:
            return Path(path).name


def resolve_source(weights: str | None = None) -> WeightSource:
    """1. --weights DIR or VAE_HUB_WEIGHTS; 2. VAE_HUB_NAMESPACE on the Hub; 3. the bundled pretrained/.
    On a Hugging Face Space without a bundled folder, 3 falls back to the default Hub namespace."""
    weights = weights or os.environ.get("VAE_HUB_WEIGHTS")
    if weights:
        return WeightSource("folder", str(Path(weights).expanduser().resolve()))
    namespace = os.environ.get("VAE_HUB_NAMESPACE")
    if namespace:
        return WeightSource("hub", namespace.strip("/"))
    bundled = hub.bundled_dir()
    if not bundled.is_dir() and os.environ.get("SPACE_ID"):
        return WeightSource("hub", hub.DEFAULT_NAMESPACE)
    return WeightSource("bundled", str(bundled.resolve()))


@dataclass
class Entry:
    """A loaded variant, its card, and (for grayscale Gaussian encoders) its test-set encodings."""

    name: str
    model: VAE
    folder: Path | None
    card: str
    metrics: list[tuple[str, str, float]]
    seconds: float
    mu: np.ndarray | None = None  # (N, z) posterior means of the test sample
    elbo: np.ndarray | None = None  # (N,) deterministic ELBO: recon at the posterior mean + exact KL
    elbo_sorted: np.ndarray | None = None
    active: int | None = None  # active units: Var_x(E[z|x]) > 0.01 (Burda et al.)
    fingerprint: str = ""  # hash of the weights (and test sample): the key of its disk caches
    ready: threading.Event = field(default_factory=threading.Event)  # test-set encodings (and map) computed
    error: str = ""  # why preparing them failed, if it did
    onnx: dict[str, Path] | None = None  # encoder/decoder graphs for the browser, once exported
    onnx_error: str = ""

    @property
    def config(self) -> VAEConfig:
        return self.model.config


def is_encoder(c: VAEConfig) -> bool:
    """Models a drawing can go into: grayscale, Gaussian latent, no label needed."""
    return c.data != "color" and c.latent == "gaussian" and not c.conditional


@dataclass
class TestDigits:
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64
    index: np.ndarray  # (N,) position in the MNIST test split (fixes the coloured-MNIST colours)
    x: torch.Tensor = field(init=False)  # (N, 1, 28, 28) float in [0, 1]

    def __post_init__(self) -> None:
        self.x = torch.from_numpy(self.images).float().div_(255).unsqueeze(1)

    @classmethod
    def load(cls, path: Path = TEST_DIGITS) -> TestDigits:
        t = safetensors.torch.load_file(str(path))
        return cls(t["images"].reshape(-1, 28, 28).numpy(), t["labels"].long().numpy(), t["index"].long().numpy())

    def colored(self, i: np.ndarray | list[int], seed: int) -> torch.Tensor:
        """The digits as the colour models saw the test split: strokes times a per-index colour."""
        table = color_table(10000, split_seed(seed, "test"))
        i = np.asarray(i)
        return self.x[i] * table[torch.from_numpy(self.index[i])][:, :, None, None]


class Engine:
    """The Space's state and handlers. Build with ``Engine.start()``."""

    def __init__(self, source: WeightSource, test: TestDigits):
        self.source = source
        self.test = test
        self.models: dict[str, Entry] = {}
        self.missing: dict[str, str] = {}
        self.maps: dict[str, P.LatentMap] = {}
        self.startup_s = 0.0
        self.prepared_s: float | None = None
        self._cache: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self._tmp = Path(tempfile.mkdtemp(prefix="vae_space_"))
        atexit.register(shutil.rmtree, self._tmp, ignore_errors=True)
        self._pruned = 0.0

    # ------------------------------------------------------------------ start-up
    @classmethod
    def start(cls, weights: str | None = None, variants: list[str] | None = None, background: bool = True,
              torch_threads: int | None = 1) -> Engine:
        """Load every variant's weights now (well under a second each); encode the test sample with each
        encoder and draw the latent maps in a background thread (instant when cached on disk), most
        needed first. Handlers that need a model's encodings wait for them.

        ``torch_threads=1``: requests are single small images, where intra-op threads only add
        synchronisation stalls (3× slower on a busy 2-core CPU); concurrency comes from serving
        requests in parallel instead. None leaves torch's setting alone."""
        if torch_threads:
            torch.set_num_threads(torch_threads)
        t0 = time.perf_counter()
        eng = cls(resolve_source(weights), TestDigits.load())
        for v in variants or list(VARIANTS):
            try:
                eng.models[v] = eng._load(v)
            except Exception as e:  # a missing variant disables its feature, never the app
                eng.missing[v] = _short_reason(e)
                log.warning("%s not loaded: %s", v, eng.missing[v])
        eng.startup_s = time.perf_counter() - t0
        log.info("loaded %d variants from %s in %.1f s; missing: %s", len(eng.models), eng.source.describe(),
                 eng.startup_s, ", ".join(eng.missing) or "none")
        if background:
            threading.Thread(target=eng._prepare_all, name="vae-space-prepare", daemon=True).start()
        else:
            eng._prepare_all()
        return eng

    def _prepare_all(self) -> None:
        t0 = time.perf_counter()
        first = [MAP_MODEL, "vae-z20", "vae-z2-corr", "vae-z3", *BETAS]
        order = [n for n in first if n in self.models] + [n for n in self.models if n not in first]
        for name in order:
            e = self.models[name]
            try:
                if is_encoder(e.config):
                    self._encode_test(e)
                    if name in ("vae-z2", "vae-z2-corr"):
                        self.maps[name] = self._latent_map(e)
                    self._export_onnx(e)
            except Exception as ex:
                e.error = f"could not encode the test digits ({type(ex).__name__}: {_short_reason(ex)})"
                log.exception("preparing %s failed", name)
            finally:
                e.ready.set()
        self.prepared_s = time.perf_counter() - t0
        log.info("test-set encodings and maps ready in %.1f s", self.prepared_s)
        self.warm()

    def _load(self, variant: str) -> Entry:
        t0 = time.perf_counter()
        ref = self.source.ref(variant)
        folder: Path | None = None
        if self.source.kind != "hub":
            folder = Path(ref)
            if not folder.is_dir():
                raise FileNotFoundError(f"no folder {variant}/ in {self.source.location}")
            if not (folder / "README.md").is_file():  # train.py writes the card last: no card, not finished
                raise FileNotFoundError(f"{variant}/ has no model card yet (still training?)")
        model = vae_hub.load(ref)
        if folder is None:
            from huggingface_hub import snapshot_download

            try:  # the card and history come with load()'s snapshot: this is a cache hit
                folder = Path(snapshot_download(ref, allow_patterns=["README.md", "*.json"]))
            except Exception:
                folder = None
        card = (folder / "README.md").read_text() if folder and (folder / "README.md").is_file() else ""
        try:
            metrics = hub.card_metrics(folder) if folder else []
        except Exception:
            metrics = []
        return Entry(variant, model, folder, card, metrics, time.perf_counter() - t0)

    def _fingerprint(self, e: Entry) -> str:
        """Identifies what a cached result depends on: the weights, the test sample, the code version."""
        if not hasattr(self, "_asset_hash"):
            self._asset_hash = hashlib.sha256(TEST_DIGITS.read_bytes()).hexdigest()
        h = hashlib.sha256(f"{CACHE_VERSION}:{self._asset_hash}:{e.name}".encode())
        for k, v in e.model.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().contiguous().cpu().numpy().tobytes())
        return h.hexdigest()[:20]

    def _export_onnx(self, e: Entry) -> None:
        """The graphs the browser runs (encoder.onnx, decoder.onnx), exported once per set of weights and
        cached on disk beside the test codes: the bundled folders carry no ONNX copies (size budget)."""
        folder = self._cache_path(e, "-onnx")
        try:
            if not all((folder / f).is_file() for f in (ENCODER_FILE, DECODER_FILE)):
                t0 = time.perf_counter()
                export_onnx(e.model, folder)
                log.info("exported %s to ONNX in %.1f s", e.name, time.perf_counter() - t0)
            e.onnx = {"encoder": folder / ENCODER_FILE, "decoder": folder / DECODER_FILE}
        except Exception as ex:  # the browser then falls back to the server for this model
            e.onnx_error = f"could not export to ONNX ({type(ex).__name__}: {_short_reason(ex)})"
            log.exception("ONNX export of %s failed", e.name)

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

    def _encode_test(self, e: Entry, batch: int = 1000) -> None:
        """Posterior means and ELBOs of the test sample, computed once per set of weights and cached on disk."""
        path = self._cache_path(e, ".safetensors")
        try:
            t = safetensors.torch.load_file(str(path))
            mu, elbo = t["mu"], t["elbo"]
        except Exception:  # not cached yet, or a damaged cache: recompute
            mus, elbos = [], []
            with torch.inference_mode():
                for i in range(0, len(self.test.x), batch):
                    x = self.test.x[i:i + batch]
                    post = e.model.encode(x)
                    logits = e.model.decode(post.mean)
                    elbos.append(-(e.model.recon_nll(logits, x) + e.model.kl(post)))
                    mus.append(post.mean)
            mu, elbo = torch.cat(mus).contiguous(), torch.cat(elbos).contiguous()
            _atomic_write(path, lambda tmp: safetensors.torch.save_file({"mu": mu, "elbo": elbo}, str(tmp)))
        e.mu = mu.numpy()
        e.elbo = elbo.numpy()
        e.elbo_sorted = np.sort(e.elbo)
        e.active = int((e.mu.var(0) > 0.01).sum())

    def _latent_map(self, e: Entry) -> P.LatentMap:
        """A 2-D model's map of the test sample; the matplotlib rendering is cached on disk as a PNG."""
        path = self.map_png(e)
        title = f"{e.name}: {len(e.mu):,} test digits in latent space"
        try:
            return P.LatentMap.from_png(path)
        except Exception:
            m = P.LatentMap(e.mu, self.test.labels, title)
            _atomic_write(path, m.save_png)
            return m

    def warm(self) -> None:
        """Build what is made on first use (comparison maps, slice background, default grids) ahead of
        the first request; run in a background thread after start-up."""
        t0 = time.perf_counter()
        jobs = [lambda: self.corr_maps(), lambda: self.manifold(MAP_MODEL, 15, 2.5), lambda: self.slice3d(0.0, 12, 2.5)]
        for job in jobs:
            try:
                job()
            except gr.Error:
                pass  # a missing model: its feature says so when asked
            except Exception:
                log.exception("warm-up step failed")
        log.info("warm-up done in %.1f s", time.perf_counter() - t0)

    # ------------------------------------------------------------------ lookups
    def available(self, group: str) -> list[str]:
        """Loaded variants usable by a feature: encoder, map2d, beta, color, any."""
        ok = {
            "encoder": lambda c: is_encoder(c),
            "map2d": lambda c: is_encoder(c) and c.z_dim == 2,
            "beta": lambda c: c.variant in BETAS,
            "color": lambda c: c.data == "color",
            "any": lambda c: True,
        }[group]
        return [n for n, e in self.models.items() if ok(e.config)]

    def default_encoder(self) -> str | None:
        """The model a drawing goes to first: the classic vae-z20, else the 2-D model, else any encoder."""
        encoders = self.available("encoder")
        return next((m for m in ("vae-z20", MAP_MODEL) if m in encoders), encoders[0] if encoders else None)

    def _need(self, name: Any, group: str = "any", ready: bool = True) -> Entry:
        if name is None and not self.available(group):
            fail("No model for this is available here; the notes on the page (and /status) say why.")
        if not isinstance(name, str) or name not in VARIANTS:
            fail(f"Unknown model {brief(name)}; choose one of: {', '.join(self.available(group)) or 'none loaded'}.")
        if name not in self.models:
            fail(f"{name} is not available here: {self.missing.get(name, 'not loaded')}.")
        if name not in self.available(group):
            fail(f"{name} cannot be used here; choose one of: {', '.join(self.available(group))}.")
        e = self.models[name]
        if ready:
            self._wait(e)
        return e

    def _wait(self, e: Entry, timeout: float = 120.0) -> None:
        if not e.ready.wait(timeout):
            fail(f"{e.name} is still being prepared (encoding the test digits); try again in a few seconds.")
        if e.error:
            fail(f"{e.name}: {e.error}.")

    def _map(self, name: str) -> P.LatentMap | None:
        """A 2-D model's latent map, once it is drawn; None when the model is not available."""
        e = self.models.get(name)
        if e is None:
            return None
        self._wait(e)
        return self.maps.get(name)

    def _no_map(self, what: str) -> np.ndarray:
        """The picture shown where a map would be when the 2-D model is missing: why, in words."""
        return P.placeholder(f"{what} needs {MAP_MODEL}, which is not available: "
                             f"{self.missing.get(MAP_MODEL, 'not loaded')}.", (440, 450))

    def unavailable_note(self, names: list[str], feature: str) -> str:
        gone = [n for n in names if n not in self.models]
        if not gone:
            return ""
        why = "; ".join(f"`{n}`: {self.missing.get(n, 'not loaded')}" for n in gone)
        return f"⚠️ {feature} without {', '.join(f'`{n}`' for n in gone)} — {why}."

    def _cached(self, key: Any, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = build()
        with self._lock:
            return self._cache.setdefault(key, value)

    def _input(self, source: Any, drawing: Any, seed: Any, slot: int) -> tuple[torch.Tensor, int | None, str]:
        """One input image (1, 1, 28, 28): the drawing, or a test digit picked by class or at random."""
        source = _choice(source, SOURCES, "input source")
        if source == "my drawing":
            return torch.from_numpy(to_mnist(sketch_image(drawing)))[None, None], None, "your drawing"
        seed = _number(seed, 0, 2**31 - 1, "seed", integer=True)
        rng = np.random.default_rng([seed, slot])
        pool = np.arange(len(self.test.labels)) if source == "random test digit" else \
            np.flatnonzero(self.test.labels == int(source.rsplit(" ", 1)[1]))
        if source.startswith(("thick", "thin")):  # stroke weight by ink mass within the class
            ink = self.test.images[pool].reshape(len(pool), -1).sum(1, dtype=np.int64)
            k = max(1, int(len(pool) * STYLE_SHARE))
            order = np.argsort(ink)
            pool = pool[order[-k:] if source.startswith("thick") else order[:k]]
        i = int(rng.choice(pool))
        return self.test.x[i:i + 1], int(self.test.labels[i]), f"test digit #{int(self.test.index[i])} (a {self.test.labels[i]})"

    def _neighbours(self, e: Entry, z: np.ndarray, k: int = N_NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
        d2 = ((e.mu - z) ** 2).sum(1)
        idx = np.argpartition(d2, k)[:k]
        idx = idx[np.argsort(d2[idx])]
        return idx, np.sqrt(d2[idx])

    def _vote(self, idx: np.ndarray) -> tuple[int, int]:
        counts = np.bincount(self.test.labels[idx], minlength=10)
        return int(counts.argmax()), int(counts.max())

    def _tmpfile(self, suffix: str) -> Path:
        now = time.time()
        if now - self._pruned > 30:  # Gradio copies outputs into its own cache; ours can go after a while
            self._pruned = now
            for old in self._tmp.glob("*"):
                try:
                    if now - old.stat().st_mtime > TMP_TTL_S:
                        old.unlink()
                except OSError:
                    pass
        return self._tmp / f"{uuid.uuid4().hex}{suffix}"

    def as_files(self, fn: Callable) -> Callable:
        """The same handler, with its image arrays written to PNG files (for the Gradio UI).

        Gradio saves returned arrays under a content hash and rewrites that file in place on every
        request, so two concurrent requests with the same output can truncate a file another one is
        downloading. Unique files we write ourselves are copied into its cache atomically instead, and
        a fast PNG compression level halves the encoding time."""

        def to_file(v: Any) -> Any:
            if isinstance(v, np.ndarray) and v.ndim == 3 and v.dtype == np.uint8:
                path = self._tmpfile(".png")
                Image.fromarray(v).save(path, format="PNG", compress_level=1)
                return str(path)
            return v

        @functools.wraps(fn)
        def run(*args, **kwargs):
            out = fn(*args, **kwargs)
            return tuple(to_file(v) for v in out) if isinstance(out, tuple) else to_file(out)

        return run

    # ------------------------------------------------------------------ 1. draw & encode
    @guarded
    def encode(self, drawing: Any, model: str = MAP_MODEL) -> tuple:
        """Drawing -> MNIST-style input, reconstruction, posterior per dimension, the posterior on the
        2-D latent map (1σ and 2σ ellipses), nearest test digits, typicality (ELBO percentile)."""
        e = self._need(model, "encoder")
        x = torch.from_numpy(to_mnist(sketch_image(drawing)))[None, None]
        r = self._numbers(e, x)
        logits, recon_nll, kl, elbo, pct = r.logits, r.recon_nll, r.kl, r.elbo, r.percentile
        mu, sigma, idx, dist = r.mean, r.sigma, r.idx, r.dist
        vote, votes = self._vote(idx)

        map_name, mz, ms = self._map_posterior(e, x, r)
        m = self._map(map_name) if mz is not None else None
        if m is not None:

            def paint(ov: P.Overlay) -> None:
                if map_name == model:
                    nz = e.mu[idx]
                    ov.dots(nz, [P.INK] * len(nz), r=3.2)
                ov.ellipse(mz, 2 * ms, P.RED, width=1.6, fill=(220, 38, 38, 28))
                ov.ellipse(mz, ms, P.RED, width=2.6)
                ov.cross(mz, P.RED)
                ov.note("your drawing: 1σ and 2σ of q(z|x)" + ("" if map_name == model else f" under {map_name}"), P.RED)
                ov.inset(mz, ms, self.models[map_name].mu, CLASS_ARRAY[self.test.labels])

            map_img = m.draw(paint)
        else:
            map_img = self._no_map("The latent map")

        labels = [f"{self.test.labels[i]} · {d:.2f}" for i, d in zip(idx, dist)]
        nn_img = P.with_header(P.labelled_tiles(P.to_rgb(self.test.x[idx]), labels, k=2,
                                                colors=[P.CLASS_RGB[self.test.labels[i]] for i in idx]),
                               f"nearest test digits in {model}'s latent space (label · distance)", size=13)
        verdict = ("typical" if pct >= 10 else "unusual" if pct >= 1 else "very unlike the test digits")
        summary = (f"**{model}** reconstructs it with −log p(x|z) = {recon_nll:.1f} nats, KL = {kl:.1f} nats.  \n"
                   f"**Typicality:** ELBO {elbo:.1f} nats is at the **{pct:.0f}th percentile** of "
                   f"{len(e.elbo_sorted):,} test digits (median {np.median(e.elbo_sorted):.1f}): *{verdict}*.  \n"
                   f"**Nearest test digits** in {model}'s latent space: {votes} of {len(idx)} are a **{vote}**.")
        data = {"model": model, "mean": mu.round(4).tolist(), "sigma": sigma.round(4).tolist(),
                "recon_nll": round(recon_nll, 3), "kl": round(kl, 3), "elbo": round(elbo, 3),
                "elbo_percentile": round(float(pct), 2), "knn_label": vote,
                "neighbours": [{"test_index": int(self.test.index[i]), "label": int(self.test.labels[i]),
                                "distance": round(float(d), 4)} for i, d in zip(idx, dist)],
                "map_model": map_name if m is not None else None}
        return (P.digit(x[0], 8), P.digit(torch.sigmoid(logits[0]), 8), P.posterior_chart(mu, sigma), map_img,
                nn_img, summary, data)

    def _numbers(self, e: Entry, x: torch.Tensor) -> Numbers:
        """One input (1, 1, 28, 28) through a model: what /encode and the browser both report."""
        post = e.model.encode(x)
        logits = e.model.decode(post.mean)
        recon_nll = float(e.model.recon_nll(logits, x)[0])
        kl = float(e.model.kl(post)[0])
        elbo = -(recon_nll + kl)
        pct = 100.0 * np.searchsorted(e.elbo_sorted, elbo) / len(e.elbo_sorted)
        mu, sigma = post.mean[0].numpy(), post.stddev[0].numpy()
        idx, dist = self._neighbours(e, mu)
        return Numbers(logits, mu, sigma, recon_nll, kl, elbo, float(pct), idx, dist)

    def _map_posterior(self, e: Entry, x: torch.Tensor, r: Numbers) -> tuple[str, np.ndarray | None, np.ndarray | None]:
        """Where the input sits on the 2-D latent map: the chosen model's own code when it is 2-D, else the 2-D
        model's posterior of the same input. (map model, mean, σ); mean and σ are None without that map."""
        map_name = e.name if e.config.z_dim == 2 else MAP_MODEL
        if map_name not in self.models or self._map(map_name) is None:
            return map_name, None, None
        if map_name == e.name:
            return map_name, r.mean, r.sigma
        p2 = self.models[map_name].model.encode(x)
        return map_name, p2.mean[0].numpy(), p2.stddev[0].numpy()

    @guarded
    def encode_array(self, x: Any, model: str = "vae-z20") -> dict:
        """An MNIST-style input already made (784 values in [0, 1], row-major, white digit on black; as the
        browser's preprocessing makes it) through a model: the code, reconstruction, ELBO and its percentile,
        nearest test digits, and the 2-D map model's code. The pad's fallback when the in-browser
        runtime cannot load."""
        e = self._need(model, "encoder")
        arr = _pixels(x)
        xt = torch.from_numpy(arr).reshape(1, 1, 28, 28)
        r = self._numbers(e, xt)
        map_name, mz, ms = self._map_posterior(e, xt, r)
        m = None if mz is None else {"model": map_name, "mean": mz.tolist(), "sigma": ms.tolist()}
        return {"model": model, "mean": r.mean.tolist(), "sigma": r.sigma.tolist(),
                "recon": torch.sigmoid(r.logits).flatten().tolist(), "recon_nll": r.recon_nll, "kl": r.kl,
                "elbo": r.elbo, "elbo_percentile": r.percentile, "elbo_median": float(np.median(e.elbo_sorted)),
                "n_test": len(e.elbo_sorted),
                "neighbours": [{"i": int(i), "test_index": int(self.test.index[i]), "label": int(self.test.labels[i]),
                                "distance": float(d)} for i, d in zip(r.idx, r.dist)],
                "map": m}

    # ------------------------------------------------------------------ 2. interpolate, arithmetic
    @guarded
    def interpolate(self, model: str, a_source: str, a_drawing: Any, b_source: str, b_drawing: Any,
                    steps: int = 10, seed: int = 0) -> tuple:
        """Linear and spherical paths between two codes: a strip of frames, an animated GIF, the path on
        the 2-D map, and JSON with each frame's box in the strip."""
        e = self._need(model, "encoder")
        steps = _number(steps, 3, 24, "steps", integer=True)
        xa, _, da = self._input(a_source, a_drawing, seed, 0)
        xb, _, db = self._input(b_source, b_drawing, seed, 1)
        za, zb = e.model.encode(xa).mean[0], e.model.encode(xb).mean[0]
        t = torch.linspace(0, 1, steps)
        lin = (1 - t)[:, None] * za + t[:, None] * zb
        sph = slerp(za, zb, t)
        frames = torch.sigmoid(e.model.decode(torch.cat([lin, sph])))
        f_lin, f_sph = P.to_rgb(frames[:steps]), P.to_rgb(frames[steps:])
        strip, boxes = P.frame_strip({"linear": f_lin, "spherical": f_sph}, k=3,
                                     title=f"{model}: {da} → {db}, {steps} frames")
        gif = self._gif(f_lin, f_sph)

        map_name = model if e.config.z_dim == 2 else MAP_MODEL
        m = self._map(map_name)
        if m is not None:
            if map_name == model:
                p_lin, p_sph, how = lin.numpy(), sph.numpy(), f"the path in {model}'s latent space"
            else:  # where the 2-D model puts the decoded frames: a view of the path, not the path itself
                enc = self.models[map_name].model.encode(frames).mean.numpy()
                p_lin, p_sph, how = enc[:steps], enc[steps:], f"(the frames, re-encoded by {map_name})"

            def paint(ov: P.Overlay) -> None:
                ov.path(p_lin, P.BLUE, 2.4)
                ov.path(p_sph, P.ORANGE, 2.4)
                ov.marker(p_lin[0], P.INK, 5, "A")
                ov.marker(p_lin[-1], P.INK, 5, "B")
                ov.note("blue: linear · orange: spherical")
                ov.note(how)

            map_img = m.draw(paint)
        else:
            map_img = self._no_map("The path map")
        info = {"model": model, "a": da, "b": db, "steps": steps, "t": t.round(decimals=4).tolist(),
                "z_a": za.round(decimals=4).tolist(), "z_b": zb.round(decimals=4).tolist(), "tiles": boxes,
                "omega_degrees": round(float(_angle(za, zb)) * 180 / math.pi, 2)}
        return strip, str(gif), map_img, info

    def _gif(self, f_lin: np.ndarray, f_sph: np.ndarray, k: int = 5) -> Path:
        """Linear | spherical side by side, there and back; greyscale GIF frames are exact."""
        side, gap, head = 28 * k, 12, 24
        frames = []
        for a, b in zip(f_lin, f_sph):
            img = Image.new("L", (2 * side + gap, side + head), 255)
            img.paste(Image.fromarray(P.upscale(a[:, :, 0], k)), (0, head))
            img.paste(Image.fromarray(P.upscale(b[:, :, 0], k)), (side + gap, head))
            from PIL import ImageDraw

            d = ImageDraw.Draw(img)
            d.text((side / 2, head / 2), "linear", font=P.font(14), fill=60, anchor="mm")
            d.text((side + gap + side / 2, head / 2), "spherical", font=P.font(14), fill=60, anchor="mm")
            frames.append(img)
        seq = frames + frames[-2:0:-1]
        durations = [700 if i in (0, len(frames) - 1) else 110 for i in range(len(seq))]
        path = self._tmpfile(".gif")
        seq[0].save(path, save_all=True, append_images=seq[1:], duration=durations, loop=0, optimize=False)
        return path

    @guarded
    def arithmetic(self, model: str, a_source: str, a_drawing: Any, b_source: str, b_drawing: Any,
                   c_source: str, c_drawing: Any, seed: int = 0) -> tuple:
        """Latent arithmetic: decode(z_a − z_b + z_c), with the vectors on the 2-D map."""
        e = self._need(model, "encoder")
        xs, descs = [], []
        for slot, (src, drw) in enumerate(((a_source, a_drawing), (b_source, b_drawing), (c_source, c_drawing))):
            x, _, d = self._input(src, drw, seed, slot)
            xs.append(x)
            descs.append(d)
        z = e.model.encode(torch.cat(xs)).mean
        zr = z[0] - z[1] + z[2]
        allz = torch.cat([z, zr[None]])
        imgs = P.to_rgb(torch.sigmoid(e.model.decode(allz)))
        row = P.equation([imgs[0], "−", imgs[1], "+", imgs[2], "=", imgs[3]], k=4)
        idx, _ = self._neighbours(e, zr.numpy())
        vote, votes = self._vote(idx)
        map_name = model if e.config.z_dim == 2 else MAP_MODEL
        m = self._map(map_name)
        if m is not None:
            pts = allz.numpy() if map_name == model else \
                self.models[map_name].model.encode(torch.sigmoid(e.model.decode(allz))).mean.numpy()

            def paint(ov: P.Overlay) -> None:
                ov.arrow(pts[1], pts[0], P.BLUE)
                ov.arrow(pts[2], pts[3], P.ORANGE)
                for p, name in zip(pts, "ABC="):
                    ov.marker(p, P.INK if name != "=" else P.RED, 5, name if name != "=" else "A−B+C")
                ov.note("blue: B→A · orange: the same step from C")
                if map_name != model:
                    ov.note(f"(the decoded images, re-encoded by {map_name})")

            map_img = m.draw(paint)
        else:
            map_img = self._no_map("The map")
        info = {"model": model, "a": descs[0], "b": descs[1], "c": descs[2], "z_result": zr.round(decimals=4).tolist(),
                "knn_label": vote, "knn_votes": votes}
        return row, map_img, info

    # ------------------------------------------------------------------ 3. beta comparison
    @guarded
    def compare_betas(self, source: str, drawing: Any, seed: int = 0) -> tuple:
        """One input through every beta-VAE: reconstruction, KL per dimension (sorted), traversals of
        the most-used dimensions; and each model's test metrics from its card."""
        have = [b for b in BETAS if b in self.models]
        if not have:
            fail("No beta-VAE is available: " + "; ".join(f"{b}: {self.missing.get(b, 'not loaded')}" for b in BETAS))
        x, _, desc = self._input(source, drawing, seed, 0)
        results = {}
        for b in have:
            m = self._need(b, "beta").model
            post = m.encode(x)
            mu, sd = post.mean[0], post.stddev[0]
            kl_d = (0.5 * (mu**2 + sd**2 - 1 - 2 * sd.log())).numpy()
            order = np.argsort(-kl_d)
            top = order[:3]
            steps = torch.linspace(-2.5, 2.5, 7)
            zs = [mu[None]]
            for dim in top:
                z = mu.repeat(len(steps), 1)
                z[:, dim] = steps
                zs.append(z)
            imgs = P.to_rgb(torch.sigmoid(m.decode(torch.cat(zs))))
            logits = m.decode(mu[None])
            results[b] = dict(kl=kl_d, order=order, top=top, recon=imgs[0], trav=imgs[1:].reshape(len(top), 7, 28, 28, 3),
                              recon_nll=float(m.recon_nll(logits, x)[0]), kl_total=float(kl_d.sum()),
                              mean=[round(float(v), 5) for v in mu])
        vmax = max(float(r["kl"].max()) for r in results.values())
        rows = [_beta_header()] + [_beta_row(VARIANTS[b].beta, results.get(b), vmax, self.missing.get(b, "not loaded"))
                                   for b in BETAS]
        figure = P.vstack(rows, gap=6)
        rows = []  # the table
        for b in BETAS:
            e = self.models.get(b)
            met = {k: v for k, _, v in e.metrics} if e else {}
            r = results.get(b)
            rows.append([b, VARIANTS[b].beta, _r(met.get("test_loss")), _r(met.get("test_recon")), _r(met.get("test_kl")),
                         e.active if e else None, _r(r["recon_nll"]) if r else None, _r(r["kl_total"]) if r else None,
                         int((r["kl"] > 0.05).sum()) if r else None])
        table = pd.DataFrame(rows, columns=["model", "β", "test loss", "test recon", "test KL", "active dims (test)",
                                            "this input: recon", "this input: KL", "this input: dims used"])
        data = {"input": desc, "models": {b: {"kl_per_dim": r["kl"].round(4).tolist(), "order": r["order"].tolist(),
                                              "mean": r["mean"], "beta": VARIANTS[b].beta,
                                              "recon_nll": round(r["recon_nll"], 3)} for b, r in results.items()}}
        return P.digit(x[0], 6), figure, table, data

    # ------------------------------------------------------------------ 4. latent explorer
    @guarded
    def manifold(self, model: str = MAP_MODEL, n: int = 15, span: float = 2.5) -> np.ndarray:
        """The decoded grid over a 2-D latent, z₂ up."""
        e = self._need(model, "map2d")
        n = _number(n, 3, 25, "grid size", integer=True)
        span = _number(span, 0.5, 5.0, "span")

        def build() -> np.ndarray:
            t = torch.linspace(-span, span, n)
            zz = torch.stack(torch.meshgrid(t, -t, indexing="xy"), -1).reshape(-1, 2)
            return P.tile(P.to_rgb(torch.sigmoid(e.model.decode(zz))), n, pad=0)

        return self._cached(("manifold", model, n, round(span, 3)), build)

    @guarded
    def decode_point(self, model: str, z1: float, z2: float) -> tuple:
        """Decode one point of a 2-D latent and mark it on that model's map."""
        e = self._need(model, "map2d")
        z1, z2 = _number(z1, -6, 6, "z1"), _number(z2, -6, 6, "z2")
        img = torch.sigmoid(e.model.decode(torch.tensor([[z1, z2]])))[0]
        m = self._map(model)

        def paint(ov: P.Overlay) -> None:
            ov.cross((z1, z2), P.RED, 8)
            ov.note(f"z = ({z1:.2f}, {z2:.2f})", P.RED)

        return P.digit(img, 8), m.draw(paint)

    @guarded
    def decode_points(self, model: Any, z: Any, k: Any) -> list[float]:
        """Codes (n × k, row-major, n ≤ 625) of a 2-D or 3-D model -> n decoded images, 784 values each in
        [0, 1], flat: what the explorer paints when the in-browser runtime cannot load."""
        e = self._need(model, "any")
        if e.config.z_dim not in (2, 3) or not is_encoder(e.config):
            fail(f"{e.name} is not a 2-D or 3-D model; choose vae-z2, vae-z2-corr or vae-z3.")
        k = _number(k, 1, 3, "k", integer=True)
        if k != e.config.z_dim:
            fail(f"k: {e.name} has {e.config.z_dim} latent dimensions, got k={k}.")
        try:
            codes = np.asarray(z, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            fail(f"z: expected a flat list of numbers (n × {k}), got {brief(z)}.")
        if codes.size == 0 or codes.size % k or codes.size // k > 625:
            fail(f"z: expected n × {k} numbers with 1 ≤ n ≤ 625, got {codes.size}.")
        if not np.isfinite(codes).all() or np.abs(codes).max() > 10:
            fail("z: every value must be a finite number in [-10, 10].")
        out = torch.sigmoid(e.model.decode(torch.from_numpy(codes).reshape(-1, k)))
        return out.flatten().tolist()

    @guarded
    def slice3d(self, z3: float = 0.0, n: int = 12, span: float = 2.5) -> tuple:
        """vae-z3 decoded over (z₁, z₂) at a fixed z₃, and the test digits whose z₃ is near it."""
        e = self._need("vae-z3", "encoder")
        z3 = _number(z3, -4, 4, "z3")
        n = _number(n, 3, 25, "grid size", integer=True)
        span = _number(span, 0.5, 5.0, "span")
        t = torch.linspace(-span, span, n)
        zz = torch.stack(torch.meshgrid(t, -t, indexing="xy"), -1).reshape(-1, 2)
        z = torch.cat([zz, torch.full((len(zz), 1), z3)], 1)
        grid = P.tile(P.to_rgb(torch.sigmoid(e.model.decode(z))), n, pad=0)
        bg = self._cached("slice-bg", lambda: P.LatentMap(e.mu[:, :2], self.test.labels,
                                                          "vae-z3: test digits near the slice", lim=span + 0.5, faint=True))
        near = np.flatnonzero(np.abs(e.mu[:, 2] - z3) < 0.25)

        def paint(ov: P.Overlay) -> None:
            ov.dots(e.mu[near, :2], [P.CLASS_RGB[c] for c in self.test.labels[near]], r=2.6)
            s = span
            ov.polygon_z(np.array([[-s, -s], [s, -s], [s, s], [-s, s]]), P.INK, 1.2)
            ov.note(f"|z₃ − {z3:.2f}| < 0.25: {len(near)} digits (grey: all)")

        return grid, bg.draw(paint)

    @guarded
    def corr_maps(self) -> tuple:
        """vae-z2 (isotropic prior) beside vae-z2-corr (tilted prior): test codes, prior contours and the
        aggregate posterior's covariance."""

        def build() -> tuple:
            out, notes = [], []
            for name in ("vae-z2", "vae-z2-corr"):
                if name not in self.models:
                    out.append(P.placeholder(f"{name} is not available: {self.missing.get(name, 'not loaded')}.", (440, 450)))
                    continue
                e = self._need(name, "map2d")
                cov = np.array(e.config.prior_cov) if e.config.prior_cov else np.eye(2)
                emp = np.cov(e.mu.T)
                lim = max(3.0, float(np.percentile(np.abs(e.mu), 99.5)) + 0.4)

                def decorate(ax, cov=cov, emp=emp) -> None:
                    for k, ls in ((1, "-"), (2, "--")):
                        p = P.ellipse_points(cov, k, n=200)
                        ax.plot(*np.vstack([p, p[:1]]).T, color="black", lw=1.4, ls=ls,
                                label=f"prior {k}σ" if k == 1 else None)
                    p = P.ellipse_points(emp, 2, np.zeros(2), n=200)
                    ax.plot(*np.vstack([p, p[:1]]).T, color="#dc2626", lw=1.6, label="test codes 2σ")
                    ax.legend(loc="lower right", fontsize=7, framealpha=0.85)

                prior = "N(0, I)" if not e.config.prior_cov else "N(0, Σ), Σ = [[1, .4], [.4, .5]]"
                m = P.LatentMap(e.mu, self.test.labels, f"{name}: prior {prior}", lim=lim, decorate=decorate)
                out.append(m.draw())
                corr = emp[0, 1] / np.sqrt(emp[0, 0] * emp[1, 1])
                notes.append(f"`{name}`: test codes have correlation {corr:+.2f}, variances "
                             f"{emp[0, 0]:.2f} / {emp[1, 1]:.2f}")
            md = ("Each code is pulled towards its prior by the KL term, so the cloud of test codes takes the prior's "
                  "shape. " + "; ".join(notes) + " (prior correlation: 0 and +0.57).")
            return out[0], out[1], md

        return self._cached("corr", build)

    # ------------------------------------------------------------------ 5. generate
    @guarded
    def generate(self, model: str, n: int = 36, seed: int = 0) -> np.ndarray:
        """Samples from a model's prior (conditional models: labels 0-9 in turn)."""
        e = self._need(model, "any")
        n = _number(n, 1, 100, "number of samples", integer=True)
        seed = _number(seed, 0, 2**31 - 1, "seed", integer=True)
        g = torch.Generator().manual_seed(seed)
        z = prior_sample(e.model, n, g)
        y = torch.arange(n) % 10 if e.config.conditional else None
        imgs = torch.sigmoid(e.model.decode(z, y))
        return P.tile(P.to_rgb(imgs), int(math.ceil(math.sqrt(n))) if not e.config.conditional else 10, k=2)

    @guarded
    def conditional(self, digit: str = "all", n: int = 8, seed: int = 0) -> np.ndarray:
        """The class-conditional model: pick a digit (or 'all') and sample its styles."""
        e = self._need("cvae", "any")
        digit = _choice(str(digit) if isinstance(digit, int) and not isinstance(digit, bool) else digit,
                        ["all"] + [str(d) for d in range(10)], "digit")
        n = _number(n, 1, 40, "samples per digit", integer=True)
        seed = _number(seed, 0, 2**31 - 1, "seed", integer=True)
        g = torch.Generator().manual_seed(seed)
        digits = list(range(10)) if digit == "all" else [int(digit)]
        z = prior_sample(e.model, n, g).repeat(len(digits), 1)  # same styles in every row
        y = torch.tensor(digits).repeat_interleave(n)
        imgs = torch.sigmoid(e.model.decode(z, y))
        return P.tile(P.to_rgb(imgs), n if digit == "all" else min(n, 10), k=2)

    @guarded
    def color_codes(self, model: str = "color-joint", seed: int = 0) -> tuple:
        """How a colour model's codes control colour and shape: sweep each continuous dimension and
        each categorical variable around one test digit's code, and measure what changes."""
        e = self._need(model, "color")
        seed = _number(seed, 0, 2**31 - 1, "seed", integer=True)
        c = e.config
        i = int(np.random.default_rng(seed).integers(len(self.test.labels)))
        x = self.test.colored([i], c.color_seed)
        post = e.model.encode(x)
        base = post.mode[0]
        rows: dict[str, torch.Tensor] = {}
        kinds: list[str] = []
        if c.z_dim:
            g = getattr(post, "continuous", post)
            mu, sd = g.mean[0], g.stddev[0]
            kl_d = 0.5 * (mu**2 + sd**2 - 1 - 2 * sd.log())
            for dim in kl_d.argsort(descending=True)[: min(4, c.z_dim)].tolist():
                z = base.repeat(9, 1)
                z[:, dim] = torch.linspace(-2.5, 2.5, 9)
                rows[f"z{dim + 1}"] = z
                kinds.append(f"continuous (KL {float(kl_d[dim]):.1f})")
        cats = np.unique(np.linspace(0, c.k_cat - 1, min(c.k_cat, 13)).round().astype(int)) if c.n_cat else []
        for v in range(c.n_cat):  # up to 13 evenly spaced categories of each variable
            start = c.z_dim + v * c.k_cat
            z = base.repeat(len(cats), 1)
            z[:, start:start + c.k_cat] = 0
            z[torch.arange(len(cats)), start + torch.from_numpy(cats)] = 1
            rows[f"c{v + 1}"] = z
            kinds.append(f"categorical, {len(cats)} of {c.k_cat} values")
        out = torch.sigmoid(e.model.decode(torch.cat(list(rows.values()))))  # one batch
        decoded = dict(zip(rows, out.split([len(z) for z in rows.values()])))
        table, shown = [], {}
        for (name, imgs), kind in zip(decoded.items(), kinds):
            col, shape = _color_shape_change(imgs)
            is_col, is_shape = col > COLOR_CHANGE, shape > SHAPE_CHANGE
            verdict = {(True, False): "colour", (False, True): "shape", (True, True): "colour and shape"}.get(
                (is_col, is_shape), "little")
            table.append([name, kind, round(col, 3), round(shape, 3), verdict])
            shown[f"{name}: {verdict}"] = P.to_rgb(imgs)
        recon = torch.sigmoid(e.model.decode(base[None]))
        head = P.labelled_tiles(P.to_rgb(torch.cat([x, recon])), ["test digit", "reconstruction"], k=3)
        strip, _ = P.frame_strip(shown, k=2, gap=3)
        img = P.vstack([head, strip])
        df = pd.DataFrame(table, columns=["variable", "kind", "colour change", "shape change", "controls"])
        return img, df

    # ------------------------------------------------------------------ 6. models
    @guarded
    def model_card(self, variant: str) -> tuple:
        """A variant's card, its metrics, its figures and where to download it."""
        variant = _choice(variant, list(VARIANTS), "variant")
        repo = hub.repo_id_for(variant, self.source.location if self.source.kind == "hub" else hub.DEFAULT_NAMESPACE)
        download = (f"**Download:** [`{repo}`](https://huggingface.co/{repo}) on the Hugging Face Hub\n\n"
                    f"```python\nimport vae_hub\nmodel = vae_hub.load(\"{repo}\")\n```")
        e = self.models.get(variant)
        if e is None:
            return (f"### {variant}\n\n⚠️ Not available in this app: {self.missing.get(variant, 'not loaded')}.\n\n"
                    f"{VARIANTS[variant].description}", pd.DataFrame(columns=["metric", "value"]), [], download)
        if e.folder is not None and self.source.kind != "hub":
            download += f"\n\nLoaded here from `{self.source.shown(e.folder)}`."
        body = _strip_front_matter(e.card) or f"### {variant}\n\n{e.config.description}"
        body = body.split("\n## Figures", 1)[0].strip()  # figures go to the gallery, where they render
        body = _drop_section(body, "## Test metrics")  # shown once, in the metrics table beside the card
        df = pd.DataFrame([[name, round(v, 3)] for _, name, v in e.metrics], columns=["metric", "value"])
        figs = []
        if e.folder is not None:
            for f in sorted((e.folder / "figures").glob("*.png")) if (e.folder / "figures").is_dir() else []:
                figs.append((str(f), f.stem.replace("_", " ")))
        return body, df, figs, download

    def overview(self) -> pd.DataFrame:
        """Every variant: whether it is loaded here, its headline test numbers, what it is."""
        rows = []
        for v, c in VARIANTS.items():
            e = self.models.get(v)
            met = {k: val for k, _, val in e.metrics} if e else {}
            rows.append([v, "✓" if e else "✗ " + self.missing.get(v, "not loaded"), _r(met.get("test_loss")),
                         _r(met.get("test_kl")), c.description])
        return pd.DataFrame(rows, columns=["variant", "loaded", "test loss", "test KL", "what it is"])

    def status(self) -> dict:
        """Where the weights come from, which variants are loaded, missing (and why), and ready."""
        return {"source": self.source.kind,
                "location": self.source.location if self.source.kind == "hub" else self.source.shown(),
                "loaded": list(self.models),
                "missing": dict(self.missing), "ready": [n for n, e in self.models.items() if e.ready.is_set()],
                "startup_s": round(self.startup_s, 2),
                "prepared_s": None if self.prepared_s is None else round(self.prepared_s, 2)}

    # ------------------------------------------------------------------ footer
    def footer(self) -> str:
        n, total = len(self.models), len(VARIANTS)
        miss = f" Missing: {', '.join(f'`{m}`' for m in self.missing)}." if self.missing else ""
        return (f"Weights from {self.source.describe()}: {n} of {total} variants loaded in {self.startup_s:.1f} s.{miss}  \n"
                f"vae-hub {vae_hub.__version__} · test digits: {len(self.test.labels):,} from the MNIST test split "
                "(LeCun, Cortes, Burges; CC BY-SA 3.0)")


# ---------------------------------------------------------------------------- helpers
@dataclass
class Numbers:
    """One input through one model."""

    logits: torch.Tensor  # (1, 1, 28, 28) Bernoulli logits of the reconstruction at the posterior mean
    mean: np.ndarray
    sigma: np.ndarray
    recon_nll: float
    kl: float
    elbo: float
    percentile: float  # of the ELBO among the test digits'
    idx: np.ndarray  # nearest test digits, closest first
    dist: np.ndarray


def _pixels(x: Any) -> np.ndarray:
    """784 finite values in [0, 1] (a flat list, or 28 rows of 28) -> float32 (784,)."""
    try:
        arr = np.asarray(x, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        fail(f"x: expected 784 numbers in [0, 1] (a 28×28 image, row-major), got {brief(x)}.")
    if arr.size != 784:
        fail(f"x: expected 784 numbers in [0, 1] (a 28×28 image, row-major), got {arr.size}.")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        fail("x: every value must be a finite number in [0, 1].")
    return arr


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file and rename, so a concurrent reader never sees half a file.
    A cache that cannot be written (read-only disk) is skipped, not fatal."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        log.warning("could not write cache %s: %s", path, e)


def _short_reason(e: Exception) -> str:
    msg = str(e).split("\n")[0]
    return msg if len(msg) < 160 else msg[:157] + "…"


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(float(v), nd)


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    cos = (a @ b) / (a.norm() * b.norm()).clamp_min(1e-12)
    return torch.arccos(cos.clamp(-1, 1))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of two codes (White 2016): the angle and the norm both move smoothly.
    Exactly a at t=0 and b at t=1; linear when the codes are (anti)parallel or one is ~0."""
    omega = _angle(a, b)
    so = torch.sin(omega)
    if float(so) < 1e-6 or float(a.norm()) < 1e-6 or float(b.norm()) < 1e-6:
        return (1 - t)[:, None] * a + t[:, None] * b
    wa = torch.sin((1 - t) * omega) / so
    wb = torch.sin(t * omega) / so
    return wa[:, None] * a + wb[:, None] * b


def prior_sample(model: VAE, n: int, g: torch.Generator) -> torch.Tensor:
    """n codes from the prior with an explicit generator (thread-safe and reproducible)."""
    c = model.config
    parts = []
    if c.z_dim:
        eps = torch.randn(n, c.z_dim, generator=g)
        parts.append(eps @ model.prior_scale_tril.T if c.prior_cov is not None else eps)
    if c.n_cat:
        probs = torch.softmax(model.prior_logits, -1)  # (N_cat, K)
        idx = torch.stack([torch.multinomial(p, n, replacement=True, generator=g) for p in probs], 1)
        parts.append(torch.nn.functional.one_hot(idx, c.k_cat).float().flatten(1))
    return torch.cat(parts, 1)


BETA_COLS = (150, 96, 270, 456)  # label, reconstruction, KL bars, traversals (pixels)


def _beta_header() -> np.ndarray:
    titles = ("", "reconstruction", "KL per dimension, sorted (nats)", "3 most-used dimensions, swept −2.5 … 2.5")
    img, d = P.canvas(sum(BETA_COLS) + 3 * 12, 22)
    x = 0
    for w, t in zip(BETA_COLS, titles):
        d.text((x + w / 2, 4), t, font=P.font(13), fill=P.MUTED, anchor="mt")
        x += w + 12
    return np.asarray(img)


def _beta_row(beta: float, r: dict | None, vmax: float, missing: str = "") -> np.ndarray:
    """One β: its numbers, reconstruction, KL per dimension (one scale for all β) and traversals."""
    h = 3 * 58 + 6
    if r is None:
        return P.placeholder(f"β = {beta:g}: not available ({missing}).", (sum(BETA_COLS) + 36, 70))
    used = int((r["kl"] > 0.05).sum())
    label, d = P.canvas(BETA_COLS[0], h)
    d.text((8, h / 2 - 30), f"β = {beta:g}", font=P.font(22), fill=P.INK)
    d.text((8, h / 2 + 2), f"KL {r['kl_total']:.1f} nats", font=P.font(13), fill=P.MUTED)
    d.text((8, h / 2 + 20), f"{used} of {len(r['kl'])} dims used", font=P.font(13), fill=P.MUTED)
    rec, _ = P.canvas(BETA_COLS[1], h)
    rec.paste(Image.fromarray(P.upscale(r["recon"], 3)), (6, (h - 84) // 2))
    names = [f"z{i + 1}" for i in r["order"]]
    bars = P.kl_bars(r["kl"][r["order"]], names, width=BETA_COLS[2], height=h - 30, vmax=vmax)
    bars_c, _ = P.canvas(BETA_COLS[2], h)
    bars_c.paste(Image.fromarray(bars), (0, 15))
    trav, _ = P.frame_strip({f"z{i + 1}": r["trav"][j] for j, i in enumerate(r["top"])}, k=2, gap=2, label_w=46)
    trav_c, _ = P.canvas(BETA_COLS[3], h)
    trav_c.paste(Image.fromarray(trav), (0, (h - trav.shape[0]) // 2))
    return P.hstack([np.asarray(label), np.asarray(rec), np.asarray(bars_c), np.asarray(trav_c)], gap=12)


def _color_shape_change(imgs: torch.Tensor) -> tuple[float, float]:
    """How much a sweep (S, 3, 28, 28) changes the stroke colour and the digit's shape.

    Shape: the spread over the sweep of each frame's stroke intensity (max over channels, scaled to
    peak 1 so brightness does not count), over the pixels that are ink in some frame. Colour: the
    spread of the stroke's chromaticity (its intensity-weighted mean colour over its brightest channel)."""
    inten = imgs.amax(1)  # (S, 28, 28): the stroke whatever its colour
    norm = inten / inten.flatten(1).amax(1).clamp_min(1e-3)[:, None, None]
    ink = (norm > 0.3).any(0)
    shape = float(norm[:, ink].std(0).mean()) if ink.any() else 0.0
    w = inten**2  # weight bright stroke pixels, not the faint background
    rgb = (imgs * w[:, None]).sum((2, 3)) / w.sum((1, 2)).clamp_min(1e-6)[:, None]
    chroma = rgb / rgb.amax(1, keepdim=True).clamp_min(1e-3)
    col = float((chroma - chroma.mean(0)).norm(dim=1).mean())
    return col, shape


def _drop_section(markdown: str, heading: str) -> str:
    """The markdown without the section under ``heading`` (up to the next heading of the same level)."""
    head, sep, rest = markdown.partition(f"\n{heading}")
    if not sep:
        return markdown
    level = heading.split(" ", 1)[0] + " "
    nxt = rest.find(f"\n{level}")
    return head.rstrip() + ("\n\n" + rest[nxt + 1:] if nxt >= 0 else "")


def _strip_front_matter(card: str) -> str:
    if card.startswith("---"):
        parts = card.split("---", 2)
        if len(parts) == 3:
            return parts[2].strip()
    return card.strip()
