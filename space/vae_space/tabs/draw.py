"""Draw & encode: the pad and its live loop run in the visitor's browser (web/draw.js, web/preprocess.js)
on ONNX exports of the served weights with onnxruntime-web; this module lays the tab out, tells the
browser where everything is (the manifest), and keeps the server's side:

- ``/encode``: a drawing (sketchpad value or plain image) -> the seven outputs it always returned, for
  ``gradio_client`` users;
- ``/encode_array``: an already-preprocessed 28×28 input -> the numbers the browser paints; the pad's
  fallback when the in-browser runtime cannot load (no WebAssembly, the script blocked).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..browser import live_panel, server_fn
from ..engine import MAP_MODEL, Engine


def build(engine: Engine, encode_files: Any, live: dict) -> None:
    """The tab's contents (inside ``gr.Tab``): the live panel, and the /encode and /encode_array endpoints."""

    encoders = engine.available("encoder")
    if not encoders:
        gr.Markdown("⚠️ No grayscale model is available to encode drawings with; the footer lists what is missing.",
                    elem_classes=["note"])
    elif MAP_MODEL not in engine.models:
        gr.Markdown(engine.unavailable_note([MAP_MODEL], "The latent map is shown"), elem_classes=["note"])
    gr.Markdown("**Start here:** draw a digit on the white pad. Everything updates while you draw, computed in your "
                "browser: the 28×28 input the model sees, its reconstruction, the code q(z|x) (mean ± σ per "
                "dimension), where the drawing sits among the test digits on the 2-D map, and how typical it is.",
                elem_classes=["note"])
    live_panel(engine, "draw.js", "The drawing pad", "vd-root", elem_id="draw-live",
               server_functions=[server_fn("encode_array", engine.encode_array, "x", "model")])

    # The API as it always was, for gradio_client: a drawing (sketchpad value or plain image) and a model in,
    # the seven outputs out. Hidden components: the page itself draws in the browser.
    with gr.Group(visible=False):
        api_pad = gr.Sketchpad(type="numpy", image_mode="RGBA", label="drawing")
        api_model = gr.Dropdown(encoders, value=encoders[0] if encoders else None, label="model")
        outs = [gr.Image(label=n, format="png") for n in ("input", "reconstruction", "posterior", "latent map",
                                                          "neighbours")]
        outs += [gr.Markdown(), gr.JSON()]
    api_pad.change(encode_files, [api_pad, api_model], outs, api_name="encode", **live)
    gr.api(_as_api(engine), api_name="encode_array")


def _as_api(engine: Engine):
    def encode_array(x: list[float], model: str = "vae-z20") -> dict:
        """An MNIST-style 28×28 input (784 values in [0, 1], row-major, white on black) through a model."""
        return engine.encode_array(x, model)

    return encode_array
