"""Hyperparameter sweeps with Optuna: the search space, the search (``python -m vae_hub.sweep``) and its report.

May import: ``vae_hub.checks``, ``vae_hub.cli``, ``vae_hub.files``, ``vae_hub.model``, ``vae_hub.data``,
``vae_hub.training``, ``vae_hub.hub``, ``vae_hub.evaluation`` (it sits at the top).
"""
