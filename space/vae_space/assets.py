"""The files the page downloads, served by the app itself at content-addressed URLs.

Every file a page fetches (the tabs' modules, onnxruntime-web, the ONNX graphs, the test digits, the codes and
the map pictures) is registered here and served at ``vh/<key>/<name>``, a URL relative to the page, where
``key`` is a hash of the content (of a whole group of files, for modules that import each other by relative URL):

- a URL never changes meaning, so it is answered with ``Cache-Control: public, max-age=31536000, immutable`` and
  an ETag (a conditional request gets 304 and no body): a repeat visit downloads nothing that has not changed;
- the page never sees a path of the server's file system, and nothing but a registered file can be asked for;
- compressible files travel compressed whatever the host puts in front: brotli or gzip, chosen by the request's
  ``Accept-Encoding`` and sent with our own ``Content-Encoding`` (Gradio's middleware compresses text types only).
  Brotli copies are made at quality 5 as soon as a file is registered (a fraction of a second for the 14 MB
  runtime) and at quality 11 afterwards in a low-priority background thread (about 30 s for the runtime, 15%
  smaller); both are kept on disk under the cache folder, named by content hash, so they are made once per
  installation. A cache that cannot be written keeps small copies in memory (bounded) and serves the rest
  uncompressed: slower, never broken.

Imports: the standard library, brotli, starlette (the server under Gradio); nothing of the app's state.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import logging
import mimetypes
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import brotli
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from vae_hub.files.tensors import write_atomic

log = logging.getLogger("vae_space")

PREFIX = "vh"
IMMUTABLE = "public, max-age=31536000, immutable"
COMPRESSIBLE = {".js", ".mjs", ".css", ".wasm", ".onnx", ".safetensors", ".json", ".html", ".svg"}
MIN_COMPRESS = 1024  # below this the headers cost more than compression saves
MEMORY_COPIES = 64 * 2**20  # compressed copies held in memory when the cache cannot be written
FAST, BEST = 5, 11  # brotli qualities: at registration, then in the background
MEDIA = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".css": "text/css",
         ".onnx": "application/octet-stream", ".safetensors": "application/octet-stream", ".png": "image/png",
         ".json": "application/json"}


@dataclass
class Asset:
    """One registered file: where its bytes are, what it is, and its compressed copies by encoding."""

    key: str
    name: str
    sha: str  # sha256 of the content
    size: int
    path: Path | None = None  # on disk, or
    data: bytes | None = None  # in memory
    encoded: dict[str, Path | bytes] = field(default_factory=dict)  # "br" / "gzip" -> the compressed copy
    quality: int = 0  # of the br copy

    @property
    def url(self) -> str:
        return f"{PREFIX}/{self.key}/{self.name}"

    @property
    def media_type(self) -> str:
        suffix = Path(self.name).suffix.lower()
        return MEDIA.get(suffix) or mimetypes.guess_type(self.name)[0] or "application/octet-stream"

    @property
    def compressible(self) -> bool:
        return Path(self.name).suffix.lower() in COMPRESSIBLE and self.size >= MIN_COMPRESS

    def read(self) -> bytes:
        return self.data if self.data is not None else self.path.read_bytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class AssetStore:
    """Registered files by (key, name); compressed copies made in the background and cached under ``cache``."""

    def __init__(self, cache: Path | None, background: bool = True):
        self.cache = cache
        self._assets: dict[tuple[str, str], Asset] = {}
        self._seen: dict[tuple, list[Asset]] = {}  # (paths, stats) -> the assets registered for them
        self._lock = threading.Lock()
        self._jobs: list[tuple[int, int, Asset]] = []  # (quality, order, asset): the fast pass first
        self._order = 0
        self._memory = 0
        self._wake = threading.Condition(self._lock)
        self._busy = False
        self._stop = False
        self.cache_error: str | None = None  # set when a compressed copy could not be written
        if background:
            threading.Thread(target=self._work, name="vae-space-compress", daemon=True).start()

    # ------------------------------------------------------------------ registration
    def file(self, path: str | Path, name: str | None = None) -> str:
        """Register one file; returns its URL (relative to the page). Re-registering an unchanged file is cheap."""
        path = Path(path)
        return self.group(path.parent, [path.name], names={path.name: name or path.name})[path.name]

    def group(self, root: str | Path, files: Iterable[str], names: dict[str, str] | None = None) -> dict[str, str]:
        """Register files under ``root`` that refer to each other by relative URL under one key (a hash of all of
        them); returns {file: url}. A changed file changes every URL of the group."""
        root = Path(root)
        files = list(files)
        stats = tuple((f, *_stat(root / f)) for f in files)
        with self._lock:
            done = self._seen.get((str(root), stats))
        if done is None:
            blobs = {f: (root / f).read_bytes() for f in files}
            key = _sha("".join(f"{f}:{_sha(b)}\n" for f, b in blobs.items()).encode())[:16]
            done = [Asset(key, (names or {}).get(f, f), _sha(b), len(b), path=root / f) for f, b in blobs.items()]
            self._add(done)
            with self._lock:
                self._seen[(str(root), stats)] = done
        return {f: a.url for f, a in zip(files, done)}

    def data(self, name: str, data: bytes) -> str:
        """Register bytes made in memory (small files derived from others)."""
        sha = _sha(data)
        with self._lock:
            found = self._assets.get((sha[:16], name))
        if found is None:
            self._add([Asset(sha[:16], name, sha, len(data), data=data)])
        return f"{PREFIX}/{sha[:16]}/{name}"

    def _add(self, assets: list[Asset]) -> None:
        with self._lock:
            for a in assets:
                self._assets[(a.key, a.name)] = a
                if a.compressible:
                    for q in (FAST, BEST):
                        self._order += 1
                        heapq.heappush(self._jobs, (q, self._order, a))
            self._wake.notify()

    def get(self, key: str, name: str) -> Asset | None:
        with self._lock:
            return self._assets.get((key, name))

    def pending(self) -> int:
        """Compressed copies still to be made (0: every registered file is at its best)."""
        with self._lock:
            return len(self._jobs) + self._busy

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify_all()

    # ------------------------------------------------------------------ compression
    def _cached_path(self, a: Asset, enc: str) -> Path | None:
        return self.cache / f"{a.sha[:32]}.{enc}" if self.cache else None

    def _from_disk(self, a: Asset) -> bool:
        """Use the quality-11 copy an earlier run cached, once it decompresses to exactly this content."""
        p = self._cached_path(a, "br")
        try:
            if p is None or not p.is_file() or _sha(brotli.decompress(p.read_bytes())) != a.sha:
                return False
        except Exception:  # unreadable or damaged: made again (and the damaged copy replaced)
            return False
        self._swap(a, "br", p)
        return True

    def _work(self) -> None:
        try:  # this thread only: compression must never slow the requests down (Linux: per-thread niceness)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass
        while True:
            with self._lock:
                while not self._jobs and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                quality, _, a = heapq.heappop(self._jobs)
                if a.quality >= quality:
                    continue
                self._busy = True
            try:
                self._compress(a, quality)
            except Exception as e:  # a file gone or unreadable: it is served uncompressed
                log.warning("could not compress %s: %s", a.name, type(e).__name__)
            finally:
                with self._lock:
                    self._busy = False

    def _compress(self, a: Asset, quality: int) -> None:
        t0 = time.perf_counter()
        if quality == BEST and self._from_disk(a):
            a.quality = BEST
            return
        data = a.read()
        if _sha(data) != a.sha:  # changed on disk since it was registered: its new version gets a new URL
            return
        out = brotli.compress(data, quality=quality, lgwin=24 if quality == BEST else 22)
        self._keep(a, "br", out, durable=quality == BEST)
        a.quality = quality
        if quality == BEST and a.size > 2**20:
            log.info("compressed %s: %.1f -> %.1f MiB in %.1f s", a.name, a.size / 2**20, len(out) / 2**20,
                     time.perf_counter() - t0)

    def _keep(self, a: Asset, enc: str, out: bytes, durable: bool) -> None:
        """Store a compressed copy on disk (durable ones) or in memory (fast ones, and when the disk refuses)."""
        if durable and self.cache is not None:
            path = self._cached_path(a, enc)
            try:
                write_atomic(path, out)
                self._swap(a, enc, path)
                return
            except Exception as e:  # read-only or full disk: memory, within a bound
                if self.cache_error is None:
                    log.warning("compressed copies are not cached on disk (%s); keeping them in memory",
                                type(e).__name__)
                self.cache_error = type(e).__name__
        old = a.encoded.get(enc)
        grow = len(out) - (len(old) if isinstance(old, bytes) else 0)
        with self._lock:
            if self._memory + grow > MEMORY_COPIES:
                return
            self._memory += grow
        self._swap(a, enc, out)

    def _swap(self, a: Asset, enc: str, copy: Path | bytes) -> None:
        old = a.encoded.get(enc)
        a.encoded[enc] = copy
        if isinstance(old, bytes) and not isinstance(copy, bytes):
            with self._lock:
                self._memory -= len(old)

    def _gzip(self, a: Asset) -> bytes | Path | None:
        """A gzip copy for a client without brotli, made on its first request (level 6: fast) and kept."""
        if "gzip" not in a.encoded:
            self._keep(a, "gzip", gzip.compress(a.read(), 6, mtime=0), durable=True)
        return a.encoded.get("gzip")

    # ------------------------------------------------------------------ serving
    async def respond(self, request: Request) -> Response:
        key, name = request.path_params["key"], request.path_params["name"]
        a = self.get(key, name)
        if a is None:
            return PlainTextResponse("Not found: this file is not served here (it may belong to an older version "
                                     "of the page; reload it).", status_code=404, headers={"Cache-Control": "no-store"})
        etag = f'W/"{a.sha[:32]}"'  # weak: one validator for every encoding of the same content
        headers = {"Cache-Control": IMMUTABLE, "ETag": etag, "Vary": "Accept-Encoding"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        copy, enc = None, None
        if a.compressible:
            accepted = _accepted(request.headers.get("accept-encoding", ""))
            if "br" in accepted and "br" in a.encoded:
                copy, enc = a.encoded["br"], "br"
            elif "gzip" in accepted:
                copy, enc = await run_in_threadpool(self._gzip, a), "gzip"
        if copy is not None and enc is not None:
            headers["Content-Encoding"] = enc
        else:
            copy = a.path if a.path is not None else a.data
        if isinstance(copy, Path):
            return FileResponse(copy, media_type=a.media_type, headers=headers)
        return Response(copy, media_type=a.media_type, headers=headers)

    def route(self) -> Route:
        return Route(f"/{PREFIX}/{{key}}/{{name:path}}", self.respond, methods=["GET", "HEAD"], name="vae_hub_assets")


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def chosen_encoding(accept: str) -> str | None:
    """The coding a body made on the fly travels in: brotli, else gzip, as an Accept-Encoding header allows; None
    for neither."""
    accepted = _accepted(accept)
    return "br" if "br" in accepted else "gzip" if "gzip" in accepted else None


def compress(data: bytes, enc: str, level: int = 5) -> bytes:
    """A body made on the fly (a page, an answer), compressed fast: brotli at quality ``level``, gzip at level + 1."""
    return brotli.compress(data, quality=level) if enc == "br" else gzip.compress(data, level + 1)


def _accepted(header: str) -> set[str]:
    """The codings an Accept-Encoding header allows (those not given q=0)."""
    out = set()
    for part in header.lower().split(","):
        coding, _, params = part.strip().partition(";")
        q = params.strip()
        if q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        if coding:
            out.add(coding.strip())
    return out
