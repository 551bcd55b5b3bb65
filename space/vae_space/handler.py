"""What every tab's handler shares: input checks that answer in words, the one ``@handler`` decorator, and
named results.

A handler is a plain function ``fn(engine, *inputs)``: tests and benchmarks call it in-process and get
numpy images, dicts and strings, or a :class:`Result` whose fields name each output. ``@handler`` runs it
without gradients and turns every failure into a short ``gr.Error`` (never a traceback): the engine's
``Unavailable`` and a refused drawing with their own words, anything else in one line;
``fn.ui(engine)`` is the same call as Gradio wires it: a result's fields in order, images as PNG files.
(``guard.SafeBlocks`` stays the outer net: it bounds every request before Gradio decodes it.)
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import math
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn

import gradio as gr
import numpy as np
import torch
from PIL import Image

from vae_hub.data.preprocess import DrawingError

from .errors import Unavailable
from .guard import brief

log = logging.getLogger("vae_space")

TMP_TTL_S = 120  # our output files only need to live until Gradio has copied them


# ---------------------------------------------------------------------------- input checks
def fail(message: str) -> NoReturn:
    """A short message for the user: a toast in the UI, a gr.Error (AppError) through the API."""
    raise gr.Error(message, duration=6, print_exception=False)


def choice(value: Any, choices: list[str], what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        shown = ", ".join(choices[:12]) + (" …" if len(choices) > 12 else "")
        fail(f"{what}: expected one of {shown}; got {brief(value)}.")
    return value


def number(value: Any, lo: float, hi: float, what: str, integer: bool = False) -> float:
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


def seed_of(value: Any) -> int:
    return number(value, 0, 2**31 - 1, "seed", integer=True)


def pixels(x: Any) -> np.ndarray:
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


# ---------------------------------------------------------------------------- named results
@dataclass
class Result:
    """A handler's outputs by name. The UI and the API get them in field order (the order API users know)."""

    def values(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self))

    @classmethod
    def outputs(cls, **components: Any) -> list:
        """The output components in field order, named like the fields (a missing or extra one is a bug)."""
        names = [f.name for f in fields(cls)]
        if set(components) != set(names):
            raise TypeError(f"{cls.__name__} outputs are {names}; got {sorted(components)}")
        return [components[n] for n in names]


# ---------------------------------------------------------------------------- the decorator
def handler(fn: Callable) -> Callable:
    """Run ``fn(engine, ...)`` without gradients; turn every failure into a short gr.Error. The wrapped
    function gains ``.ui(engine)``: the call as Gradio makes it (see the module docstring)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            with torch.inference_mode():
                return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (DrawingError, Unavailable) as e:  # the drawing or the model is not usable: the reason, as it stands
            fail(str(e))
        except Exception as e:  # a bug or an input we did not foresee: log it, tell the user briefly
            log.exception("%s failed", fn.__name__)
            fail(f"Sorry, that did not work ({type(e).__name__}). Try another input.")

    def ui(engine: Any) -> Callable:
        def call(*args: Any, **kwargs: Any) -> Any:
            out = run(engine, *args, **kwargs)
            out = out.values() if isinstance(out, Result) else out
            return tuple(_to_file(v) for v in out) if isinstance(out, tuple) else _to_file(out)

        functools.update_wrapper(call, fn)
        sig = inspect.signature(fn)
        call.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])  # without the engine
        del call.__wrapped__  # Gradio reads the signature above, not fn's
        return call

    run.ui = ui
    return run


# ---------------------------------------------------------------------------- output files
_TMP = Path(tempfile.mkdtemp(prefix="vae_space_"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
_pruned = [0.0]


def tmpfile(suffix: str) -> Path:
    """A new file name in our temp folder; files older than TMP_TTL_S are removed now and then."""
    now = time.time()
    if now - _pruned[0] > 30:  # Gradio copies outputs into its own cache; ours can go after a while
        _pruned[0] = now
        for old in _TMP.glob("*"):
            try:
                if now - old.stat().st_mtime > TMP_TTL_S:
                    old.unlink()
            except OSError:
                pass
    return _TMP / f"{uuid.uuid4().hex}{suffix}"


def _to_file(v: Any) -> Any:
    """An RGB image array as a PNG file of our own. Gradio saves returned arrays under a content hash and
    rewrites that file in place on every request, so two concurrent requests with the same output could
    truncate a file another one is downloading; a unique file is copied into its cache atomically instead,
    and a fast compression level halves the encoding time."""
    if isinstance(v, np.ndarray) and v.ndim == 3 and v.dtype == np.uint8:
        path = tmpfile(".png")
        Image.fromarray(v).save(path, format="PNG", compress_level=1)
        return str(path)
    return v
