"""``python -m vae_hub.evaluate``: the evaluation's command line, kept at its short name (``vae_hub.evaluation.evaluate``)."""

import sys

from vae_hub.evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
