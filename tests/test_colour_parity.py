"""The colour sweeps' measure in the browser (web/numbers.js colourShapeChange) and in Python
(vae_space.tabs.generate.color_shape_change), on the same pixels.

The cases (coloured digits in several hues, grey digits changing shape, noise, no ink, a real sweep of color-vae
and of color-gumbel) are made here, as bytes (frames of 3 × 28 × 28, value / 255 on both sides), with Python's
measures, and kept in space/test/colour_measure.json: node's unit test (space/test/colour.test.js) checks the JS
port against it without torch. This test checks that the fixture is what Python computes today (rewritten with
VAE_HUB_WRITE_FIXTURES=1) and runs the port under node on the same cases.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_hub.data.preprocess import DIGIT_STROKES, render_strokes, to_mnist

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "space" / "test" / "colour_measure.json"
TOLERANCE = 1e-6  # float32 sums in torch, float64 in JS


def _digit(d: int) -> np.ndarray:
    return to_mnist(render_strokes(DIGIT_STROKES[d]))  # (28, 28) float32 in [0, 1]


def _sweep(variant: str, dim: int) -> np.ndarray:
    """A real sweep: the model's decoded frames as one of its variables moves, around a coloured test digit's code."""
    from vae_space.entries import TestDigits
    from vae_space.tabs.generate import SWEEP, SWEEP_STEPS, color_values

    import vae_hub

    model = vae_hub.load(str(ROOT / "pretrained" / variant)).eval()
    c = model.config
    with torch.inference_mode():
        base = model.encode(TestDigits.load().colored([7], c.color_seed)).mode[0]
        if dim < c.z_dim:
            z = base.repeat(SWEEP_STEPS, 1)
            z[:, dim] = torch.linspace(-SWEEP, SWEEP, SWEEP_STEPS)
        else:  # a categorical variable set to each of its values
            values = color_values(c.k_cat)
            start = c.z_dim + (dim - c.z_dim) * c.k_cat
            z = base.repeat(len(values), 1)
            z[:, start:start + c.k_cat] = 0
            z[torch.arange(len(values)), start + torch.tensor(values)] = 1
        return torch.sigmoid(model.decode(z)).numpy()


def _cases() -> dict[str, np.ndarray]:
    """name -> uint8 (S, 3, 28, 28)"""
    seven, one = _digit(7), _digit(1)
    hues = np.array([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0], [1.0, 1.0, 0.1]], np.float32)
    rng = np.random.default_rng(0)
    frames = {
        "a 7 in four hues": seven[None, None] * hues[:, :, None, None],
        "grey 7s and 1s": np.repeat(np.stack([seven, one, seven, one])[:, None], 3, 1) * 0.8,
        "noise": rng.random((3, 3, 28, 28)),
        "no ink": np.zeros((2, 3, 28, 28)),
        "a dim 3 brightening": _digit(3)[None, None] * np.linspace(0.2, 1, 4)[:, None, None, None] * hues[1][:, None, None],
        "color-vae z1": _sweep("color-vae", 0),
        "color-gumbel c1": _sweep("color-gumbel", 0),
    }
    return {k: np.clip(np.rint(v * 255), 0, 255).astype(np.uint8) for k, v in frames.items()}


def _fixture() -> dict:
    from vae_space.tabs.generate import COLOR_CHANGE, SHAPE_CHANGE, color_shape_change

    cases = []
    for name, u8 in _cases().items():
        col, shape = color_shape_change(torch.from_numpy(u8).float() / 255)
        cases.append({"name": name, "frames": len(u8), "bytes": base64.b64encode(u8.tobytes()).decode(),
                      "colour": col, "shape": shape})
    return {"about": "made by tests/test_colour_parity.py (VAE_HUB_WRITE_FIXTURES=1 rewrites it)",
            "thresholds": {"colour": COLOR_CHANGE, "shape": SHAPE_CHANGE}, "cases": cases}


@pytest.fixture(scope="module")
def fixture() -> dict:
    want = _fixture()
    if os.environ.get("VAE_HUB_WRITE_FIXTURES") == "1":
        FIXTURE.write_text(json.dumps(want, indent=1) + "\n")
    return want


def test_the_fixture_is_what_python_computes(fixture):
    have = json.loads(FIXTURE.read_text())
    assert have["thresholds"] == fixture["thresholds"]
    assert [c["name"] for c in have["cases"]] == [c["name"] for c in fixture["cases"]]
    for h, w in zip(have["cases"], fixture["cases"]):
        assert h["bytes"] == w["bytes"], f"{w['name']}: the frames changed; rewrite with VAE_HUB_WRITE_FIXTURES=1"
        assert abs(h["colour"] - w["colour"]) < 1e-7 and abs(h["shape"] - w["shape"]) < 1e-7, w["name"]


def test_the_cases_span_every_verdict(fixture):
    from vae_space.tabs.generate import COLOR_CHANGE, SHAPE_CHANGE

    verdict = {c["name"]: (c["colour"] > COLOR_CHANGE, c["shape"] > SHAPE_CHANGE) for c in fixture["cases"]}
    assert set(verdict.values()) == {(True, False), (False, True), (True, True), (False, False)}, verdict
    assert verdict["a 7 in four hues"] == (True, False), "colour alone"
    assert verdict["grey 7s and 1s"] == (False, True), "shape alone"


# Runs the port on the fixture's cases: prints [{colour, shape, controls}] as JSON.
NODE = """
import { readFileSync } from "node:fs";
import { colourShapeChange, controls } from "./vae_space/web/numbers.js";
const f = JSON.parse(readFileSync(process.argv[1], "utf8"));
console.log(JSON.stringify(f.cases.map((c) => {
  const b = Buffer.from(c.bytes, "base64"), x = Float32Array.from(b, (v) => v / 255);
  const m = colourShapeChange(x, c.frames);
  return { ...m, controls: controls(m, f.thresholds) };
})));
"""


def test_the_browser_port_matches_python(fixture, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    from vae_space.tabs.generate import COLOR_CHANGE, SHAPE_CHANGE

    path = tmp_path / "cases.json"
    path.write_text(json.dumps(fixture))
    r = subprocess.run([node, "--input-type=module", "-e", NODE, str(path)], cwd=ROOT / "space",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    for case, js in zip(fixture["cases"], json.loads(r.stdout)):
        assert abs(js["colour"] - case["colour"]) < TOLERANCE, (case["name"], js, case["colour"])
        assert abs(js["shape"] - case["shape"]) < TOLERANCE, (case["name"], js, case["shape"])
        is_col, is_shape = case["colour"] > COLOR_CHANGE, case["shape"] > SHAPE_CHANGE
        want = {(True, False): "colour", (False, True): "shape", (True, True): "colour and shape"}.get(
            (is_col, is_shape), "little")
        assert js["controls"] == want, case["name"]
