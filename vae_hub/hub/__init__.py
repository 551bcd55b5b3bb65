"""Model folders and the Hub: finding and reading folders, model cards, ONNX export, the training codes' density,
writing a trained model's folder (``save``), and loading and pushing through ``huggingface_hub`` (``repo``).

May import: ``vae_hub.checks``, ``vae_hub.cli``, ``vae_hub.files``, ``vae_hub.model``, ``vae_hub.data``,
``vae_hub.training``.
"""
