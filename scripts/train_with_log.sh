#!/usr/bin/env bash
# Runs `MEAP train ARGS...` with its console output on the terminal and in LOG, so that
# Ctrl-C behaves as it does for `meap train` alone: the terminal's SIGINT reaches the whole
# foreground group, tee ignores it and keeps copying, so meap finishes its step, writes a
# checkpoint and exits 0 with its last lines in LOG (a plain `| tee` would die first and
# take meap's output, and then meap, with it). Used by scripts/train.sh; tested by
# tests/scripts/check_train_sigint.py. Usage: scripts/train_with_log.sh LOG MEAP ARGS...
set -euo pipefail
log=${1:?usage: train_with_log.sh LOG MEAP ARGS...}
meap=${2:?usage: train_with_log.sh LOG MEAP ARGS...}
shift 2
"$meap" train "$@" 2>&1 | (trap '' INT; exec tee "$log")
