"""The vae-hub Space: model loading and cached state (engine), pixel rendering (plots), UI (space/app.py)."""
