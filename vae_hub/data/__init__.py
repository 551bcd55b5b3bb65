"""The data: MNIST splits through Hugging Face ``datasets`` (grey, binarized and randomly coloured inputs), and the
one preprocessing specification that turns a drawing into a 28×28 digit (shared with the browser's JavaScript).

May import: ``vae_hub.checks``, ``vae_hub.files``.
"""
