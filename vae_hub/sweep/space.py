"""Search spaces for vae_hub.sweep.search, read from YAML: which VAEConfig fields vary, and how.

A search space (TPE sampling)::

    base: vae-z20            # the registry variant every trial starts from
    fixed: {epochs: 4}       # overrides shared by every trial (optional)
    params:
      lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # a range: float or int, as the field is
      batch_size: {choices: [64, 128, 256]}        # a set of values
      hidden: {choices: [[200], [400], [800]]}     # list-valued fields are chosen whole

A grid (``--grid``; every combination once)::

    base: vae-z20
    grid:
      lr: [1.0e-4, 1.0e-3]
      hidden: [[200], [400]]
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vae_hub.model.config import VAEConfig
from vae_hub.model.variants import VARIANTS, get_config

NOT_SEARCHABLE = ("variant", "description", "tags")  # names, not hyperparameters
SEARCHABLE = [f.name for f in dataclasses.fields(VAEConfig) if f.name not in NOT_SEARCHABLE]


@dataclass
class Space:
    base: str
    fixed: dict[str, Any] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {low, high, log, step} or {choices}
    grid: dict[str, list] | None = None  # name -> values, for --grid
    source: str = "space"

    @property
    def names(self) -> list[str]:
        return list(self.grid if self.grid is not None else self.params)

    def grid_size(self) -> int:
        return math.prod(len(v) for v in (self.grid or {}).values())

    def grid_points(self) -> list[dict[str, Any]]:
        axes = self.grid or {}
        return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def encode(value: Any) -> Any:
    """Optuna keeps only None/bool/int/float/str choices: a list-valued choice travels as its JSON text."""
    return json.dumps(value) if isinstance(value, list) else value


def decode(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) and value.startswith("[") else value  # no str field starts so


def _check_field(source: str, name: str) -> None:
    if name not in SEARCHABLE:
        raise ValueError(f"{source}: {name!r} is not a searchable VAEConfig field; expected one of {SEARCHABLE}")


def _check_range(source: str, name: str, spec: Any, base: VAEConfig) -> dict[str, Any]:
    where = f"{source}: params.{name}"
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a mapping, {{low: .., high: .., log: true}} or {{choices: [...]}}; got {spec!r}")
    if "choices" in spec:
        extra = set(spec) - {"choices"}
        if extra or not isinstance(spec["choices"], list) or not spec["choices"]:
            raise ValueError(f"{where}: expected {{choices: [v1, v2, ...]}} (a non-empty list and nothing else); got {spec!r}")
        return {"choices": spec["choices"]}
    unknown = set(spec) - {"low", "high", "log", "step"}
    if unknown or not {"low", "high"} <= set(spec):
        raise ValueError(f"{where}: a range needs low and high (optional log, step) and nothing else; got {spec!r}")
    kind = type(getattr(base, name))
    if kind not in (int, float):
        raise ValueError(f"{where}: {name} holds a {kind.__name__}, so it takes {{choices: [...]}}, not a range")
    low, high = spec["low"], spec["high"]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numeric or (kind is int and not all(isinstance(v, int) for v in (low, high))) or not low < high:
        raise ValueError(f"{where}: expected {kind.__name__} bounds with low < high; got low={low!r}, high={high!r}")
    if spec.get("log") and low <= 0:
        raise ValueError(f"{where}: a log range needs low > 0; got {low!r}")
    return {"low": low, "high": high, "log": bool(spec.get("log", False)), "step": spec.get("step"), "int": kind is int}


def parse_space(data: Any, source: str = "space") -> Space:
    """Validate a parsed YAML space; every error names the file, the key and what is expected."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping with base and params (or grid); got {type(data).__name__}")
    unknown = set(data) - {"base", "fixed", "params", "grid"}
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {sorted(unknown)}; expected base, fixed, and params or grid")
    base_name = data.get("base", "vae-z20")
    if base_name not in VARIANTS:
        raise ValueError(f"{source}: base {base_name!r} is not a registry variant; expected one of {list(VARIANTS)}")
    if ("params" in data) == ("grid" in data):
        raise ValueError(f"{source}: expected exactly one of params (a search space) or grid (--grid)")
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ValueError(f"{source}: fixed must map field names to values; got {fixed!r}")
    for name in fixed:
        _check_field(source, name)
    base = get_config(base_name, **fixed)  # fixed values must make a valid config on their own
    searched = data.get("params") if "params" in data else data.get("grid")
    if not isinstance(searched, dict) or not searched:
        raise ValueError(f"{source}: params/grid must map at least one field name to its values; got {searched!r}")
    for name in searched:
        _check_field(source, name)
        if name in fixed:
            raise ValueError(f"{source}: {name!r} is both fixed and searched; keep one")
    if "grid" in data:
        for name, values in searched.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"{source}: grid.{name} must be a non-empty list of values; got {values!r}")
        return Space(base_name, fixed, grid=dict(searched), source=source)
    return Space(base_name, fixed, {n: _check_range(source, n, s, base) for n, s in searched.items()}, source=source)


def load_space(path: str | Path) -> Space:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"search space {path} not found: expected a YAML file (see sweeps/*.yaml)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    return parse_space(data, str(path))


def suggest(trial, space: Space) -> dict[str, Any]:
    """The trial's values, decoded (lists back to lists)."""
    if space.grid is not None:  # the GridSampler answers these from its grid
        return {n: decode(trial.suggest_categorical(n, [encode(v) for v in vals])) for n, vals in space.grid.items()}
    values = {}
    for name, s in space.params.items():
        if "choices" in s:
            values[name] = decode(trial.suggest_categorical(name, [encode(v) for v in s["choices"]]))
        elif s["int"]:
            values[name] = trial.suggest_int(name, s["low"], s["high"], step=s["step"] or 1, log=s["log"])
        else:
            values[name] = trial.suggest_float(name, s["low"], s["high"], step=s["step"], log=s["log"])
    return values


def make_config(space: Space, values: dict[str, Any], description: str) -> VAEConfig:
    """The base variant with the fixed and the trial's values; the variant name stays the base's (loaders
    accept registry names only) and the description says which trial it is."""
    try:
        return get_config(space.base, **space.fixed, **values, description=description)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{space.source}: values {values} make no valid {space.base} config: {e}") from None
