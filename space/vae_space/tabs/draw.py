"""Draw & encode: the pad and its live loop run in the visitor's browser (web/draw.js, web/preprocess.js)
on ONNX exports of the served weights with onnxruntime-web; this module lays the tab out, tells the
browser where everything is (the manifest), and keeps the server's side:

- ``/encode``: a drawing (sketchpad value or plain image) -> the seven outputs it always returned, for
  ``gradio_client`` users;
- ``/encode_array``: an already-preprocessed 28×28 input -> the numbers the browser paints; the pad's
  fallback when the in-browser runtime cannot load (no WebAssembly, the script blocked).

onnxruntime-web is served by the app from ``space/node_modules`` after ``npm ci`` in ``space/`` (works
offline); without it, the page loads the same pinned version from a public CDN with subresource integrity.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..browser import WEB, manifest
from ..engine import MAP_MODEL, Engine

# The component's own script: fetch the manifest, import the tab's module, hand it the element.
JS_ON_LOAD = """
const root = element.querySelector('.vd-root');
(async () => {
  try {
    const m = await server.live_manifest({});
    if (!m || m.error) throw new Error((m && m.error) || 'no manifest');
    const mod = await import(new URL(m.draw_js, document.baseURI).href);
    await mod.mount(root, m, server);
  } catch (err) {
    root.textContent = 'The drawing pad could not start: ' + (err && err.message ? err.message : err);
    console.warn('vae-hub draw:', err);
  }
})();
"""


def build(engine: Engine, encode_files: Any, live: dict) -> None:
    """The tab's contents (inside ``gr.Tab``): the live panel, and the /encode and /encode_array endpoints."""

    def live_manifest(data: Any = None) -> dict:
        wait = data.get("wait") if isinstance(data, dict) and isinstance(data.get("wait"), str) else None
        try:
            return manifest(engine, wait if wait in engine.models else None)
        except Exception as e:  # the page shows it; the server keeps going
            return {"error": f"{type(e).__name__}: {str(e)[:160]}"}

    def encode_array(data: Any = None) -> dict:
        data = data if isinstance(data, dict) else {}
        try:
            return engine.encode_array(data.get("x"), data.get("model"))
        except gr.Error as e:
            return {"error": str(e.message)[:240]}

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
    gr.HTML("", html_template="<div class='vd-root'>Loading the drawing pad…</div>",
            css_template=(WEB / "draw.css").read_text(), js_on_load=JS_ON_LOAD, elem_id="draw-live",
            server_functions=[live_manifest, encode_array], apply_default_css=False)

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
