"""How the app answers HTTP around Gradio's own routes, for a first visit over a slow link and a repeat visit that
downloads nothing twice:

- ``/`` is the browser app's own page (``page()``, a few kB; the static site's page with its manifest inline):
  a visitor downloads none of Gradio's scripts to draw. Gradio's page, with every tab, stays at ``/?ui=gradio``
  (and its API page at ``/?view=api``);
- Gradio's page (about 370 kB of HTML with the app's config inline) travels compressed: Gradio's middleware
  compresses by file extension, and ``/`` has none; its <head> gets ``<link rel=modulepreload>`` for the open
  tab's modules, so they download beside Gradio's own scripts instead of after them;
- Gradio's build files (``/assets/Index-<hash>.js``: their names carry a hash of their content) and the versioned
  theme (``/theme.css?v=<hash>``) are marked cacheable for a year, so a repeat visit does not revalidate ~100 of
  them one round trip at a time;
- a call to an endpoint name that does not exist (``/gradio_api/call/nonexistent``, or one removed in an earlier
  version) is answered 404 with one short line, instead of Gradio's HTTP 500 and a logged traceback.

``app_kwargs(...)`` gives what ``demo.launch(app_kwargs=...)`` passes to FastAPI: the asset route (``assets.py``)
and this middleware. Imports: the standard library, anyio, starlette, and ``assets``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .assets import IMMUTABLE, AssetStore, chosen_encoding, compress

log = logging.getLogger("vae_space")

CALL = re.compile(r"^/gradio_api/(?:call|run|api)/([^/]+)/?$")
HASHED = re.compile(r"^/assets/[^/]+-[A-Za-z0-9_-]{8,12}\.(?:js|mjs|css)$")


def endpoint_names(config: dict) -> set[str]:
    """The api_name of every event in a Blocks config (what /gradio_api/call/<name> accepts)."""
    return {str(d["api_name"]).lstrip("/") for d in config.get("dependencies", []) if d.get("api_name")}


class PageMiddleware:
    """Compresses the page, marks hashed build files immutable, refuses unknown endpoint names (see the module)."""

    def __init__(self, app: ASGIApp, endpoints: Callable[[], set[str]], head: Callable[[], str] = str,
                 page: Callable[[], str] | None = None):
        self.app = app
        self.endpoints = endpoints
        self.head = head
        self.page = page
        self._names: set[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        call = CALL.match(path) if method == "POST" else None
        if call and not self._known(call.group(1)):
            return await _short(send, 404, f"No endpoint /{call.group(1)[:40]} here; the API page (?view=api) lists "
                                           "the endpoints.")
        if path == "/" and method == "GET":
            if self.page is not None and not _wants_gradio(scope["query_string"]):
                return await self._app_page(scope, send)
            return await self._page(scope, receive, send)
        if method in ("GET", "HEAD") and (HASHED.match(path) or (path == "/theme.css" and b"v=" in scope["query_string"])):
            return await self.app(scope, receive, _with_headers(send, {"cache-control": IMMUTABLE}))
        return await self.app(scope, receive, send)

    def _head(self) -> bytes:
        try:
            return self.head().encode()
        except Exception:  # the preload is a hint: a page without it still works
            return b""

    def _known(self, name: str) -> bool:
        if self._names is None:
            try:
                self._names = self.endpoints()
            except Exception:  # the config is not built yet: let Gradio answer
                return True
        return name in self._names

    async def _app_page(self, scope: Scope, send: Send) -> None:
        """The browser app's page, made in a thread (its manifest may wait for the default model to be ready)."""
        try:
            data = (await anyio.to_thread.run_sync(self.page)).encode()
        except Exception as e:  # the app page cannot be made: Gradio's page still works
            log.warning("the app's page could not be made (%s: %s); sending Gradio's", type(e).__name__, str(e)[:200])
            data = b'<!doctype html><meta http-equiv="refresh" content="0; url=?ui=gradio">'
        enc = _encoding(scope)
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-cache"),
                   (b"vary", b"Accept-Encoding")]
        if enc is not None:
            data = compress(data, enc)
            headers.append((b"content-encoding", enc.encode()))
        headers.append((b"content-length", str(len(data)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _page(self, scope: Scope, receive: Receive, send: Send) -> None:
        enc = _encoding(scope)
        start: dict[str, Any] = {}
        body = bytearray()

        async def buffer(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                return await send(message)
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            headers = MutableHeaders(raw=start["headers"])
            html = headers.get("content-type", "").startswith("text/html")
            data = bytes(body)
            if html and "content-encoding" not in headers and start["status"] == 200:
                data = data.replace(b"</head>", self._head() + b"</head>", 1)
                if enc is not None:
                    data = compress(data, enc)
                    headers["content-encoding"] = enc
                    headers.add_vary_header("Accept-Encoding")
                headers["content-length"] = str(len(data))
            await send(start)
            await send({"type": "http.response.body", "body": data})

        await self.app(scope, receive, buffer)


def _wants_gradio(query: bytes) -> bool:
    """``?ui=gradio`` (Gradio's page) or ``?view=...`` (Gradio's API page): Gradio answers."""
    q = query.decode("latin-1")
    return "ui=gradio" in q or "view=" in q


def _encoding(scope: Scope) -> str | None:
    return chosen_encoding(Headers(scope=scope).get("accept-encoding", ""))


def _with_headers(send: Send, extra: dict[str, str]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and message.get("status") == 200:
            headers = MutableHeaders(raw=message["headers"])
            for k, v in extra.items():
                headers[k] = v
        await send(message)

    return wrapped


async def _short(send: Send, status: int, text: str) -> None:
    body = json.dumps({"error": text}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def app_kwargs(assets: AssetStore, config: Callable[[], dict], head: Callable[[], str] = str,
               outer: list[Middleware] = (), page: Callable[[], str] | None = None, routes: list = ()) -> dict:
    """FastAPI arguments for ``demo.launch(app_kwargs=...)``: the asset route and ``routes``, and the page
    middleware (``page()`` at ``/``; ``head()`` added to Gradio's page's <head>) inside ``outer`` (the limits on one
    visitor, ``limits.MIDDLEWARE``)."""
    return {"routes": [assets.route(), *routes],
            "middleware": [*outer, Middleware(PageMiddleware, endpoints=lambda: endpoint_names(config()), head=head,
                                              page=page)]}
