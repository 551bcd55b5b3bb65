"""vae-hub Space: see what a variational autoencoder learns.

    python space/app.py                      # bundled pretrained/ (or VAE_HUB_WEIGHTS / VAE_HUB_NAMESPACE)
    python space/app.py --weights runs       # a folder of variant folders written by train.py

Honours GRADIO_SERVER_NAME and GRADIO_SERVER_PORT. Every interaction is a named API endpoint
(see "Use via API" at the bottom of the page, or ``gradio_client.Client(url).view_api()``).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
# vae_space lives beside this file; vae_hub one level up in the repository, or beside it in a Space
for _p in (HERE.parent, HERE):
    if (_p / "vae_hub").is_dir() or (_p / "vae_space").is_dir():
        if str(_p) not in sys.path:
            sys.path.insert(0, str(_p))

import gradio as gr  # noqa: E402
from PIL import Image  # noqa: E402
from vae_space import browser  # noqa: E402
from vae_space.engine import BETAS, COLOR_MODELS, SOURCES, Engine  # noqa: E402
from vae_space.guard import SafeBlocks  # noqa: E402
from vae_space.tabs import beta, draw, explore, interpolate  # noqa: E402

from vae_hub.preprocess import MAX_PIXELS  # noqa: E402
from vae_hub.variants import VARIANTS  # noqa: E402

log = logging.getLogger("vae_space")

# PIL refuses to decode images beyond twice this (decompression bombs); the preprocessing refuses
# anything beyond MAX_PIXELS with a short message.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

CSS = """
/* only pictures made of digit tiles alone scale pixelated; figures with text scale smoothly */
.pixelated img { image-rendering: pixelated; }
/* figures are drawn on white: in dark mode they sit in a light frame instead of glaring edge to edge */
.dark .block img, .dark .vd-chart, .dark .vd-map, .dark .vd-nn, .dark .vx-map, .dark .vx-grid {
  background: #fff; border-radius: 8px; padding: 4px; box-sizing: border-box; }
#footer { font-size: 0.85em; opacity: 0.85; text-align: center; margin-top: 1em; }
#encode-summary { min-height: 6em; }
.note { font-size: 0.9em; }
"""
THEME = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate")
# Gradio's image editor opens on its "image" tool and asks the user to pick the brush first: pick it for
# them on every pad as it appears (pads in other tabs render later). Harmless if the markup changes.
JS = """
() => {
  const pick = () => document.querySelectorAll('.vae-pad button[aria-label="Brush"]').forEach((b) => {
    if (!b.dataset.vaePicked) { b.dataset.vaePicked = "1"; b.click(); }
  });
  // Output pictures get their component's label as alt text (Gradio leaves it empty).
  const alt = () => document.querySelectorAll('.block img:not([alt]), .block img[alt=""]').forEach((img) => {
    const block = img.closest('.block');
    const cls = block ? Array.from(block.classList).find((c) => c.startsWith('alt-')) : null;
    const label = block && block.querySelector('[data-testid="block-label"]');
    const text = cls ? decodeURIComponent(cls.slice(4)) : (label ? label.textContent.trim() : '');
    if (text) img.alt = text;
  });
  new MutationObserver(() => { pick(); alt(); }).observe(document.body, { childList: true, subtree: true });
  pick();
  alt();
}
"""
PAD_SIZE = (400, 400)
BIG = ["download", "fullscreen"]  # corner buttons on figures (no "share")


def sketchpad(label: str, elem_id: str, size: tuple[int, int] = PAD_SIZE, visible: bool = True) -> gr.Sketchpad:
    """A black pen with about MNIST's stroke-to-digit proportion on this canvas; one layer, no tools."""
    return gr.Sketchpad(label=label, elem_id=elem_id, elem_classes=["vae-pad"], canvas_size=size, height=size[1] + 60,
                        type="numpy", image_mode="RGBA", layers=False, transforms=(), buttons=[],
                        brush=gr.Brush(default_size=max(4, size[0] // 24), colors=["#000000"], color_mode="fixed"),
                        fixed_canvas=True, visible=visible)


def pad_when_drawing(source: gr.Dropdown, pad: gr.Sketchpad) -> None:
    """A pad opens only when its input's source is "my drawing"; test digits need none."""
    source.change(lambda s: gr.update(visible=s == "my drawing"), source, pad, api_visibility="private",
                  show_progress="hidden")


def image(label: str, **kw) -> gr.Image:
    """An output picture: lossless PNG (the tests compare pixels), no upload, download/fullscreen only.
    Figures carry their own titles, so Gradio's floating label (which covers the top of the image) is off
    unless asked for; the label still names the image for screen readers and the API page."""
    kw.setdefault("show_label", False)
    kw.setdefault("format", "png")
    kw.setdefault("interactive", False)
    kw.setdefault("buttons", BIG)
    # Gradio renders no label text when it is hidden and leaves the <img> alt empty: the page script
    # reads the label back from this class and sets it as the alt text
    kw["elem_classes"] = [*kw.get("elem_classes", []), "alt-" + quote(label, safe="")]
    return gr.Image(label=label, **kw)


# One line at the top of each tab: what to do, and what to look for.
START = {
    "interpolate": "press **Interpolate A → B** (or pick other test digits): look at how the frames morph, and "
                   "whether the path on the map crosses other digits' regions.",
    "beta": "press **Compare**: as β grows, watch the reconstruction blur and the KL bars vanish, one dimension after another.",
    "generate": "press **Sample** for new digits from the prior (each press, a new seed); pick a digit for the "
                "conditional model; below, see which codes control colour.",
    "models": "pick a variant to read its card: what it is, how it was trained, its test numbers and where to download it.",
}


def start_here(text: str) -> None:
    gr.Markdown(f"**Start here:** {text}", elem_classes=["note"])


def note_box(text: str | None) -> None:
    """A highlighted note (why a section is limited), only when there is something to say."""
    if text:
        gr.Markdown(text, elem_classes=["note"])


def build_demo(engine: Engine, live_slots: int = 2, model_slots: int = 1) -> gr.Blocks:
    encoders = engine.available("encoder")
    enc_default = engine.default_encoder()
    maps2d = engine.available("map2d")
    every = engine.available("any")
    colors = engine.available("color")
    # Worker slots: the live drawing/slider updates have their own (one per core), so a β comparison or
    # a tab being filled never queues in front of the feedback to a stroke; the heavier button actions
    # share fewer slots, so under load they wait and the encoder keeps the CPU (bench/space_latency.py).
    q = dict(concurrency_id="models", concurrency_limit=model_slots)
    live = dict(concurrency_id="live", concurrency_limit=live_slots)
    h = _UI(engine)
    gr.set_static_paths(browser.static_paths())  # the browser's scripts, runtime and model exports

    # delete_cache: every 10 min, drop cached output files older than 30 min (each drawing makes new ones)
    with SafeBlocks(title="vae-hub: what a VAE learns", delete_cache=(600, 1800)) as demo:

        def on_visit(tab: gr.Tab, fn: Callable, inputs: list | None, outputs: list | gr.components.Component) -> None:
            """Fill a section the first time its tab is opened (not on page load: most visitors open one
            or two tabs); quietly empty if its model is missing, the tab's note says why."""
            outs = outputs if isinstance(outputs, list) else [outputs]
            seen = gr.State(False)
            quiet = _quiet(fn, len(outs))

            def run(done: bool, *args: Any) -> tuple:
                if done:
                    return (*(gr.skip() for _ in outs), True)
                got = quiet(*args)
                return (*(got if len(outs) > 1 else (got,)), True)

            tab.select(run, [seen, *(inputs or [])], [*outs, seen], api_visibility="private", show_progress="hidden",
                       **q)

        gr.Markdown("# vae-hub · see what a variational autoencoder learns\n"
                    "One family of VAEs trained on MNIST: draw a digit and watch it being encoded, walk between "
                    "digits, compare β values side by side, explore the latent space and sample.")
        with gr.Tabs(overflow_behavior="wrap"):  # on phones the tabs wrap onto more rows: none hidden in a menu
            # ---------------------------------------------------------- 1. draw & encode
            with gr.Tab("Draw & encode", id="draw"):
                draw.build(engine, h.encode, live)

            # ---------------------------------------------------------- 2. interpolate
            with gr.Tab("Interpolate", id="interpolate") as t_interp:
                start_here(START["interpolate"])
                gr.Markdown("Pick two endpoints — draw them or take test digits — and walk between their codes. "
                            "**Linear** moves in a straight line; **spherical** (slerp) follows the arc between "
                            "the two codes, which stays where Gaussian codes usually are. Or switch to latent "
                            "**arithmetic**: decode z(A) − z(B) + z(C).")
                with gr.Row():
                    ip_model = gr.Dropdown(encoders, value=enc_default, label="Model", interactive=bool(encoders))
                    mode = gr.Radio(["Interpolate A → B", "Arithmetic A − B + C"], value="Interpolate A → B", label="Mode")
                    steps = gr.Slider(3, 24, value=10, step=1, label="Frames")
                    seed = gr.Number(0, precision=0, minimum=0, label="Test-digit pick (seed)")
                    reroll = gr.Button("Other test digits", scale=0)
                srcs, pads, cols = [], [], []
                with gr.Row():
                    for slot, default in zip("ABC", ("test digit 3", "test digit 8", "test digit 7")):
                        with gr.Column(visible=slot != "C", min_width=220) as col:
                            src = gr.Dropdown(SOURCES, value=default, label=f"{slot}: source")
                            p = sketchpad(f"Draw {slot}", f"pad-{slot}", (240, 240), visible=default == "my drawing")
                            pad_when_drawing(src, p)
                            p.change(lambda: "my drawing", None, src, api_visibility="private", show_progress="hidden")
                        srcs.append(src)
                        pads.append(p)
                        cols.append(col)
                with gr.Row():
                    go_interp = gr.Button("Interpolate A → B", variant="primary")
                    go_arith = gr.Button("Compute A − B + C", variant="primary", visible=False)
                    preset = gr.Button("Try: thick 7 − thin 7 + thin 2", scale=0)
                gr.Markdown("*Style transfer by arithmetic:* a thick 7 minus a thin 7 is roughly \"thickness\"; added "
                            "to a thin 2 it gives a bolder stroke. Expect it to keep some of the 7's shape too: these "
                            "unconditional models do not hold style apart from the digit's identity (the class-"
                            "conditional cvae on the Generate tab does: its code is style alone).",
                            elem_classes=["note"])
                scrub = interpolate.build(engine)
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        strip = image(label="Frames: linear (top), spherical (bottom)", elem_id="interp-strip")
                        gif = image(label="Animation (linear | spherical)", elem_id="interp-gif", show_label=True,
                                    type="filepath", height=220)
                    with gr.Column(scale=2):
                        ip_map = image(label="The path on the 2-D latent map", elem_id="interp-map")
                with gr.Accordion("Numbers", open=False):
                    ip_json = gr.JSON(label="endpoints, codes, frame boxes in the strip")
                interp_in = [ip_model, srcs[0], pads[0], srcs[1], pads[1], steps, seed]
                interp_out = [strip, gif, ip_map, ip_json]
                go_interp.click(h.interpolate, interp_in, interp_out, api_name="interpolate", **q)
                arith_in = [ip_model, srcs[0], pads[0], srcs[1], pads[1], srcs[2], pads[2], seed]
                go_arith.click(h.arithmetic, arith_in, [strip, ip_map, ip_json], api_name="arithmetic", **q)
                preset.click(lambda: ("Arithmetic A − B + C", "thick test digit 7", "thin test digit 7", "thin test digit 2"),
                             None, [mode, *srcs], api_visibility="private", show_progress="hidden").then(
                    h.arithmetic, arith_in, [strip, ip_map, ip_json], api_visibility="private", **q)
                mode.change(_mode_visibility, mode, [cols[2], go_interp, go_arith, gif, strip, scrub],
                            api_visibility="private", show_progress="hidden")
                bump = reroll.click(lambda s: int(s or 0) + 1, seed, seed, api_visibility="private", show_progress="hidden")
                bump.then(_run_mode(h), [mode, *arith_in, steps], interp_out, api_visibility="private", **q)
                on_visit(t_interp, h.interpolate, interp_in, interp_out)
                ip_json.change(None, ip_json, None, js=interpolate.ON_RESULT)

            # ---------------------------------------------------------- 3. beta comparison
            with gr.Tab("β comparison", id="beta") as t_beta:
                start_here(START["beta"])
                gr.Markdown("The same 10-D architecture trained with five weights β on the KL term. One input goes "
                            "through all of them: larger β buys a more compressed code — fewer dimensions in use, "
                            "blurrier reconstructions. The KL of each dimension shows which ones each β keeps alive; "
                            "the traversals show what those dimensions do.")
                note_box(engine.unavailable_note(BETAS, "The comparison runs"))
                have_beta = bool(engine.available("beta"))
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=260):
                        b_src = gr.Dropdown(SOURCES, value="random test digit", label="Input")
                        b_pad = sketchpad("Draw the input", "pad-beta", (280, 280), visible=False)
                        pad_when_drawing(b_src, b_pad)
                        b_seed = gr.Number(0, precision=0, minimum=0, label="Test-digit pick (seed)")
                        b_go = gr.Button("Compare", variant="primary", interactive=have_beta)
                        b_inp = image(label="Input (28×28)", height=180, show_label=True,
                                      elem_classes=["pixelated"])
                    with gr.Column(scale=5):
                        b_fig = image(label="Reconstruction, KL per dimension and traversals for each β",
                                      elem_id="beta-figure")
                        beta.build(engine)
                        b_table = gr.Dataframe(label="Test metrics from each model's card, and this input's numbers",
                                               interactive=False, wrap=True)
                with gr.Accordion("Numbers", open=False):
                    b_json = gr.JSON(label="KL per dimension for each β")
                b_out = [b_inp, b_fig, b_table, b_json]
                b_go.click(h.compare_betas, [b_src, b_pad, b_seed], b_out, api_name="compare_betas", **q)
                drawn = b_pad.change(lambda: "my drawing", None, b_src, api_visibility="private", show_progress="hidden")
                drawn.then(_quiet(h.compare_betas, 4), [b_src, b_pad, b_seed], b_out, api_visibility="private",
                           trigger_mode="always_last", **q)
                on_visit(t_beta, h.compare_betas, [b_src, b_pad, b_seed], b_out)
                b_json.change(None, b_json, None, js=beta.ON_RESULT)

            # ---------------------------------------------------------- 4. latent explorer
            with gr.Tab("Latent explorer", id="explore") as t_explore:
                gr.Markdown("**Start here:** move the mouse over the map or the grid (or drag a finger): the point under "
                            "it is decoded at once, in your browser. The map shows where the test digits' codes lie; "
                            "the grid shows what the decoder makes of every point. Look for where one digit turns "
                            "into another.", elem_classes=["note"])
                note_box(engine.unavailable_note(["vae-z2", "vae-z3", "vae-z2-corr"], "The explorer runs"))
                explore.build(engine)
                # The same views for API users: decoded grids and points, computed on the server.
                with gr.Group(visible=False):
                    ex_model = gr.Dropdown(maps2d, value=maps2d[0] if maps2d else None, label="2-D model")
                    z1, z2 = gr.Number(0.0, label="z₁"), gr.Number(0.0, label="z₂")
                    grid_n, span = gr.Number(15, label="grid size"), gr.Number(2.5, label="span")
                    grid, point, ex_map = image(label="grid"), image(label="decoded point"), image(label="map")
                gr.Button(visible=False).click(h.manifold, [ex_model, grid_n, span], grid, api_name="manifold", **q)
                gr.Button(visible=False).click(h.decode_point, [ex_model, z1, z2], [point, ex_map],
                                               api_name="decode_point", **live)

                gr.Markdown("### Slices of the 3-D model\n`vae-z3` has one more dimension than a map shows: "
                            "fix z₃ and decode the (z₁, z₂) plane. Right: the test digits whose z₃ is near the slice.")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=260):
                        z3 = gr.Slider(-3, 3, value=0.0, step=0.1, label="z₃", interactive="vae-z3" in encoders)
                        s_n = gr.Slider(5, 20, value=12, step=1, label="Grid size")
                    with gr.Column(scale=2):
                        s_grid = image(label="vae-z3 decoded at z₃",
                                       elem_classes=["pixelated"])
                    with gr.Column(scale=2):
                        s_map = image(label="Test digits near the slice")
                gr.on([z3.change, s_n.release], h.slice3d, [z3, s_n], [s_grid, s_map], api_name="slice3d",
                      trigger_mode="always_last", show_progress="hidden", **q)
                on_visit(t_explore, h.slice3d, [z3, s_n], [s_grid, s_map])

                gr.Markdown("### A correlated prior tilts the map\n`vae-z2-corr` is trained with the exact KL to "
                            "N(0, Σ), Σ = [[1, 0.4], [0.4, 0.5]]: the test codes follow the tilted prior, while "
                            "`vae-z2`'s follow the round one.")
                with gr.Row():
                    c_iso = image(label="vae-z2: isotropic prior")
                    c_cor = image(label="vae-z2-corr: correlated prior")
                c_md = gr.Markdown()
                c_btn = gr.Button("Redraw", visible=False)  # the API's handle on this section
                c_btn.click(h.corr_maps, None, [c_iso, c_cor, c_md], api_name="corr_maps", **q)
                on_visit(t_explore, h.corr_maps, None, [c_iso, c_cor, c_md])

            # ---------------------------------------------------------- 5. generate
            with gr.Tab("Generate", id="generate") as t_gen:
                start_here(START["generate"])
                with gr.Row(equal_height=False):
                    with gr.Column(min_width=300):
                        gr.Markdown("### Prior samples\nz ~ p(z), decoded.")
                        g_model = gr.Dropdown(every, value=enc_default or (every[0] if every else None), label="Model",
                                              interactive=bool(every))
                        with gr.Row():
                            g_n = gr.Slider(4, 100, value=36, step=1, label="Samples")
                            g_seed = gr.Number(0, precision=0, minimum=0, label="Seed (Enter to reuse)")
                        g_go = gr.Button("Sample", variant="primary", interactive=bool(every))
                        g_img = image(label="Samples", elem_classes=["pixelated"])
                    with gr.Column(min_width=300):
                        gr.Markdown("### Pick a digit\n`cvae` gets the label, so its code holds only style: the "
                                    "same styles in every row.")
                        note_box(engine.unavailable_note(["cvae"], "This section needs it; it runs"))
                        has_cvae = "cvae" in every
                        c_digit = gr.Radio(["all"] + [str(d) for d in range(10)], value="all", label="Digit",
                                           interactive=has_cvae)
                        with gr.Row():
                            c_n = gr.Slider(1, 20, value=8, step=1, label="Samples per digit", interactive=has_cvae)
                            c_seed = gr.Number(0, precision=0, minimum=0, label="Seed", interactive=has_cvae)
                        c_img = image(label="Conditional samples",
                                      elem_classes=["pixelated"])
                gr.on([g_model.change, g_n.release, g_seed.submit], h.generate, [g_model, g_n, g_seed], g_img,
                      api_name="generate", **q)
                # each press draws new samples: a fresh seed, shown in the field so a result can be reproduced
                g_go.click(_new_seed, None, g_seed, api_visibility="private", show_progress="hidden").then(
                    h.generate, [g_model, g_n, g_seed], g_img, api_visibility="private", **q)
                on_visit(t_gen, h.generate, [g_model, g_n, g_seed], g_img)
                gr.on([c_digit.change, c_n.release, c_seed.change], h.conditional, [c_digit, c_n, c_seed], c_img,
                      api_name="conditional", **q)
                on_visit(t_gen, h.conditional, [c_digit, c_n, c_seed], c_img)

                gr.Markdown("### Colour: what do the codes control?\nThe coloured-MNIST models around one test digit's "
                            "code: each continuous dimension swept from −2.5 to 2.5, each categorical variable set to "
                            "each of its values. The table measures how much each sweep changes the stroke colour "
                            "and the digit's shape.")
                note_box(engine.unavailable_note(COLOR_MODELS, "This section runs"))
                with gr.Row(equal_height=False):
                    with gr.Column(scale=2, min_width=320):
                        k_model = gr.Dropdown(colors, value=colors[-1] if colors else None, label="Colour model",
                                              interactive=bool(colors))
                        k_seed = gr.Number(0, precision=0, minimum=0, label="Test digit (seed)", interactive=bool(colors))
                        k_table = gr.Dataframe(label="What each variable controls", interactive=False, wrap=True,
                                               headers=["variable", "kind", "colour change", "shape change", "controls"])
                    with gr.Column(scale=3):
                        k_img = image(label="Sweeps")
                gr.on([k_model.change, k_seed.change], h.color_codes, [k_model, k_seed], [k_img, k_table],
                      api_name="color_codes", **q)
                on_visit(t_gen, h.color_codes, [k_model, k_seed], [k_img, k_table])

            # ---------------------------------------------------------- 6. models
            with gr.Tab("Models", id="models") as t_models:
                start_here(START["models"])
                gr.Markdown("### All variants")
                gr.Dataframe(engine.overview(), interactive=False, wrap=True,
                             column_widths=["150px", "100px", "80px", "70px", "440px"])  # px: a phone scrolls sideways
                m_variant = gr.Dropdown(list(VARIANTS), value="vae-z20", label="Variant")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        m_card = gr.Markdown(label="Model card")
                    with gr.Column(scale=2):
                        m_download = gr.Markdown()
                        m_metrics = gr.Dataframe(label="Test metrics", interactive=False)
                        m_figs = gr.Gallery(label="Figures from the card", columns=2, height="auto", object_fit="contain",
                                            interactive=False)
                m_variant.change(engine.model_card, m_variant, [m_card, m_metrics, m_figs, m_download],
                                 api_name="model_card", **q)
                on_visit(t_models, engine.model_card, [m_variant], [m_card, m_metrics, m_figs, m_download])

        gr.api(engine.status, api_name="status")  # loaded / missing variants and the weight source, as JSON
        footer = gr.Markdown(engine.footer(), elem_id="footer")
        demo.load(engine.footer, None, footer, api_visibility="private")
    return demo


def _quiet(fn: Callable, n_outputs: int) -> Callable:
    """For automatic triggers (page load, switching model on an empty canvas): show nothing rather than
    an error toast when the input is not there yet. Explicit actions use the handler itself."""

    def run(*args: Any) -> Any:
        try:
            return fn(*args)
        except gr.Error:
            return tuple(gr.skip() for _ in range(n_outputs)) if n_outputs > 1 else gr.skip()

    run.__name__ = f"{getattr(fn, '__name__', 'handler')}_quiet"
    return run


def _new_seed() -> int:
    return secrets.randbelow(1_000_000)


def _mode_visibility(mode: str) -> tuple:
    arith = mode.startswith("Arithmetic")
    label = "A − B + C: reconstructions of A, B, C and the decoded result" if arith else \
        "Frames: linear (top), spherical (bottom)"
    return (gr.update(visible=arith), gr.update(visible=not arith), gr.update(visible=arith),
            gr.update(visible=not arith), gr.update(label=label), gr.update(visible=not arith))


class _UI:
    """The engine's handlers as the UI calls them: image arrays handed to Gradio as PNG files."""

    NAMES = ("encode", "interpolate", "arithmetic", "compare_betas", "manifold", "decode_point", "slice3d",
             "corr_maps", "generate", "conditional", "color_codes")

    def __init__(self, engine: Engine):
        for name in self.NAMES:
            setattr(self, name, engine.as_files(getattr(engine, name)))


def _run_mode(ui: _UI) -> Callable:
    """After a re-roll: rerun whichever mode is showing."""

    def run(mode: str, model: str, a_src: str, a_pad: Any, b_src: str, b_pad: Any, c_src: str, c_pad: Any,
            seed: int, steps: int) -> tuple:
        if str(mode).startswith("Arithmetic"):
            row, m, info = ui.arithmetic(model, a_src, a_pad, b_src, b_pad, c_src, c_pad, seed)
            return row, gr.skip(), m, info
        return ui.interpolate(model, a_src, a_pad, b_src, b_pad, steps, seed)

    return run


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", metavar="DIR", default=None,
                    help="a folder of variant folders (as train.py writes); default: $VAE_HUB_WEIGHTS, then the Hub "
                         "namespace $VAE_HUB_NAMESPACE, then the bundled pretrained/")
    ap.add_argument("--concurrency", type=int, default=int(os.environ.get("VAE_SPACE_CONCURRENCY", 2)),
                    help="live requests (drawing, sliders) computed at once (default 2: one per core of a basic Space)")
    ap.add_argument("--model-concurrency", type=int, default=int(os.environ.get("VAE_SPACE_MODEL_CONCURRENCY", 1)),
                    help="button actions (interpolate, β comparison, sampling, tabs) computed at once (default 1)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    engine = Engine.start(args.weights)
    demo = build_demo(engine, args.concurrency, args.model_concurrency)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=256)
    # SIGTERM (a Space stopping, `kill`) exits like Ctrl+C, so the atexit clean-up removes our temp folders
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Every API call is a new session holding a copy of the page's state (~340 kB): keep the newest few
    # hundred, not Gradio's default 10,000 (bench/space_memory.py shows memory flat over 5,000 calls).
    sessions = int(os.environ.get("VAE_SPACE_SESSIONS", 256))
    demo.launch(theme=THEME, css=CSS, js=JS, max_file_size="25mb", footer_links=["api", "gradio"],
                state_session_capacity=sessions)


if __name__ == "__main__":
    main()
