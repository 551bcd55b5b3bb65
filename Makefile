# The set-up in one command (README): `make setup`.
#   The Python side in one pip call: the torch pin (TORCH=... for the build your CUDA / MPS machine needs), the
#   requirements, the docs tools, and vae_hub / vae_space installed editable (importable from any folder; nothing
#   downloaded to build them). The browser side: onnxruntime-web and ESLint, pinned by space/package-lock.json.
PYTHON ?= python3
TORCH ?= torch==2.13.0
PIP_FLAGS ?=
NPM_FLAGS ?=

.PHONY: setup
setup:
	$(PYTHON) -m pip install $(PIP_FLAGS) $(TORCH) -r requirements.txt -r docs/requirements.txt -e . --no-build-isolation
	cd space && npm ci $(NPM_FLAGS)
