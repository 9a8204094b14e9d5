#!/usr/bin/env bash
# The README's test command: installs what is missing, configures into build/, builds
# everything (the CUDA targets too, where the toolkit is found), and runs ctest.
# Extra arguments go to ctest, e.g. `scripts/test.sh -L unit` or `-R gradcheck`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
cd build
ctest --output-on-failure "$@"
