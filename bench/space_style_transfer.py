"""Does the Interpolate tab's style transfer read as the digit it should? The bundled MNIST classifier judges
both presets over seeds 0-9 (each seed picks other test digits):

- arithmetic with the plain VAE: decode z(thick 7) − z(thin 7) + z(thin 2); a success reads as a 2;
- cvae: a thick 7's code (given its label 7) decoded with every label 0-9; a success reads as that label.
  Style carries over when thick 7s decode to inkier digits than thin 7s do.

    python bench/space_style_transfer.py            # bundled pretrained/ weights

Prints the counts the page's sentences quote (space/vae_space/tabs/interpolate.py, MEASURED);
tests/test_space_handlers.py checks that they still hold.
"""

from __future__ import annotations

import argparse
import json
import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from vae_space.engine import Engine  # noqa: E402
from vae_space.tabs.interpolate import ARITH_PRESET, STYLE_PRESET, combine, restyle  # noqa: E402
from vae_space.tabs.shared import pick_input  # noqa: E402

from vae_hub.evaluation.classifier import load_classifier  # noqa: E402

ARITH_MODEL = "vae-z20"


@torch.inference_mode()
def measure(engine: Engine, seeds: range = range(10)) -> dict:
    """How often each preset reads as intended (counts over ``seeds``), and the ink carried by cvae's style."""
    clf = load_classifier()
    e = engine.need(ARITH_MODEL, "encoder")
    arith, style, targets, ink = 0, 0, 0, {"thick": [], "thin": []}
    for seed in seeds:
        _, _, decoded = combine(engine, e, [(s, None) for s in ARITH_PRESET], seed)
        arith += int(clf(decoded[3:]).argmax(1)) == 2
        for weight in ("thick", "thin"):
            x, label, _ = pick_input(engine, f"{weight} test digit 7", None, seed, 0)
            _, imgs = restyle(engine, x, label, list(range(10)))
            ink[weight].append(float(imgs.sum((1, 2, 3)).mean()))
            if weight + " test digit 7" == STYLE_PRESET:
                pred = clf(imgs).argmax(1)
                style += int(pred[2]) == 2
                targets += int((pred == torch.arange(10)).sum())
    n = len(seeds)
    return {"seeds": n, "arith": int(arith), "style": int(style), "all_targets": int(targets),
            "ink_thick": round(sum(ink["thick"]) / n, 1), "ink_thin": round(sum(ink["thin"]) / n, 1)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="as for space/app.py (default: the bundled pretrained/)")
    args = ap.parse_args(argv)
    engine = Engine.start(args.weights, variants=[ARITH_MODEL, "cvae"], background=False)
    r = measure(engine)
    print(json.dumps(r))
    print(f"arithmetic ({ARITH_MODEL}, {' − '.join(ARITH_PRESET[:2])} + {ARITH_PRESET[2]}): reads as a 2 in "
          f"{r['arith']}/{r['seeds']} seeds")
    print(f"cvae ({STYLE_PRESET} decoded as a 2): reads as a 2 in {r['style']}/{r['seeds']} seeds; every target: "
          f"{r['all_targets']}/{10 * r['seeds']}; mean ink of the decoded digits from thick 7s {r['ink_thick']} vs thin 7s "
          f"{r['ink_thin']} (pixels)")


if __name__ == "__main__":
    main()
