"""The model: its config and the registry of variants (data, not code), the latent distributions, the VAE itself
(``encode`` returns a distribution, ``decode`` an image), its training objectives, and the from-scratch layer kit
(``scratch/``: every backward pass and Adam written by hand).

May import: ``vae_hub.checks``, ``vae_hub.files``.
"""
