"""``python -m vae_hub.onnx``: the ONNX exporter's command line, kept at its short name (``vae_hub.hub.onnx``)."""

import sys

from vae_hub.hub.onnx import main

if __name__ == "__main__":
    sys.exit(main())
