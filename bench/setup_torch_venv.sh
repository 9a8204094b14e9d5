#!/usr/bin/env bash
# Makes bench/.venv-torch: the current PyTorch release from PyPI (plus safetensors and
# numpy) for bench/train_step_cpu.sh. Several GB (the PyPI wheel brings CUDA libraries);
# not part of the README's commands and ignored by git. Idempotent.
# Usage: bench/setup_torch_venv.sh [torch version = 2.15.0]
set -euo pipefail
cd "$(dirname "$0")"
version=${1:-2.15.0}
if [ ! -x .venv-torch/bin/python3 ]; then
  /usr/bin/python3 -m venv .venv-torch
fi
have=$(.venv-torch/bin/python3 -c "import torch; print(torch.__version__.split('+')[0])" 2>/dev/null || true)
if [ "$have" != "$version" ]; then
  .venv-torch/bin/python3 -m pip install -q --upgrade pip
  .venv-torch/bin/python3 -m pip install -q "torch==$version" safetensors numpy
fi
.venv-torch/bin/python3 -c "import torch; print('setup_torch_venv: torch', torch.__version__)"
