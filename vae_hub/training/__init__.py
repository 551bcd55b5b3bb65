"""Training: the loop (``fit``, resumable bit for bit from its checkpoint), the numeric precision chosen by a probe,
the figures written into a trained model's folder, and experiment tracking.

May import: ``vae_hub.checks``, ``vae_hub.cli``, ``vae_hub.files``, ``vae_hub.model``, ``vae_hub.data``.
"""
