"""Honest evaluation: the protocol (what is computed, with which settings), the metrics, the bundled classifier, the
handwriting measures (Morpho-MNIST), disentanglement scores, the report (tables, cards, the docs' results block) and the
``python -m vae_hub.evaluate`` command.

May import: ``vae_hub.checks``, ``vae_hub.cli``, ``vae_hub.files``, ``vae_hub.model``, ``vae_hub.data``,
``vae_hub.training``, ``vae_hub.hub``.
"""
