"""Files on disk, below everything else: atomic writes, safetensors files written with the usual mode, a model
folder's file names, and the strict weight loader (``weights.HubModel``: the safetensors header checked against a
meta-device build before anything is allocated; never pickle).

May import: ``vae_hub.checks`` only.
"""
