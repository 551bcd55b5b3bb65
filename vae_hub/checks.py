"""Checks that keep broken files and values out: config fields, JSON, safetensors headers and values, dataset rows.

Every error is a ValueError (or FloatingPointError for training numbers) whose message names the file or field
and says what was expected. Nothing here imports the rest of vae_hub, so any module may use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any

import safetensors
import torch
from torch import nn

if TYPE_CHECKING:
    import PIL.Image

MAX_JSON_BYTES = 1 << 20  # a config is a few hundred bytes; anything near this is not one
FLOAT_DTYPES = ("F32", "F16", "BF16")  # float tensors may be stored in these (the bundled set uses F16)
_EXACT_DTYPES = {torch.int64: "I64", torch.int32: "I32", torch.bool: "BOOL", torch.uint8: "U8"}
Expected = Mapping[str, tuple[tuple[int, ...], torch.dtype]]


# ---------------------------------------------------------------------------- values and fields
BRIEF = 40  # the most characters of a value an error message repeats


def brief(value: Any) -> str:
    """A short repr for an error message, at most BRIEF characters: it never recurses far (configs may hold deeply
    nested junk) nor writes out a huge string or list whole (a request may send megabytes)."""
    if isinstance(value, (list, tuple, dict)):
        if not value:
            return repr(value)
        first = next(iter(value.items())) if isinstance(value, dict) else value[0]
        inner = brief(first) if not isinstance(first, (list, tuple, dict)) else "[…]"
        text = f"[{inner}, … ({len(value)} items)]" if len(value) > 1 else f"[{inner}]"
    else:
        text = repr(value[:BRIEF + 1] if isinstance(value, str) else value)
    return text if len(text) <= BRIEF else text[:BRIEF - 1] + "…"


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON-like value has the type the annotation names: int excludes bool, float accepts int."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


_NAMES = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "booleans"),
          str: ("a string", "strings"), type(None): ("null", "nulls")}


def _describe(hint: Any, plural: bool = False) -> str:
    """'a list of lists of numbers or null' for list[list[float]] | None."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return f"{'lists' if plural else 'a list'} of {_describe(args[0], plural=True)}"
    if args:
        return " or ".join(_describe(a, plural) for a in args)
    return _NAMES.get(hint, (getattr(hint, "__name__", str(hint)),) * 2)[plural]


def check_field_types(obj: Any) -> None:
    """Every dataclass field holds a value of its annotated type (JSON types: no 20.0 for an int, no "400")."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not _conforms(value, hints[f.name]):
            raise ValueError(f"field {f.name!r} is {brief(value)} ({type(value).__name__}); "
                             f"expected {_describe(hints[f.name])}")


def check_range(name: str, value: float, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False) -> None:
    """lo <= value <= hi (lo < value with lo_open), and finite; the error names the field."""
    below = lo is not None and (value <= lo if lo_open else value < lo)
    infinite = isinstance(value, float) and not math.isfinite(value)
    if infinite or below or (hi is not None and value > hi):
        low = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
        high = "" if hi is None else f"<= {hi:g}"
        want = " and ".join(s for s in (low, high) if s)
        raise ValueError(f"field {name!r} is {brief(value)}; expected a finite number {want}".rstrip())


def check_sizes(name: str, values: list[int], lo: int, hi: int, count: tuple[int, int]) -> None:
    """A list of layer sizes: count[0]..count[1] entries, each in lo..hi."""
    if not count[0] <= len(values) <= count[1]:
        raise ValueError(f"field {name!r} has {len(values)} entries; expected {count[0]} to {count[1]}")
    for v in values:
        if not lo <= v <= hi:
            raise ValueError(f"field {name!r} holds {v}; expected sizes from {lo} to {hi}")


def check_covariance(name: str, cov: list[list[float]], n: int) -> None:
    """An n×n symmetric positive-definite matrix (float32 Cholesky succeeds, as the model's prior needs)."""
    if len(cov) != n or any(len(r) != n for r in cov):
        raise ValueError(f"field {name} must be {n}x{n} (z_dim={n})")
    m = torch.tensor(cov, dtype=torch.float64)
    if not torch.isfinite(m).all():
        raise ValueError(f"field {name!r} holds non-finite values")
    if not torch.allclose(m, m.T, rtol=1e-6, atol=1e-9):
        raise ValueError(f"field {name!r} is not symmetric; a covariance matrix is")
    if torch.linalg.cholesky_ex(m.float()).info != 0:
        raise ValueError(f"field {name!r} is not positive definite (smallest eigenvalue "
                         f"{float(torch.linalg.eigvalsh(m)[0]):.4g}); a covariance matrix is")


def read_json(path: Path, limit: int = MAX_JSON_BYTES, what: str = "a config is a small JSON object") -> Any:
    """Parse a small JSON file (at most ``limit`` bytes, checked before reading); size, encoding, syntax and
    nesting errors name the file."""
    size = path.stat().st_size
    if size > limit:
        raise ValueError(f"{path}: {size:,} bytes; {what} (at most {limit:,} bytes)")
    try:
        return json.loads(path.read_text())
    except ValueError as e:  # bad syntax or encoding, or an integer of over 4300 digits
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply; a config is a flat object of numbers, strings and "
                         "lists") from None


# ---------------------------------------------------------------------------- safetensors files
def expected_tensors(build: Callable[[], nn.Module]) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Names, shapes and dtypes of a module's state dict, built on the meta device: no memory is allocated."""
    with torch.device("meta"):
        module = build()
    return {k: (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}


def _allowed(dtype: torch.dtype) -> tuple[str, ...]:
    return FLOAT_DTYPES if dtype.is_floating_point else (_EXACT_DTYPES.get(dtype, str(dtype)),)


def check_header(path: Path, expected: Expected) -> None:
    """Compare a safetensors header (names, shapes, dtypes) with what the model expects, reading no tensor data."""
    try:
        with safetensors.safe_open(str(path), "pt") as f:
            slices = {k: f.get_slice(k) for k in f.keys()}
            found = {k: (tuple(s.get_shape()), s.get_dtype()) for k, s in slices.items()}
    except Exception as e:  # safetensors raises several types for truncated/garbled files
        raise ValueError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    wrong = [f"{k}: file {found[k][0]} vs model {shape}" for k, (shape, _) in expected.items()
             if k in found and found[k][0] != shape]
    problems = ([f"missing tensors {missing}"] if missing else []) + ([f"unexpected tensors {extra}"] if extra else []) \
        + ([f"wrong shapes: {'; '.join(wrong)}"] if wrong else [])
    if problems:
        raise ValueError(f"{path}: does not match the config's architecture: {'. '.join(problems)}")
    for k, (_, dtype) in expected.items():
        if found[k][1] not in _allowed(dtype):
            raise ValueError(f"{path}: tensor {k!r} is stored as {found[k][1]}; expected {' or '.join(_allowed(dtype))}")


def _all_finite(v: torch.Tensor) -> bool:
    # a NaN or inf element makes the sum NaN or inf, so a finite sum settles it in one cheap reduction
    # (an elementwise isfinite is far slower on CPU, on float16 most); a non-finite sum may be overflow: confirm
    return math.isfinite(v.sum()) or bool(torch.isfinite(v).all())


def first_nonfinite(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """Name of the first floating tensor holding a NaN or an infinity, if any."""
    return next((k for k, v in tensors.items() if v.is_floating_point() and not _all_finite(v)), None)


def check_finite(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    name = first_nonfinite(tensors)
    if name is not None:
        v = tensors[name]
        raise ValueError(f"{path}: tensor {name!r} holds {int((~torch.isfinite(v)).sum())} non-finite value(s) "
                         f"({int(v.isnan().sum())} NaN); the weights are damaged")


def nonfinite_message(variant: str, what: str, epoch: int, step: int, checkpoint: Path) -> str:
    """One wording for every non-finite number met while training (loss, weights)."""
    kept = checkpoint if checkpoint.exists() else "(none yet)"
    return f"{variant}: non-finite {what} at epoch {epoch}, step {step}; the last good checkpoint is kept at {kept}"


# ---------------------------------------------------------------------------- datasets
def open_image(item: Any, where: str) -> PIL.Image.Image:
    """One `datasets.Image(decode=False)` cell, fully decoded (truncation shows only on load) as a PIL image;
    a null cell, an unreadable file or undecodable bytes raise a ValueError naming the row."""
    from PIL import Image, UnidentifiedImageError

    data = item.get("bytes") if isinstance(item, dict) else None
    if data is None and isinstance(item, dict) and item.get("path"):
        try:
            data = Path(item["path"]).read_bytes()
        except OSError as e:
            raise ValueError(f"{where}: image file {item['path']!r} cannot be read ({e.strerror})") from None
    if not data:
        raise ValueError(f"{where}: image is null or empty; expected the PNG bytes of a 28x28 digit")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for unknown, truncated or corrupt data
        why = "unknown or damaged format" if isinstance(e, UnidentifiedImageError) else f"{type(e).__name__}: {e}"
        raise ValueError(f"{where}: not a decodable image ({why})") from None
    return img


def check_labels(labels: Iterable[Any], where: str) -> None:
    for i, y in enumerate(labels):
        if not isinstance(y, int) or isinstance(y, bool) or not 0 <= y <= 9:
            raise ValueError(f"{where}: label {i} is {brief(y)}; expected a digit 0-9")


def check_split_sizes(dataset: str, *splits: Sized, minimum: int = 2) -> None:
    """Each split holds enough images: one gives the test estimate no spread and the latent PCA nothing to span."""
    for name, split in zip(("train", "test"), splits):
        if len(split) < minimum:
            raise ValueError(f"dataset {dataset!r} split {name!r} holds {len(split)} image(s); training and its "
                             f"figures need at least {minimum} per split")


# ---------------------------------------------------------------------------- write failures
def checkpoint_epoch(checkpoint: Path) -> int | None:
    """The epoch a trainer checkpoint was written after, read from its header only; None if unreadable."""
    try:
        with safetensors.safe_open(str(checkpoint), "pt") as f:
            return int(json.loads(f.metadata()["state"])["epoch"])
    except Exception:
        return None


def write_failure(e: OSError, variant: str, checkpoint: Path) -> str:
    """A disk-full (or other I/O) failure as one line: what could not be written, and what is kept."""
    what = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        what = "no space left on device (disk full)"
    target = e.filename or f"the model folder {checkpoint.parent.parent}"
    epoch = checkpoint_epoch(checkpoint)
    then = "free some space, then rerun with --resume" if e.errno == errno.ENOSPC else "fix that, then rerun with --resume"
    kept = (f"the last checkpoint {checkpoint} (after epoch {epoch}) is intact: {then}" if epoch is not None
            else "no checkpoint was written yet")
    return f"{variant}: could not write {target}: {what}; {kept}"


@contextlib.contextmanager
def exit_on_failure(variant: str, checkpoint: Path) -> Iterator[None]:
    """Turn a variant's known failures (bad numbers or config, I/O errors such as a full disk) into one line on
    stderr and exit status 1, as train.py promises: no traceback, and the line says what is kept."""
    try:
        yield
    except (FloatingPointError, ValueError, OSError) as e:
        io_error = isinstance(e, OSError) and e.errno is not None  # FileExistsError("... --resume") has none
        raise SystemExit(f"error: {write_failure(e, variant, checkpoint) if io_error else e}") from None
