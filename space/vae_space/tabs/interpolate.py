"""Interpolate: in Gradio's page, the page's own view (web/interpolate.js, computed in the browser); on the server,
the endpoints for gradio_client: ``/interpolate`` and ``/arithmetic`` encode the endpoints and draw the strip, the
GIF and the path; ``/style_transfer`` decodes one digit's code with the class-conditional model as every digit.
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
from ..browser import PAGE_CSS, live_panel
from ..engine import Engine
from ..entries import Entry
from ..handler import Result, choice, handler, number, tmpfile
from ..ui import sketchpad, start_here
from .shared import SOURCES, map_model, map_picture, neighbours, pick_input, vote

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


def build(engine: Engine, q: dict) -> gr.Tab:
    """The tab: the page's own Interpolate view (web/interpolate.js: endpoints from the test digits or the drawing
    made on Draw & encode, both paths, the scrubber, arithmetic and cvae's style transfer, computed in the browser),
    and the /interpolate, /arithmetic and /style_transfer endpoints for gradio_client on hidden components."""
    encoders = engine.available("encoder")
    with gr.Tab("Interpolate", id="interpolate") as tab:
        start_here("pick two endpoints (test digits, or the digit drawn on Draw & encode) and drag the scrubber: "
                   "watch how the frames morph, and whether the path on the map crosses other digits' regions.")
        live_panel(engine, "interpolate.js", "Interpolation", "vi-root", css=PAGE_CSS, elem_id="interp-live")
        gr.Markdown(note(ARITH_NOTE) + "\n\n" + note(STYLE_NOTE), elem_classes=["note"])

        # The API as it always was, for gradio_client; hidden: the page above computes in the browser.
        with gr.Group(visible=False):
            model = gr.Dropdown(encoders, value=engine.default_encoder(), label="Model")
            steps = gr.Slider(3, 24, value=10, step=1, label="Frames")
            seed = gr.Number(0, precision=0, minimum=0, label="Test-digit pick (seed)")
            srcs = [gr.Dropdown(SOURCES, value=d, label=f"{slot}: source")
                    for slot, d in zip("ABC", ("test digit 3", "test digit 8", "test digit 7"))]
            pads = [sketchpad(f"Draw {slot}", f"pad-{slot}", (240, 240)) for slot in "ABC"]
            strip = gr.Image(label="Frames: linear (top), spherical (bottom)", format="png")
            gif = gr.Image(label="Animation (linear | spherical)", type="filepath")
            path_map = gr.Image(label="The path on the 2-D latent map", format="png")
            info = gr.JSON(label="endpoints, codes, frame boxes in the strip")
            s_src = gr.Dropdown(STYLE_SOURCES, value=STYLE_PRESET, label="Style from")
            s_seed = gr.Number(0, precision=0, minimum=0, label="Test-digit pick (seed)")
            s_fig = gr.Image(label="One digit's style decoded as every digit", format="png")
            s_info = gr.JSON(label="input and its cvae code")
            go_interp, go_arith, s_go = gr.Button("interpolate"), gr.Button("arithmetic"), gr.Button("style")
        interp_in = [model, srcs[0], pads[0], srcs[1], pads[1], steps, seed]
        arith_in = [model, srcs[0], pads[0], srcs[1], pads[1], srcs[2], pads[2], seed]
        go_interp.click(interpolate.ui(engine), interp_in,
                        Interpolated.outputs(strip=strip, animation=gif, path_map=path_map, info=info),
                        api_name="interpolate", **q)
        go_arith.click(arithmetic.ui(engine), arith_in, Arithmetic.outputs(equation=strip, path_map=path_map, info=info),
                       api_name="arithmetic", **q)
        s_go.click(style_transfer.ui(engine), [s_src, s_seed], StyleTransfer.outputs(figure=s_fig, info=s_info),
                   api_name="style_transfer", **q)
    return tab
