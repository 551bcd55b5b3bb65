"""The one place every call passes through: bounds on what a request may hold, checked before Gradio decodes
anything, and short errors that never echo the input back.

- An image editor value may hold one layer (the app's pads have one): a value with many ``layers`` is
  refused before Gradio decodes them (each one would be a full-size image in memory).
- Every image a request carries is measured from its file's header, not decoded, and refused when it is
  larger than ``MAX_PIXELS`` or its file larger than ``MAX_FILE_BYTES``.
- Strings longer than ``MAX_TEXT`` are refused (a model name is a few characters).
- Every error is at most ``MAX_MESSAGE`` characters and repeats at most 40 characters of any input.
- Any exception that is not our own ``gr.Error`` (a bug, a hidden endpoint called without its event) is
  logged in one line and answered with a short ``gr.Error``: no endpoint leaks a traceback.
- No answer carries NaN or an infinity (browsers cannot parse them in JSON): they become null.
- The queue refuses a client's call beyond its share (``limits.bound_queue``), and the files a call uploaded
  are deleted once it has answered (``limits.UPLOADS``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from vae_hub.checks import BRIEF, brief  # the one short repr of a value, re-exported for the handlers
from vae_hub.data.preprocess import MAX_PIXELS

log = logging.getLogger("vae_space")

MAX_LAYERS = 1
MAX_FILE_BYTES = 25 * 1024 * 1024  # as launch(max_file_size="25mb"); uploads are held to less (limits.py)
MAX_TEXT = 1000
MAX_MESSAGE = 240
ECHO = BRIEF


def shorten(message: str, inputs: list[Any] | None = None) -> str:
    """Replace any long input repeated in a message by its brief form, and cap the length."""
    msg = str(message)
    for s in _strings(inputs or []):
        if len(s) > ECHO and s in msg:
            msg = msg.replace(s, brief(s))
    if len(msg) > 160 and ": [" in msg:  # Gradio lists every allowed choice: keep the point, not the list
        msg = msg.split(": [", 1)[0] + " (the API page lists the choices)."
    return msg if len(msg) <= MAX_MESSAGE else msg[:MAX_MESSAGE - 1] + "…"


def _strings(value: Any, depth: int = 0) -> list[str]:
    if isinstance(value, str):
        return [value]
    if depth > 4:
        return []
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v, depth + 1)]
    if isinstance(value, (list, tuple)):
        return [s for v in value[:64] for s in _strings(v, depth + 1)]
    return []


def _files(value: Any, depth: int = 0) -> list[dict]:
    """The file payloads ({"path": ...}) inside a value, as Gradio receives them."""
    if depth > 4:
        return []
    if isinstance(value, dict):
        own = [value] if isinstance(value.get("path"), str) else []
        return own + [f for v in value.values() for f in _files(v, depth + 1)]
    if isinstance(value, (list, tuple)):
        return [f for v in value[:64] for f in _files(v, depth + 1)]
    return []


def files_in(values: list[Any]) -> list[dict]:
    """The file payloads ({"path": ...}) among a call's inputs."""
    return [f for v in values for f in _files(v)]


def finite(value: Any, depth: int = 0) -> Any:
    """The value with every NaN or infinity (not valid JSON) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > 8:
        return value
    if isinstance(value, list):
        return [finite(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(finite(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return {k: finite(v, depth + 1) for k, v in value.items()}
    return value


def check_payload(value: Any) -> None:
    """Refuse, before any decoding, what could only cost memory: many layers, huge images, huge strings."""
    if isinstance(value, dict) and isinstance(value.get("layers"), list) and len(value["layers"]) > MAX_LAYERS:
        raise gr.Error(f"A drawing may have {MAX_LAYERS} layer; this one has {len(value['layers'])}. Send the "
                       "picture as the composite, or a plain image.", duration=6, print_exception=False)
    for s in _strings(value):
        if len(s) > MAX_TEXT:
            raise gr.Error(f"A text input is {len(s):,} characters long; the most any input takes is {MAX_TEXT}.",
                           duration=6, print_exception=False)
    for f in _files(value):
        path = Path(f["path"])
        try:
            if not path.is_file():
                continue  # not uploaded here (a URL, or a path Gradio will refuse): Gradio checks it
            size = path.stat().st_size
        except (OSError, ValueError):
            continue
        if size > MAX_FILE_BYTES:
            raise gr.Error(f"A file is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB.", duration=6,
                           print_exception=False)
        try:
            with Image.open(path) as img:  # reads the header only
                w, h = img.size
        except Exception:
            continue  # not an image, or unreadable: the component's own reading says so
        if w * h > MAX_PIXELS:
            raise gr.Error(f"Image too large ({w}×{h}); the limit is 4096×4096.", duration=6, print_exception=False)


def why(e: BaseException) -> str:
    """What went wrong with an input, in words, from the exception Gradio's processing raised."""
    cause = e.__cause__ or e
    name = type(cause).__name__
    text = str(cause).lower()
    if name == "DecompressionBombError":
        return "the image is too large (the limit is 4096×4096)."
    if name == "UnidentifiedImageError":
        return "that file is not an image we can read."
    if name == "InvalidPathError" or "not allowed" in text or "outside" in text:
        return "that file is not allowed: send an uploaded file (gradio_client's handle_file)."
    if "truncated" in text or isinstance(cause, (OSError, SyntaxError)):
        return "the image is unreadable (truncated or damaged)."
    if name == "ValidationError":
        return "a value of the wrong type (see the API page for what each input expects)."
    return f"a value of the wrong type ({name})."


class SafeBlocks(gr.Blocks):
    """Blocks whose every call is bounded before decoding and answered briefly whatever happens."""

    @staticmethod
    def _name(block_fn: Any) -> str:
        return f"/{getattr(block_fn, 'api_name', None) or getattr(block_fn, 'name', None) or 'this endpoint'}"

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        for value in inputs:
            check_payload(value)
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except gr.Error as e:  # Gradio's own checks, e.g. a value not among a dropdown's choices
            raise gr.Error(shorten(f"Invalid input for {self._name(block_fn)}: {e.message}", inputs), duration=6,
                           print_exception=False) from None
        except Exception as e:
            raise gr.Error(f"Invalid input for {self._name(block_fn)}: {why(e)}", duration=6,
                           print_exception=False) from None

    def queue(self, *args, **kwargs):
        from .limits import bound_queue

        out = super().queue(*args, **kwargs)
        bound_queue(self._queue)  # one client's share of the queue
        return out

    async def process_api(self, block_fn, inputs, *args, **kwargs):
        from .limits import UPLOADS

        try:
            return await self._process_api(block_fn, inputs, *args, **kwargs)
        finally:  # the call has answered: the files it uploaded can go
            UPLOADS.release(f["path"] for f in files_in(inputs if isinstance(inputs, list) else [inputs]))

    async def _process_api(self, block_fn, inputs, *args, **kwargs):
        fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        try:
            out = await super().process_api(block_fn, inputs, *args, **kwargs)
            if isinstance(out, dict) and isinstance(out.get("data"), list):
                out["data"] = finite(out["data"])
            return out
        except gr.Error as e:
            msg = shorten(str(e.message), inputs)
            if msg == str(e.message):
                raise
            raise gr.Error(msg, duration=6, print_exception=False) from None
        except Exception as e:  # a bug or a call we did not foresee: one log line, a short answer
            log.warning("%s failed: %s: %s", self._name(fn), type(e).__name__, shorten(str(e), inputs))
            raise gr.Error(f"{self._name(fn)} could not answer that call ({type(e).__name__}).", duration=6,
                           print_exception=False) from None
