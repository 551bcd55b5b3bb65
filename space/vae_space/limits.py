"""Limits that keep one visitor from shutting out the rest, and requests Gradio would answer with a traceback.

- **Server functions** (``gr.HTML(server_functions=...)``, served at ``/gradio_api/component_server``) bypass
  the queue and its lanes. Each one built by :func:`server_function` gets its own slot count: a call waits for
  a slot in the event loop (holding no thread) for at most ``SERVER_WAIT_S``, then answers
  ``{"error": "busy, try again"}``; it runs on a small pool of our own (never Gradio's shared threads), its
  input is bounded before use (``input_problem``), every exception becomes ``{"error": short message}`` and
  one log line, and the answer is serialised there too (orjson: NaN becomes null), so a large answer costs
  the event loop nothing.
- **The queue** (:func:`bound_queue`): one client may have at most ``MAX_PER_SESSION`` calls waiting or
  running per session, and ``MAX_PER_IP`` per IP address; more are refused at once with HTTP 429 and a
  short message, so one client cannot fill the queue (``max_size``) for everybody. The IP is the first
  address of ``X-Forwarded-For`` when the app runs behind a proxy it trusts (a Hugging Face Space, where
  ``SPACE_ID`` is set, or ``VAE_SPACE_TRUST_PROXY=1``): HF's proxy puts the visitor's address there.
  Anywhere else that header could be forged by the client, so the connection's own address is used.
- **Requests** (:data:`MIDDLEWARE`, passed to ``launch(app_kwargs=...)``): a component-server call (or the app
  page's ``vh-call/<name>``) for a component that is not on the page, or with a body over ``MAX_BODY_BYTES``,
  gets a short JSON answer instead of HTTP 500 and a traceback; ``/queue/data`` for an unknown session gets Gradio's own "session
  not found" message in one log line instead of a 76-line traceback; an upload must be one of the image
  types the endpoints read (``UPLOAD_FORMATS``) and at most ``MAX_UPLOAD_BYTES``, and is deleted a few
  seconds after the call that used it has answered (``Uploads``), or ``UNUSED_S`` after upload if no call
  uses it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import gradio as gr
import numpy as np
import orjson
from fastapi import HTTPException
from starlette.middleware import Middleware
from starlette.responses import Response

from .errors import Unavailable
from .guard import MAX_TEXT, brief, files_in, shorten

log = logging.getLogger("vae_space")

SERVER_WAIT_S = 2.0  # how long a server-function call waits for a slot before answering "busy"
BUSY = "busy, try again"
MAX_ITEMS = 4096  # numbers (list items) one server-function call may carry: decode_points sends 625 × 3
MAX_KEYS = 16
MAX_DEPTH = 4
MAX_BODY_BYTES = 256 * 1024  # a component-server request body: decode_points' 1,875 numbers are ~40 kB
MAX_PER_SESSION = int(os.environ.get("VAE_SPACE_MAX_PER_SESSION", 8))  # calls waiting or running, per session
MAX_PER_IP = int(os.environ.get("VAE_SPACE_MAX_PER_IP", 24))  # ... and per IP address
MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # a 400×400 drawing is ~20 kB, a 1600-pixel scan a few hundred kB
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")  # what PIL reads for the pads and /encode

_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="vae-server-fn")


def trust_proxy() -> bool:
    """Whether X-Forwarded-For names the client: only behind a proxy that sets it (a Space's)."""
    flag = os.environ.get("VAE_SPACE_TRUST_PROXY")
    return flag == "1" if flag in ("0", "1") else bool(os.environ.get("SPACE_ID"))


def client_ip(request: Any) -> str:
    """The client's address: X-Forwarded-For's first hop behind a trusted proxy, else the peer's."""
    if trust_proxy():
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return getattr(getattr(request, "client", None), "host", None) or "unknown"


# ---------------------------------------------------------------------------- server functions
def input_problem(data: Any) -> str | None:
    """Why a server function's input is refused before use (too many items or keys, long text, deep nesting)."""
    items = 0

    def walk(v: Any, depth: int) -> str | None:
        nonlocal items
        if depth > MAX_DEPTH:
            return "the input is nested too deeply."
        if isinstance(v, str):
            return f"a text input is {len(v):,} characters long; the most any input takes is {MAX_TEXT}." \
                if len(v) > MAX_TEXT else None
        if isinstance(v, dict):
            if len(v) > MAX_KEYS:
                return f"the input has {len(v)} fields; the most any call takes is {MAX_KEYS}."
            return next((p for x in v.values() if (p := walk(x, depth + 1))), None)
        if isinstance(v, list):
            items += len(v)
            if items > MAX_ITEMS:
                return f"the input holds over {MAX_ITEMS:,} values; the most any call takes is {MAX_ITEMS:,}."
            return next((p for x in v if isinstance(x, (str, dict, list)) and (p := walk(x, depth + 1))), None)
        return None

    return walk(data, 0)


def json_response(value: Any) -> Response:
    """A JSON answer serialised here (in the caller's thread), not by FastAPI in the event loop; NaN -> null."""
    if isinstance(value, Response):
        return value
    return Response(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


_DECIMALS = np.array([f"{i / 1000:g},".ljust(6).encode() for i in range(1001)], dtype="S6")


def pixels_response(key: str, values: Any) -> Response:
    """``{key: [values]}`` for intensities in [0, 1], at 3 decimals (finer than a screen's 1/255), written through
    a lookup table (JSON allows the padding spaces): 625 decoded images in a few ms, mostly outside the GIL,
    where a JSON encoder holds it ~20 ms and stalls the event loop for that long."""
    q = np.rint(np.clip(np.nan_to_num(np.asarray(values, np.float32).ravel()), 0, 1) * 1000).astype(np.intp)
    raw = _DECIMALS.take(q).tobytes()
    body = b"{" + orjson.dumps(key) + b":[" + raw[:-6] + raw[-6:].replace(b",", b" ") + b"]}"
    return Response(body, media_type="application/json")


class _Slots:
    """At most ``n`` calls at once, awaited in the event loop: a waiting call holds no thread."""

    def __init__(self, n: int):
        self.n = n
        self._per_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._per_loop.get(loop)
        if sem is None:
            sem = self._per_loop[loop] = asyncio.Semaphore(self.n)
        return sem


def server_function(name: str, fn: Callable[[Any], Any], slots: int = 1, wait: float | None = None,
                    duty: float = 1.0) -> Callable:
    """``fn(data)`` as a gr.HTML server function named ``name``: at most ``slots`` calls at once (a call that
    waits ``wait`` seconds, default SERVER_WAIT_S, for one answers "busy"), its input bounded, its failures
    answered briefly.
    ``duty`` < 1: a slot computes at most that share of the time (after a call of t seconds it rests
    t·(1/duty − 1) before the next call takes it), so a flood of heavy calls leaves CPU to the queue."""
    gate = _Slots(slots)
    wait = SERVER_WAIT_S if wait is None else wait

    def answer(out: Any) -> Response:
        try:
            return json_response(out)
        except TypeError as e:  # not serialisable: a bug
            log.warning("server function %s: answer not JSON (%s)", name, e)
            return json_response({"error": f"{name} could not answer that call."})

    def failed(e: Exception, data: Any) -> dict:
        if isinstance(e, gr.Error | Unavailable):  # a handler's refusal, or the engine's (a missing model): its words
            return {"error": shorten(str(getattr(e, "message", e)), [data])}
        # a bug or an input we did not foresee: one log line, a short answer
        log.warning("server function %s failed: %s: %s", name, type(e).__name__, shorten(str(e), [data]))
        return {"error": f"{name} could not answer that call ({type(e).__name__})."}

    def run(data: Any) -> Response:
        try:
            out = fn(data)
        except Exception as e:
            out = failed(e, data)
        return answer(out)

    async def call(data: Any = None) -> Response:
        problem = input_problem(data)
        if problem:
            return json_response({"error": f"{name}: {problem}"})
        sem = gate.semaphore()
        try:
            await asyncio.wait_for(sem.acquire(), wait)
        except (asyncio.TimeoutError, TimeoutError):
            return json_response({"error": BUSY})
        loop, t0 = asyncio.get_running_loop(), time.perf_counter()
        try:
            if not inspect.iscoroutinefunction(fn):
                return await loop.run_in_executor(_POOL, run, data)
            try:
                out = await fn(data)
            except Exception as e:
                out = failed(e, data)
            return await loop.run_in_executor(_POOL, answer, out)
        finally:
            rest = (time.perf_counter() - t0) * (1 / duty - 1) if duty < 1 else 0.0
            loop.call_later(rest, sem.release) if rest > 0 else sem.release()

    call.__name__ = name  # the page calls it by this name: server.<name>(...)
    call.slots = slots
    return call


# ---------------------------------------------------------------------------- the queue
_refused_logged: dict[str, float] = {}


def bound_queue(queue: Any, per_session: int | None = None, per_ip: int | None = None) -> None:
    """Refuse (HTTP 429) a call from a client that already has ``per_session`` calls waiting or running in its
    session, or ``per_ip`` from its IP address; register the uploads a call uses (``UPLOADS``).
    Wraps Gradio's ``Queue.push``, where every /queue/join and /call request enters the queue."""
    if getattr(queue.push, "bounded", False):
        return
    push = queue.push

    async def bounded_push(body: Any, request: Any, username: Any):
        ip, session = client_ip(request), body.session_hash
        lim_s, lim_ip = per_session or MAX_PER_SESSION, per_ip or MAX_PER_IP
        n_s = n_ip = 0
        for ev in list(queue.event_ids_to_events.values()):
            n_s += session is not None and ev.session_hash == session
            n_ip += getattr(ev, "request", None) is not None and client_ip(ev.request) == ip
        if n_s >= lim_s or n_ip >= lim_ip:
            n, who = (n_s, "in this session") if n_s >= lim_s else (n_ip, "from your address")
            now = time.monotonic()
            if now - _refused_logged.get(ip, -math.inf) > 60:  # one line per client and minute, not per call
                if len(_refused_logged) > 10_000:
                    _refused_logged.clear()
                _refused_logged[ip] = now
                log.info("refused calls from a client with %d waiting (%s; more refusals this minute not logged)",
                         n, who)
            raise HTTPException(429, detail=f"You already have {n} calls waiting {who}; try again when they "
                                            "have answered.", headers={"Retry-After": "2"})
        paths = _upload_paths(getattr(body, "data", None))
        UPLOADS.acquire(paths)
        try:
            ok = await push(body, request, username)
        except BaseException:
            UPLOADS.release(paths)
            raise
        if not ok[0]:
            UPLOADS.release(paths)
        return ok

    bounded_push.bounded = True
    queue.push = bounded_push


def _upload_paths(data: Any) -> list[str]:
    return [f["path"] for f in files_in(data if isinstance(data, list) else [data])]


# ---------------------------------------------------------------------------- uploads
class Uploads:
    """The files visitors uploaded: deleted ``GRACE_S`` after the last call using them has answered, or
    ``UNUSED_S`` after upload when no call uses them (``STALE_S`` at the latest). A call holds its files from
    joining the queue until it answers; the grace covers the moment between an upload and its call."""

    GRACE_S = 5.0
    UNUSED_S = 120.0
    STALE_S = 900.0
    SWEEP_S = 1.0

    def __init__(self, sweeper: bool = True) -> None:
        self._files: dict[str, list] = {}  # path -> [calls holding it, last touched, answered]
        self._lock = threading.Lock()
        self._sweeper = sweeper  # a thread that sweeps every SWEEP_S, started with the first upload
        self._thread: threading.Thread | None = None

    def added(self, paths: Iterable[str]) -> None:
        now = time.monotonic()
        with self._lock:
            for p in paths:
                held = self._files.get(p)
                self._files[p] = [held[0] if held else 0, now, False]
            if self._sweeper and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vae-uploads", daemon=True)
                self._thread.start()

    def acquire(self, paths: Iterable[str]) -> None:
        with self._lock:
            for p in paths:
                if p in self._files:
                    self._files[p][0] += 1
                    self._files[p][1] = time.monotonic()

    def release(self, paths: Iterable[str]) -> None:
        with self._lock:
            for p in paths:
                if p in self._files:
                    f = self._files[p]
                    f[0], f[1], f[2] = max(0, f[0] - 1), time.monotonic(), True

    def sweep(self, now: float | None = None) -> int:
        """Delete what is due; returns how many files went."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [p for p, (held, touched, answered) in self._files.items()
                   if now - touched > self.STALE_S
                   or (not held and now - touched > (self.GRACE_S if answered else self.UNUSED_S))]
            for p in due:
                del self._files[p]
        for p in due:
            _remove(Path(p))
        return len(due)

    def __contains__(self, path: str) -> bool:
        return path in self._files

    def _run(self) -> None:
        while True:
            time.sleep(self.SWEEP_S)
            try:
                self.sweep()
            except Exception:  # never let the sweeper die
                log.exception("upload sweep failed")


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
        path.parent.rmdir()  # Gradio keeps each upload in a folder of its own (named by its hash)
    except OSError:
        pass


UPLOADS = Uploads()


def _image_format(path: str) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as img:  # reads the header only
            return img.format
    except Exception:
        return None


# ---------------------------------------------------------------------------- the middleware
class Limits:
    """ASGI middleware: the request-level limits of the module docstring."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope.get("path", "").rstrip("/"), scope.get("method")
        if method == "POST" and (path.endswith("/gradio_api/component_server") or path.startswith("/vh-call/")):
            return await self._component_server(scope, receive, send)
        if method == "GET" and path.endswith("/gradio_api/queue/data"):
            return await self._queue_data(scope, receive, send)
        if method == "POST" and path.endswith("/gradio_api/upload"):
            return await self._upload(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _component_server(self, scope: dict, receive: Callable, send: Callable) -> None:
        length = _content_length(scope)
        if length is not None and length > MAX_BODY_BYTES:
            return await _send_json(send, 413, {"error": f"request too large ({length:,} bytes; the most is "
                                                         f"{MAX_BODY_BYTES:,})"})
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _bounded(receive, MAX_BODY_BYTES), tracked)
        except Exception as e:
            if started:
                raise
            if isinstance(e, _TooLarge):
                code, msg = 413, f"request too large (the most is {MAX_BODY_BYTES:,} bytes)"
            elif isinstance(e, (KeyError, IndexError)):
                code, msg = 404, "no such component on this page"
            else:
                code, msg = 400, f"could not answer that call ({type(e).__name__})"
            log.info("component_server: %s (%s: %s)", msg, type(e).__name__, brief(str(e)))
            await _send_json(send, code, {"error": msg})

    async def _queue_data(self, scope: dict, receive: Callable, send: Callable) -> None:
        session = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash", [None])[0]
        get_blocks = getattr(scope.get("app"), "get_blocks", None)
        queue = getattr(get_blocks(), "_queue", None) if get_blocks else None
        if session is None or queue is None or session in queue.pending_messages_per_session:
            return await self.app(scope, receive, send)
        # what Gradio itself sends for an unknown session, without the traceback it then logs
        log.info("queue/data: no such session %s; refused", brief(session))
        body = {"msg": "unexpected_error", "event_id": None, "message": "404: Session not found.",
                "session_not_found": True, "success": False}
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body", "body": f"data: {json.dumps(body)}\n\n".encode()})

    async def _upload(self, scope: dict, receive: Callable, send: Callable) -> None:
        length = _content_length(scope)
        limit = MAX_UPLOAD_BYTES + 16 * 1024  # the multipart framing around the file
        if length is None:
            return await _send_json(send, 411, {"detail": "an upload needs a Content-Length"})
        if length > limit:
            return await _send_json(send, 413, {"detail": f"an upload may be at most {MAX_UPLOAD_BYTES // 2**20} MB "
                                                          "(a drawing is far less)"})
        start: dict = {}
        chunks: list[bytes] = []

        async def keep(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, _bounded(receive, limit), keep)
        except _TooLarge:
            return await _send_json(send, 413, {"detail": f"an upload may be at most {MAX_UPLOAD_BYTES // 2**20} MB"})
        body = b"".join(chunks)
        if start.get("status") == 200:
            try:
                paths = [p for p in json.loads(body) if isinstance(p, str)]
            except (ValueError, TypeError):
                paths = []
            if any(_image_format(p) not in UPLOAD_FORMATS for p in paths if os.path.isfile(p)):
                for p in paths:
                    _remove(Path(p))
                return await _send_json(send, 415, {"detail": "only images can be uploaded: "
                                                              f"{', '.join(UPLOAD_FORMATS)}"})
            UPLOADS.added(paths)
        await send(start)
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def _bounded(receive: Callable, limit: int) -> Callable:
    """``receive`` that raises once the body passes ``limit`` bytes (a body sent without Content-Length)."""
    seen = 0

    async def bounded() -> dict:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise _TooLarge()
        return message

    return bounded


def _content_length(scope: dict) -> int | None:
    for k, v in scope.get("headers", []):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


async def _send_json(send: Callable, status: int, value: dict) -> None:
    body = json.dumps(value).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


MIDDLEWARE = [Middleware(Limits)]
