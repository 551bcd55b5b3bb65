"""``python -m vae_hub.sweep``: the search's command line (``vae_hub.sweep.search``)."""

import sys

import torch

from vae_hub.sweep.search import main

torch.set_num_threads(torch.get_num_threads())
sys.exit(main())
