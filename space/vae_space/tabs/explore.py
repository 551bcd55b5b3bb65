"""Latent explorer: the 2-D (and 3-D) models' latent spaces, decoded under the cursor in the visitor's
browser (web/explore.js, onnxruntime-web on the models' ONNX decoders). The server keeps ``/manifold`` and
``/decode_point`` for API users, and ``decode_points``, the views' fallback when the runtime cannot load.
"""

from __future__ import annotations

from ..browser import live_panel, server_fn
from ..engine import Engine

MODELS = ("vae-z2", "vae-z2-corr", "vae-z3")

def build(engine: Engine) -> None:
    """The live panel (inside the tab): map, decoded point and grid, linked by one marker."""

    decode_points = server_fn("decode_points", lambda model, z, k: {"images": engine.decode_points(model, z, k)},
                              "model", "z", "k")
    # vae-z3 is prepared after the 2-D models: waiting for it means all three are there
    live_panel(engine, "explore.js", "The explorer", "vx-root", css=("draw.css", "explore.css"),
               server_functions=[decode_points], only=MODELS, wait="vae-z3" if "vae-z3" in engine.models else None,
               elem_id="explore-live")
