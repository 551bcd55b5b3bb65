"""vae-hub Space: see what a variational autoencoder learns (the app is ``vae_space.app``).

    python space/app.py                      # bundled pretrained/ (or VAE_HUB_WEIGHTS / VAE_HUB_NAMESPACE)
    python space/app.py --weights runs       # a folder of variant folders written by train.py

On a Space, vae_space/ and vae_hub/ sit beside this file; in a checkout, ``pip install -e .`` installs both.
"""

from vae_space.app import main

if __name__ == "__main__":
    main()
