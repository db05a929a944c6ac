#!/usr/bin/env bash
# Runs once when the dev container is created (postCreateCommand): project environment + setup.
set -euo pipefail
cd "$(dirname "$0")/.."

# .venv is a Docker volume (see devcontainer.json); a new one is owned by root.
[ -w .venv ] || sudo chown "$(id -u):$(id -g)" .venv
[ -x .venv/bin/python ] || python -m venv .venv

# The NVIDIA Container Toolkit puts nvidia-smi into the container only when it got a GPU.
extras=dev
if command -v nvidia-smi >/dev/null 2>&1; then
  extras=dev,gpu
fi
.venv/bin/python -m pip install -e ".[${extras}]"
.venv/bin/invoke setup
