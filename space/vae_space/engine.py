"""The Space's state: where the weights come from, the loaded variants, their cached test-set encodings
and latent maps, and the lookups every tab uses. The tabs' handlers live in ``tabs/``.

``Engine.start()`` loads every variant once (through ``vae_hub.hub.repo.load_entry``, the one loading path); a
background thread then encodes the bundled test-digit sample with each model and renders the
latent-map backgrounds (cached on disk), so a request only encodes one image and draws a few shapes.
A variant that cannot be loaded is recorded in ``Engine.missing`` with the reason, and the features
that need it show that reason.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import safetensors.torch
import torch

import vae_hub
from vae_hub.checks import brief, read_json
from vae_hub.data.mnist import cache_dir, color_table, split_seed
from vae_hub.hub.onnx import DECODER_FILE, ENCODER_FILE, export_onnx, weights_sha256
from vae_hub.hub import repo as hub
from vae_hub.model.config import VAEConfig
from vae_hub.model.vae import VAE
from vae_hub.model.variants import VARIANTS

from . import plots as P
from .diskcache import DiskCache, codes_problem, onnx_problem
from .handler import fail

log = logging.getLogger("vae_space")

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TEST_DIGITS = ASSETS / "test_digits.safetensors"
BETAS = ["beta-vae-b0.5", "beta-vae-b1", "beta-vae-b2", "beta-vae-b4", "beta-vae-b8"]
COLOR_MODELS = ["color-vae", "color-gumbel", "color-joint"]
MAP_MODEL = "vae-z2"
N_FACTOR_DIGITS = 1000  # test digits measured for the factor correlations when metrics.json has none (ρ ± ~0.03)
CACHE_VERSION = 1  # bump when what is cached (encodings, map pictures) is computed differently


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
class Factors:
    """How each latent dimension of a model tracks the measured handwriting factors (``vae_hub.evaluation.morpho``)."""

    corr: np.ndarray  # (d, K) Pearson ρ of the test digits' posterior means with each factor
    names: list[str]  # the K factors
    source: str  # where ρ comes from, said under the heat map

    def labels(self, min_abs: float = 0.3) -> list[tuple[str | None, float]]:
        """Each dimension's dominant factor and its signed ρ (no name below ``min_abs``)."""
        from vae_hub.evaluation.disentangle import dominant_factor

        return dominant_factor(self.corr, self.names, min_abs)


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
    morpho: Factors | None = None  # from metrics.json (morpho_correlation), when the evaluation stored it

    @property
    def config(self) -> VAEConfig:
        return self.model.config


def is_encoder(c: VAEConfig) -> bool:
    """Models a drawing can go into: grayscale, Gaussian latent, no label needed."""
    return c.data != "color" and c.latent == "gaussian" and not c.conditional


def is_conditional_generator(c: VAEConfig) -> bool:
    """The class-conditional model: grayscale, Gaussian latent, a label into its decoder (the page samples it)."""
    return c.data != "color" and c.latent == "gaussian" and c.conditional


def is_colour(c: VAEConfig) -> bool:
    """The coloured-MNIST models (continuous, categorical or joint codes): the page sweeps their codes."""
    return c.data == "color"


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

    def colours(self, i: np.ndarray | list[int], seed: int) -> torch.Tensor:
        """(len(i), 3) the stroke colours the colour models' test split gave these digits (by MNIST test index)."""
        table = color_table(10000, split_seed(seed, "test"))
        return table[torch.from_numpy(self.index[np.asarray(i)])]

    def colored(self, i: np.ndarray | list[int], seed: int) -> torch.Tensor:
        """The digits as the colour models saw the test split: strokes times a per-index colour."""
        return self.x[np.asarray(i)] * self.colours(i, seed)[:, :, None, None]


class Engine:
    """The Space's state. Build with ``Engine.start()``."""

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
        self.cache = DiskCache()  # best effort: a cache that cannot be written costs a log line, not a feature
        self.stopping = threading.Event()  # set by shutdown(): background work stops between steps
        self._threads: list[threading.Thread] = []

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
            eng._background(eng._prepare_all, "vae-space-prepare")
        else:
            eng._prepare_all()
        return eng

    def _prepare_all(self) -> None:
        t0 = time.perf_counter()
        first = [MAP_MODEL, "vae-z20", "vae-z2-corr", "vae-z3", *BETAS]
        order = [n for n in first if n in self.models] + [n for n in self.models if n not in first]
        for name in order:
            if self.stopping.is_set():
                break
            e = self.models[name]
            try:
                if is_encoder(e.config):
                    self._encode_test(e)
                    if name in ("vae-z2", "vae-z2-corr"):
                        self.maps[name] = self._latent_map(e)
                    self._export_onnx(e)
                elif is_conditional_generator(e.config) or is_colour(e.config):
                    # the page draws their digits (cvae) or sweeps their codes (colour): graphs, no test codes
                    self._export_onnx(e, needs_codes=False)
            except Exception as ex:  # the reason goes to the log: users see no server path or errno
                e.error = f"could not encode the test digits ({type(ex).__name__})"
                log.exception("preparing %s failed", name)
            finally:
                e.ready.set()
        if self.stopping.is_set():
            return
        self.prepared_s = time.perf_counter() - t0
        log.info("test-set encodings and maps ready in %.1f s", self.prepared_s)

    def _load(self, variant: str) -> Entry:
        t0 = time.perf_counter()
        ref = self.source.ref(variant)
        if self.source.kind != "hub":
            folder = Path(ref)
            if not folder.is_dir():
                raise FileNotFoundError(f"no folder {variant}/ in {self.source.shown()}")
            if not (folder / "README.md").is_file():  # train.py writes the card last: no card, not finished
                raise FileNotFoundError(f"{variant}/ has no model card yet (still training?)")
        got = hub.load_entry(ref)  # one download and one config parse: model, folder, card and card metrics
        if got.model.config.variant != variant:  # a folder (or repo) named for one variant holding another
            raise ValueError(f"{variant}/ holds {got.model.config.variant} (its config.json says so): not served "
                             f"under the name {variant}")
        return Entry(variant, got.model, got.folder, got.card, got.metrics, time.perf_counter() - t0,
                     morpho=_morpho_metrics(got.folder))

    def _fingerprint(self, e: Entry) -> str:
        """Identifies what a cached result depends on: the weights, the test sample, the code version."""
        if not hasattr(self, "_asset_hash"):
            self._asset_hash = hashlib.sha256(TEST_DIGITS.read_bytes()).hexdigest()
        h = hashlib.sha256(f"{CACHE_VERSION}:{self._asset_hash}:{e.name}".encode())
        for k, v in e.model.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().contiguous().cpu().numpy().tobytes())
        return h.hexdigest()[:20]

    def _export_onnx(self, e: Entry, needs_codes: bool = True) -> None:
        """The graphs the browser runs (encoder.onnx, decoder.onnx), exported once per set of weights and
        cached on disk beside the test codes: the bundled folders carry no ONNX copies (size budget). Weights are
        stored as float16 in the graphs (half the download; exact for the float16-stored weights we ship).
        Cached graphs are served only once they load and name this variant and these weights (else exported
        again); the browser gets a model only when its graphs and test codes are on disk."""
        folder, ok = self._cache_path(e, "-onnx16"), False
        try:
            if hub.has_onnx(folder):
                problem = onnx_problem(folder, e.name, weights_sha256(e.model))
                if problem:
                    log.warning("%s: cached ONNX graphs refused (%s); exporting again", e.name, problem)
                ok = problem is None
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
        """Posterior means and ELBOs of the test sample, computed once per set of weights and cached on disk
        (a cached file of the wrong shape or with non-finite values is computed again)."""
        path = self.codes_path(e)
        mu = elbo = None
        if path.is_file():
            try:
                t = safetensors.torch.load_file(str(path))
                mu, elbo = t["mu"], t["elbo"]
                problem = (codes_problem(mu.float().numpy(), elbo.numpy(), len(self.test.x), e.config.z_dim)
                           or ("" if mu.dtype == torch.float16 else f"means stored as {mu.dtype}, not float16"))
            except Exception as ex:  # a damaged file
                problem = f"unreadable ({type(ex).__name__})"
            if problem:
                log.warning("%s: cached test codes refused (%s); encoding again", e.name, problem)
                mu = elbo = None
        if mu is None:
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
            mu, elbo = torch.cat(mus).half().contiguous(), torch.cat(elbos).contiguous()
            self.cache.write(path, lambda tmp: safetensors.torch.save_file({"mu": mu, "elbo": elbo}, str(tmp)))
        e.mu = mu.float().numpy()
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
            self.cache.write(path, m.save_png)
            return m

    def warm(self, jobs: Iterable[Callable[[], Any]]) -> threading.Thread:
        """Build, in a background thread once every model is prepared, what is otherwise made on first use
        (the tabs pass their cached pictures): the first request does not pay for it."""

        def run() -> None:
            for e in list(self.models.values()):
                e.ready.wait(600)
            t0 = time.perf_counter()
            for job in jobs:
                if self.stopping.is_set():
                    return
                try:
                    job()
                except gr.Error:
                    pass  # a missing model: its feature says so when asked
                except Exception:
                    log.exception("warm-up step failed")
            log.info("warm-up done in %.1f s", time.perf_counter() - t0)

        return self._background(run, "vae-space-warm")

    def _background(self, target: Callable[[], None], name: str) -> threading.Thread:
        t = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(t)
        t.start()
        return t

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop the background work and wait for its current step: a daemon thread still inside torch or
        writing a log line while the interpreter exits can abort the process instead of a clean exit."""
        self.stopping.set()
        for e in self.models.values():
            e.ready.set()  # the warm-up waits on these
        for t in self._threads:
            t.join(timeout)

    # ------------------------------------------------------------------ lookups
    def available(self, group: str) -> list[str]:
        """Loaded variants usable by a feature: encoder, map2d, beta, color, any."""
        ok = {
            "encoder": lambda c: is_encoder(c),
            "map2d": lambda c: is_encoder(c) and c.z_dim == 2,
            "beta": lambda c: c.variant in BETAS,
            "color": is_colour,
            "any": lambda c: True,
        }[group]
        return [n for n, e in self.models.items() if ok(e.config)]

    def default_encoder(self) -> str | None:
        """The model a drawing goes to first: the classic vae-z20, else the 2-D model, else any encoder."""
        encoders = self.available("encoder")
        return next((m for m in ("vae-z20", MAP_MODEL) if m in encoders), encoders[0] if encoders else None)

    def need(self, name: Any, group: str = "any", ready: bool = True) -> Entry:
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
            self.wait(e)
        return e

    def wait(self, e: Entry, timeout: float = 120.0) -> None:
        if not e.ready.wait(timeout):
            fail(f"{e.name} is still being prepared (encoding the test digits); try again in a few seconds.")
        if e.error:
            fail(f"{e.name}: {e.error}.")

    def factors(self, e: Entry) -> Factors | None:
        """e's correlations with the handwriting factors: from its metrics.json when there, else measured
        once on the first N_FACTOR_DIGITS of the Space's test digits; None for a non-Gaussian code or when
        measuring fails (the features then show no labels)."""
        if e.morpho is not None:
            return e.morpho
        if not is_encoder(e.config):
            return None
        self.wait(e)
        return self.cached(("factors", e.name), lambda: self._measure_factors(e))

    def _measure_factors(self, e: Entry) -> Factors | None:
        try:
            from vae_hub.evaluation import morpho
            from vae_hub.evaluation.disentangle import correlation_matrix

            n = min(N_FACTOR_DIGITS, len(self.test.labels))
            # split_factors caches the measures on disk, keyed by the pixels: measured once per installation
            f = self.cached("test-factors", lambda: morpho.split_factors(self.test.images[:n]))
            corr = correlation_matrix(e.mu[:n], f)
        except Exception:
            log.exception("measuring the handwriting factors for %s failed", e.name)
            return None
        return Factors(corr, list(morpho.FACTORS), f"ρ on {n:,} of the Space's test digits")

    def latent_map(self, name: str) -> P.LatentMap | None:
        """A 2-D model's latent map, once it is drawn; None when the model is not available."""
        e = self.models.get(name)
        if e is None:
            return None
        self.wait(e)
        return self.maps.get(name)

    def unavailable_note(self, names: list[str], feature: str) -> str:
        gone = [n for n in names if n not in self.models]
        if not gone:
            return ""
        why = "; ".join(f"`{n}`: {self.missing.get(n, 'not loaded')}" for n in gone)
        return f"⚠️ {feature} without {', '.join(f'`{n}`' for n in gone)} — {why}."

    def cached(self, key: Any, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = build()
        with self._lock:
            return self._cache.setdefault(key, value)

    def status(self) -> dict:
        """Where the weights come from, which variants are loaded, missing (and why), and ready."""
        return {"source": self.source.kind,
                "location": self.source.location if self.source.kind == "hub" else self.source.shown(),
                "loaded": list(self.models),
                "missing": dict(self.missing), "ready": [n for n, e in self.models.items() if e.ready.is_set()],
                "cache": self.cache.status(),  # "ok", or why results are kept in memory only
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
def _morpho_metrics(folder: Path | None) -> Factors | None:
    """The factor correlations the evaluation stored in metrics.json (morpho_correlation, morpho_factors)."""
    try:
        m = read_json(folder / "metrics.json") if folder else {}
        corr = np.asarray(m["morpho_correlation"], np.float64)
        names = [str(n) for n in m.get("morpho_factors") or ()]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if corr.ndim != 2 or corr.shape[1] != len(names) or not np.isfinite(corr).all():
        log.warning("%s: morpho_correlation %s does not match morpho_factors %s; ignored", folder, corr.shape, names)
        return None
    return Factors(corr, names, "ρ on the test split (metrics.json)")


def _short_reason(e: Exception) -> str:
    msg = str(e).split("\n")[0]
    return msg if len(msg) < 160 else msg[:157] + "…"

