"""Interpolate: the server encodes the endpoints and draws the strip, the GIF and the path (``/interpolate``,
``/arithmetic``); the page then scrubs along the path in the browser (web/scrubber.js): a slider decodes
each point of the linear and the spherical path with the model's ONNX decoder, and moves it on the map.
Style transfer with the class-conditional model (``/style_transfer``): one digit's code, decoded as every digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw

from .. import plots as P
from ..browser import live_panel
from ..engine import Engine, Entry
from ..handler import Result, choice, handler, number, tmpfile
from ..ui import image, note_box, on_visit, pad_when_drawing, sketchpad, start_here, wide_hint
from .shared import SOURCES, map_model, map_picture, neighbours, pick_input, vote

# Hands each new result's endpoints to the scrubber, in the page (no server round trip); a result that comes
# before the scrubber has loaded waits for it.
ON_RESULT = ("(info) => { if (!info) return []; if (window.vaeInterp) window.vaeInterp.set(info); "
             "else window.vaeInterpPending = info; return []; }")
STYLE_MODEL = "cvae"
STYLE_SOURCES = [s for s in SOURCES if "test digit " in s and s != "random test digit"]  # a label is needed
ARITH_PRESET = ("thick test digit 7", "thin test digit 7", "thin test digit 2")
STYLE_PRESET = "thick test digit 7"
# Measured by bench/space_style_transfer.py (the bundled classifier, seeds 0-9, the bundled weights);
# tests/test_space_handlers.py measures again and fails when these no longer hold.
MEASURED = {"seeds": 10, "arith": 3, "style": 10, "all_targets": 97, "ink_thick": 144.6, "ink_thin": 69.6}
ARITH_NOTE = ("*Style transfer by arithmetic:* a thick 7 minus a thin 7 is roughly \"thickness\"; added to a thin 2 "
              "it should give a bold 2. With `vae-z20` the result reads as a 2 in only {arith} of {seeds} seeds (the "
              "bundled digit classifier): these unconditional models do not hold style apart from the digit's "
              "identity, so the 7's shape comes along. The class-conditional model below does.")
STYLE_NOTE = ("`cvae` is given the label, so its code holds only the style. Encode a test digit with its own label, "
              "then decode the same code with every label: stroke weight and slant carry over. A thick 7 decoded as "
              "a 2 reads as a 2 in {style} of {seeds} seeds (the bundled digit classifier), and as the intended "
              "digit in {all_targets} of {n_all} decodings over all ten labels; the digits decoded from thick 7s "
              "carry about {ink_ratio:.0f}× the ink of those decoded from thin 7s.")


def note(template: str) -> str:
    """A sentence with the measured counts."""
    return template.format(**MEASURED, n_all=10 * MEASURED["seeds"], ink_ratio=MEASURED["ink_thick"] / MEASURED["ink_thin"])


@dataclass
class Interpolated(Result):
    strip: np.ndarray  # frames: linear (top), spherical (bottom)
    animation: str  # GIF file
    path_map: np.ndarray
    info: dict  # endpoints, codes, each frame's box in the strip


@dataclass
class Arithmetic(Result):
    equation: np.ndarray  # reconstructions of A, B, C and the decoded result
    path_map: np.ndarray
    info: dict


@dataclass
class StyleTransfer(Result):
    figure: np.ndarray  # the input, its reconstruction, and its code decoded as each digit
    info: dict


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    cos = (a @ b) / (a.norm() * b.norm()).clamp_min(1e-12)
    return torch.arccos(cos.clamp(-1, 1))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of two codes (White 2016): the angle and the norm both move smoothly.
    Exactly a at t=0 and b at t=1; linear when the codes are (anti)parallel or one is ~0."""
    omega = _angle(a, b)
    so = torch.sin(omega)
    if float(so) < 1e-6 or float(a.norm()) < 1e-6 or float(b.norm()) < 1e-6:
        return (1 - t)[:, None] * a + t[:, None] * b
    wa = torch.sin((1 - t) * omega) / so
    wb = torch.sin(t * omega) / so
    return wa[:, None] * a + wb[:, None] * b


@handler
def interpolate(engine: Engine, model: str, a_source: str, a_drawing: Any, b_source: str, b_drawing: Any,
                steps: int = 10, seed: int = 0) -> Interpolated:
    """Linear and spherical paths between two codes: a strip of frames, an animated GIF, the path on
    the 2-D map, and JSON with each frame's box in the strip."""
    e = engine.need(model, "encoder")
    steps = number(steps, 3, 24, "steps", integer=True)
    xa, _, da = pick_input(engine, a_source, a_drawing, seed, 0)
    xb, _, db = pick_input(engine, b_source, b_drawing, seed, 1)
    za, zb = e.model.encode(xa).mean[0], e.model.encode(xb).mean[0]
    t = torch.linspace(0, 1, steps)
    lin = (1 - t)[:, None] * za + t[:, None] * zb
    sph = slerp(za, zb, t)
    frames = torch.sigmoid(e.model.decode(torch.cat([lin, sph])))
    f_lin, f_sph = P.to_rgb(frames[:steps]), P.to_rgb(frames[steps:])
    strip, boxes = P.frame_strip({"linear": f_lin, "spherical": f_sph}, k=3,
                                 title=f"{model}: {da} → {db}, {steps} frames")
    name = map_model(e)

    def paint(ov: P.Overlay) -> None:
        if name == model:
            p_lin, p_sph, how = lin.numpy(), sph.numpy(), f"the path in {model}'s latent space"
        else:  # where the 2-D model puts the decoded frames: a view of the path, not the path itself
            enc = engine.models[name].model.encode(frames).mean.numpy()
            p_lin, p_sph, how = enc[:steps], enc[steps:], f"(the frames, re-encoded by {name})"
        ov.path(p_lin, P.BLUE, 2.4)
        ov.path(p_sph, P.ORANGE, 2.4)
        ov.marker(p_lin[0], P.INK, 5, "A")
        ov.marker(p_lin[-1], P.INK, 5, "B")
        ov.note("blue: linear · orange: spherical")
        ov.note(how)

    info = {"model": model, "a": da, "b": db, "steps": steps, "t": t.round(decimals=4).tolist(),
            "z_a": za.round(decimals=4).tolist(), "z_b": zb.round(decimals=4).tolist(), "tiles": boxes,
            "omega_degrees": round(float(_angle(za, zb)) * 180 / math.pi, 2)}
    return Interpolated(strip, str(_gif(f_lin, f_sph)), map_picture(engine, name, paint, "The path map"), info)


def _gif(f_lin: np.ndarray, f_sph: np.ndarray, k: int = 5) -> Path:
    """Linear | spherical side by side, there and back; greyscale GIF frames are exact."""
    side, gap, head = 28 * k, 12, 24
    frames = []
    for a, b in zip(f_lin, f_sph):
        img = Image.new("L", (2 * side + gap, side + head), 255)
        img.paste(Image.fromarray(P.upscale(a[:, :, 0], k)), (0, head))
        img.paste(Image.fromarray(P.upscale(b[:, :, 0], k)), (side + gap, head))
        d = ImageDraw.Draw(img)
        d.text((side / 2, head / 2), "linear", font=P.font(14), fill=60, anchor="mm")
        d.text((side + gap + side / 2, head / 2), "spherical", font=P.font(14), fill=60, anchor="mm")
        frames.append(img)
    seq = frames + frames[-2:0:-1]
    durations = [700 if i in (0, len(frames) - 1) else 110 for i in range(len(seq))]
    path = tmpfile(".gif")
    seq[0].save(path, save_all=True, append_images=seq[1:], duration=durations, loop=0, optimize=False)
    return path


@handler
def arithmetic(engine: Engine, model: str, a_source: str, a_drawing: Any, b_source: str, b_drawing: Any,
               c_source: str, c_drawing: Any, seed: int = 0) -> Arithmetic:
    """Latent arithmetic: decode(z_a − z_b + z_c), with the vectors on the 2-D map."""
    e = engine.need(model, "encoder")
    descs, allz, decoded = combine(engine, e, [(a_source, a_drawing), (b_source, b_drawing), (c_source, c_drawing)],
                                   seed)
    zr = allz[3]
    imgs = P.to_rgb(decoded)
    row = P.equation([imgs[0], "−", imgs[1], "+", imgs[2], "=", imgs[3]], k=4)
    top, votes = vote(engine, neighbours(e, zr.numpy())[0])
    name = map_model(e)

    def paint(ov: P.Overlay) -> None:
        pts = allz.numpy() if name == model else engine.models[name].model.encode(decoded).mean.numpy()
        ov.arrow(pts[1], pts[0], P.BLUE)
        ov.arrow(pts[2], pts[3], P.ORANGE)
        for p, label in zip(pts, "ABC="):
            ov.marker(p, P.INK if label != "=" else P.RED, 5, label if label != "=" else "A−B+C")
        ov.note("blue: B→A · orange: the same step from C")
        if name != model:
            ov.note(f"(the decoded images, re-encoded by {name})")

    info = {"model": model, "a": descs[0], "b": descs[1], "c": descs[2], "z_result": zr.round(decimals=4).tolist(),
            "knn_label": top, "knn_votes": votes}
    return Arithmetic(row, map_picture(engine, name, paint, "The map"), info)


def combine(engine: Engine, e: Entry, inputs: list[tuple[Any, Any]], seed: Any) -> tuple[list[str], torch.Tensor,
                                                                                            torch.Tensor]:
    """A − B + C in e's latent space: the inputs' descriptions, the codes [z_a, z_b, z_c, z_a − z_b + z_c]
    and those four decoded (4, 1, 28, 28)."""
    xs, descs = [], []
    for slot, (src, drw) in enumerate(inputs):
        x, _, d = pick_input(engine, src, drw, seed, slot)
        xs.append(x)
        descs.append(d)
    z = e.model.encode(torch.cat(xs)).mean
    allz = torch.cat([z, (z[0] - z[1] + z[2])[None]])
    return descs, allz, torch.sigmoid(e.model.decode(allz))


def restyle(engine: Engine, x: torch.Tensor, label: int, targets: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """cvae: x's code given its own label, decoded with each target label -> (code (1, z), images (T, 1, 28, 28))."""
    m = engine.need(STYLE_MODEL, "any").model
    z = m.encode(x, torch.tensor([label])).mean
    return z, torch.sigmoid(m.decode(z.repeat(len(targets), 1), torch.tensor(targets)))


@handler
def style_transfer(engine: Engine, source: str = STYLE_PRESET, seed: int = 0) -> StyleTransfer:
    """A test digit's style (cvae's code given its label) decoded as every digit 0-9."""
    source = choice(source, STYLE_SOURCES, "source")
    x, label, desc = pick_input(engine, source, None, seed, 0)
    z, imgs = restyle(engine, x, label, list(range(10)))
    head = P.labelled_tiles(P.to_rgb(torch.cat([x, imgs[label:label + 1]])), ["input", "its code"], k=3)
    row = P.labelled_tiles(P.to_rgb(imgs), [str(d) for d in range(10)], k=3, ncol=5)  # 2 rows: legible on a phone
    fig = P.with_header(P.hstack([head, row], gap=24), f"cvae: the style of {desc}, decoded as every digit", size=14)
    return StyleTransfer(fig, {"model": STYLE_MODEL, "input": desc, "label": label, "z": z[0].round(decimals=4).tolist()})


def _mode_visibility(mode: str) -> tuple:
    arith = mode.startswith("Arithmetic")
    label = "A − B + C: reconstructions of A, B, C and the decoded result" if arith else \
        "Frames: linear (top), spherical (bottom)"
    return (gr.update(visible=arith), gr.update(visible=not arith), gr.update(visible=arith),
            gr.update(visible=not arith), gr.update(label=label), gr.update(visible=not arith),
            gr.update(visible=arith))


def build(engine: Engine, q: dict) -> gr.Tab:
    """The tab: endpoints A, B (and C), the two modes, the scrubber, and cvae's style transfer."""
    encoders = engine.available("encoder")
    ui_interp, ui_arith = interpolate.ui(engine), arithmetic.ui(engine)
    with gr.Tab("Interpolate", id="interpolate") as tab:
        start_here("press **Interpolate A → B** (or pick other test digits): look at how the frames morph, and "
                   "whether the path on the map crosses other digits' regions.")
        gr.Markdown("Pick two endpoints — draw them or take test digits — and walk between their codes. "
                    "**Linear** moves in a straight line; **spherical** (slerp) follows the arc between "
                    "the two codes, which stays where Gaussian codes usually are. Or switch to latent "
                    "**arithmetic**: decode z(A) − z(B) + z(C).")
        with gr.Row():
            model = gr.Dropdown(encoders, value=engine.default_encoder(), label="Model", interactive=bool(encoders))
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
            style_preset = gr.Button("Try: a thick 7's style as every digit (cvae)", scale=0,
                                     interactive=STYLE_MODEL in engine.models)  # the section below
        arith_note = gr.Markdown(note(ARITH_NOTE), elem_classes=["note"], visible=False)  # arithmetic mode only
        scrub = live_panel(engine, "scrubber.js", "The path scrubber", "vi-root",
                           css=("draw.css", "explore.css", "interpolate.css"), elem_id="interp-live")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                strip = image(label="Frames: linear (top), spherical (bottom)", elem_id="interp-strip")
                wide_hint()
                gif = image(label="Animation (linear | spherical)", elem_id="interp-gif", show_label=True,
                            type="filepath", height=220)
            with gr.Column(scale=2):
                path_map = image(label="The path on the 2-D latent map", elem_id="interp-map")
        with gr.Accordion("Numbers", open=False):
            info = gr.JSON(label="endpoints, codes, frame boxes in the strip")
        interp_in = [model, srcs[0], pads[0], srcs[1], pads[1], steps, seed]
        interp_out = Interpolated.outputs(strip=strip, animation=gif, path_map=path_map, info=info)
        arith_in = [model, srcs[0], pads[0], srcs[1], pads[1], srcs[2], pads[2], seed]
        arith_out = Arithmetic.outputs(equation=strip, path_map=path_map, info=info)
        go_interp.click(ui_interp, interp_in, interp_out, api_name="interpolate", **q)
        go_arith.click(ui_arith, arith_in, arith_out, api_name="arithmetic", **q)
        preset.click(lambda: ("Arithmetic A − B + C", *ARITH_PRESET), None, [mode, *srcs], api_visibility="private",
                     show_progress="hidden").then(ui_arith, arith_in, arith_out, api_visibility="private", **q)
        mode.change(_mode_visibility, mode, [cols[2], go_interp, go_arith, gif, strip, scrub, arith_note],
                    api_visibility="private", show_progress="hidden")

        def rerun(mode: str, *args: Any) -> tuple:
            """After a re-roll: rerun whichever mode is showing."""
            *arith_args, n = args
            if str(mode).startswith("Arithmetic"):
                r = ui_arith(*arith_args)
                return r[0], gr.skip(), r[1], r[2]
            m, a, pa, b, pb, _, _, s = arith_args
            return ui_interp(m, a, pa, b, pb, n, s)

        bump = reroll.click(lambda s: int(s or 0) + 1, seed, seed, api_visibility="private", show_progress="hidden")
        bump.then(rerun, [mode, *arith_in, steps], interp_out, api_visibility="private", **q)
        on_visit(tab, ui_interp, interp_in, interp_out, **q)
        info.change(None, info, None, js=ON_RESULT)

        gr.Markdown("### Style transfer with the class-conditional model\n" + note(STYLE_NOTE))
        has = STYLE_MODEL in engine.models
        note_box(engine.unavailable_note([STYLE_MODEL], "This section runs"))
        with gr.Row(equal_height=True):
            # wide enough for "thick test digit 7" on a phone: the row wraps instead of cutting the text
            s_src = gr.Dropdown(STYLE_SOURCES, value=STYLE_PRESET, label="Style from", interactive=has, min_width=240)
            s_seed = gr.Number(0, precision=0, minimum=0, label="Test-digit pick (seed)", interactive=has)
            s_go = gr.Button("Transfer the style", variant="primary", interactive=has, scale=0, min_width=180)
        # full width under its controls: a wide, short figure (beside them it collapsed on phones)
        s_fig = image(label="One digit's style decoded as every digit", elem_id="style-figure")
        with gr.Accordion("Numbers", open=False):
            s_info = gr.JSON(label="input and its cvae code")
        s_out = StyleTransfer.outputs(figure=s_fig, info=s_info)
        ui_style = style_transfer.ui(engine)
        gr.on([s_go.click, s_seed.submit], ui_style, [s_src, s_seed], s_out, api_name="style_transfer", **q)
        on_visit(tab, ui_style, [s_src, s_seed], s_out, **q)
        style_preset.click(lambda: STYLE_PRESET, None, s_src, api_visibility="private", show_progress="hidden").then(
            ui_style, [s_src, s_seed], s_out, api_visibility="private", **q)
    return tab
