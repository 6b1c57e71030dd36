#!/usr/bin/env bash
# Create .venv from the lock file (requirements.lock) and install gantune into it, editable.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install -q "uv==0.13.9"
[ -x .venv/bin/python ] || uv venv -q --python 3.11 .venv
# Bytecode compiled once here: every trial process, Ray agent and command imports torch, Ray and
# MLflow, and where the environment forbids writing .pyc files (PYTHONDONTWRITEBYTECODE) each
# import would otherwise compile them again.
uv pip sync -q --compile-bytecode --python .venv/bin/python requirements.lock
uv pip install -q --python .venv/bin/python --no-deps -e .
