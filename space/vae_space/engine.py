"""The Space's state: where the weights come from, the loaded variants (and why any is missing), and the lookups
every tab uses. The tabs' handlers live in ``tabs/``; what each variant needs prepared (test-set encodings, latent
maps, the browser's graphs) is made in the background by ``prepare``.

``Engine.start()`` loads every variant once (through ``vae_hub.hub.repo.load_entry``, the one loading path), then
starts the preparation, so a request only encodes one image and draws a few shapes. A variant that cannot be
loaded is recorded in ``Engine.missing`` with the reason, and the features that need it show that reason.

Nothing here knows of requests: a lookup that cannot be answered raises ``errors.Unavailable`` with the words for
the user, and the handler layer answers with them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import vae_hub
from vae_hub.checks import brief
from vae_hub.hub import repo as hub
from vae_hub.model.variants import VARIANTS

from . import plots as P
from .entries import BETAS, MAP_MODEL, Entry, Factors, TestDigits, is_colour, is_encoder, morpho_metrics
from .errors import Unavailable
from .prepare import Preparation

log = logging.getLogger("vae_space")

N_FACTOR_DIGITS = 1000  # test digits measured for the factor correlations when metrics.json has none (ρ ± ~0.03)


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


class Engine:
    """The Space's state. Build with ``Engine.start()``."""

    def __init__(self, source: WeightSource, test: TestDigits):
        self.source = source
        self.test = test
        self.models: dict[str, Entry] = {}
        self.missing: dict[str, str] = {}
        self.startup_s = 0.0
        self.prep = Preparation(test)  # the variants' test codes, maps and graphs, made in the background
        self._cache: dict[Any, Any] = {}
        self._lock = threading.Lock()

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
        eng.prep.start(eng.models, background)
        return eng

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
                     morpho=morpho_metrics(got.folder))

    def warm(self, jobs: Iterable[Callable[[], Any]], skip: tuple[type[BaseException], ...] = ()) -> threading.Thread:
        """Build, in a background thread once every model is prepared, what is otherwise made on first use
        (``Preparation.warm``; ``skip``: the exceptions of a job that is a handler)."""
        return self.prep.warm(self.models, jobs, skip)

    def shutdown(self, timeout: float = 15.0) -> None:
        """Stop the background work and wait for its current step (``Preparation.shutdown``)."""
        self.prep.shutdown(self.models, timeout)

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
        """The loaded model ``name`` if the feature ``group`` can use it (prepared, unless ``ready`` is False);
        else ``Unavailable`` saying why."""
        usable = self.available(group)
        if name is None and not usable:
            raise Unavailable("No model for this is available here; the notes on the page (and /status) say why.")
        if not isinstance(name, str) or name not in VARIANTS:
            raise Unavailable(f"Unknown model {brief(name)}; choose one of: {', '.join(usable) or 'none loaded'}.")
        if name not in self.models:
            raise Unavailable(f"{name} is not available here: {self.missing.get(name, 'not loaded')}.")
        if name not in usable:
            raise Unavailable(f"{name} cannot be used here; choose one of: {', '.join(usable)}.")
        e = self.models[name]
        if ready:
            self.wait(e)
        return e

    def wait(self, e: Entry, timeout: float = 120.0) -> None:
        """Until e is prepared; ``Unavailable`` when that takes too long or failed."""
        if not e.ready.wait(timeout):
            raise Unavailable(f"{e.name} is still being prepared (encoding the test digits); try again in a few "
                              "seconds.")
        if e.error:
            raise Unavailable(f"{e.name}: {e.error}.")

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
        return self.prep.maps.get(name)

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

    # ------------------------------------------------------------------ what the page says of it
    def status(self) -> dict:
        """Where the weights come from, which variants are loaded, missing (and why), and ready."""
        seconds = self.prep.seconds
        return {"source": self.source.kind,
                "location": self.source.location if self.source.kind == "hub" else self.source.shown(),
                "loaded": list(self.models),
                "missing": dict(self.missing), "ready": [n for n, e in self.models.items() if e.ready.is_set()],
                "cache": self.prep.cache.status(),  # "ok", or why results are kept in memory only
                "startup_s": round(self.startup_s, 2),
                "prepared_s": None if seconds is None else round(seconds, 2)}

    def footer(self) -> str:
        n, total = len(self.models), len(VARIANTS)
        miss = f" Missing: {', '.join(f'`{m}`' for m in self.missing)}." if self.missing else ""
        return (f"Weights from {self.source.describe()}: {n} of {total} variants loaded in {self.startup_s:.1f} s.{miss}  \n"
                f"vae-hub {vae_hub.__version__} · test digits: {len(self.test.labels):,} from the MNIST test split "
                "(LeCun, Cortes, Burges; CC BY-SA 3.0)")


def _short_reason(e: Exception) -> str:
    msg = str(e).split("\n")[0]
    return msg if len(msg) < 160 else msg[:157] + "…"

