"""Latent explorer: the 2-D (and 3-D) models' latent spaces, decoded under the cursor in the visitor's
browser (web/explore.js, onnxruntime-web on the models' ONNX decoders). The server keeps ``/manifold`` and
``/decode_point`` for API users, and ``decode_points``, the views' fallback when the runtime cannot load.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..browser import WEB, manifest
from ..engine import Engine

MODELS = ("vae-z2", "vae-z2-corr", "vae-z3")

JS_ON_LOAD = """
const root = element.querySelector('.vx-root');
(async () => {
  try {
    const m = await server.live_manifest({});
    if (!m || m.error) throw new Error((m && m.error) || 'no manifest');
    const mod = await import(new URL(m.explore_js, document.baseURI).href);
    await mod.mount(root, m, server);
  } catch (err) {
    root.textContent = 'The explorer could not start: ' + (err && err.message ? err.message : err);
    console.warn('vae-hub explore:', err);
  }
})();
"""


def build(engine: Engine) -> None:
    """The live panel (inside the tab): map, decoded point and grid, linked by one marker."""

    def live_manifest(data: Any = None) -> dict:
        try:  # vae-z3 is prepared after the 2-D models: waiting for it means all three are there
            m = manifest(engine, wait="vae-z3" if "vae-z3" in engine.models else None)
        except Exception as e:
            return {"error": f"{type(e).__name__}: {str(e)[:160]}"}
        m["models"] = {k: v for k, v in m["models"].items() if k in MODELS and v["ready"]}
        m["explore_js"] = m["draw_js"].replace("draw.js", "explore.js")
        return m

    def decode_points(data: Any = None) -> dict:
        data = data if isinstance(data, dict) else {}
        try:
            return {"images": engine.decode_points(data.get("model"), data.get("z"), data.get("k"))}
        except gr.Error as e:
            return {"error": str(e.message)[:240]}

    gr.HTML("", html_template="<div class='vx-root'>Loading the explorer…</div>",
            css_template=(WEB / "draw.css").read_text() + (WEB / "explore.css").read_text(), js_on_load=JS_ON_LOAD,
            elem_id="explore-live", server_functions=[live_manifest, decode_points], apply_default_css=False)
