"""The vae-hub Space: model state (engine, entries, prepare), rendering (plots), the Gradio app (app, run by space/app.py)."""
