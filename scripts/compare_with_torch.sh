#!/usr/bin/env bash
# meap's training losses against a PyTorch run of the same model, initial weights and
# batches: a table per step, the worst relative difference, exit 0 iff all are within
# --tolerance (scripts/compare_with_torch.py has every option; docs/training.md).
#   scripts/compare_with_torch.sh configs/tiny.yaml --steps 20 --tolerance 1e-4
#   scripts/compare_with_torch.sh configs/llama-125m.yaml --steps 200 --tolerance 0.02 --device cuda
# The meap binary is $MEAP, else build/meap; python is .venv/bin/python3, else python3.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="$repo/.venv/bin/python3"
[ -x "$python" ] || python="$(command -v python3)"
exec "$python" "$repo/scripts/compare_with_torch.py" "$@"
