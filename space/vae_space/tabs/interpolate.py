"""Interpolate: the server encodes the endpoints and draws the strip, the GIF and the path (``/interpolate``,
``/arithmetic``); the page then scrubs along the path in the browser (web/interpolate.js): a slider decodes
each point of the linear and the spherical path with the model's ONNX decoder, and moves it on the map.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..browser import WEB, manifest
from ..engine import Engine

JS_ON_LOAD = """
const root = element.querySelector('.vi-root');
(async () => {
  try {
    const m = await server.live_manifest({});
    if (!m || m.error) throw new Error((m && m.error) || 'no manifest');
    const mod = await import(new URL(m.draw_js.replace('draw.js', 'interpolate.js'), document.baseURI).href);
    await mod.mount(root, m, server);
  } catch (err) {
    root.textContent = 'The path scrubber could not start: ' + (err && err.message ? err.message : err);
    console.warn('vae-hub interpolate:', err);
  }
})();
"""

# Hands each new result's endpoints to the scrubber, in the page (no server round trip).
ON_RESULT = "(info) => { if (window.vaeInterp && info) window.vaeInterp.set(info); return []; }"


def build(engine: Engine) -> gr.HTML:
    """The scrubber panel (inside the tab); feed it with ``json.change(None, json, None, js=ON_RESULT)``."""

    def live_manifest(data: Any = None) -> dict:
        wait = data.get("wait") if isinstance(data, dict) and isinstance(data.get("wait"), str) else None
        try:
            return manifest(engine, wait if wait in engine.models else None)
        except Exception as e:
            return {"error": f"{type(e).__name__}: {str(e)[:160]}"}

    return gr.HTML("", html_template="<div class='vi-root'>Loading the path scrubber…</div>",
                   css_template=(WEB / "draw.css").read_text() + (WEB / "explore.css").read_text()
                   + (WEB / "interpolate.css").read_text(), js_on_load=JS_ON_LOAD, elem_id="interp-live",
                   server_functions=[live_manifest], apply_default_css=False)
