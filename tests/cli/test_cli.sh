#!/usr/bin/env bash
# The command line of `meap` as a user meets it: --version names the commit and the build's
# options, every command's --help comes from CLI11, and a bad option or value exits 2
# naming it.
# usage: test_cli.sh MEAP SOURCE_DIR CUDA(ON|OFF) MPI(ON|OFF) NCCL(ON|OFF)
set -uo pipefail
meap=$1 source_dir=$2 cuda=$3 mpi=$4 nccl=$5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

check() {  # check DESCRIPTION COMMAND...: a failed COMMAND is a failure
  local what=$1
  shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi
}

# run ARGS...: runs meap; $rc, $work/out and $work/err hold what it did.
run() {
  "$meap" "$@" >"$work/out" 2>"$work/err"
  rc=$?
}
has() { grep -qF -- "$2" "$work/$1"; }

# --version: the commit this tree is at (or "unknown" outside a git checkout) and the options.
run --version
check "meap --version exits 0" test "$rc" -eq 0
# The commit is read when meap is built: HEAD's, or an earlier one of HEAD's history when
# commits came after the last build.
printed=$(sed -n 's/^commit *\([0-9a-f]*\|unknown\)\(-dirty\)\{0,1\}$/\1/p' "$work/out")
if git -C "$source_dir" rev-parse HEAD >/dev/null 2>&1; then
  check "meap --version names a commit of this checkout ($printed)" eval \
    '[ -n "$printed" ] && [ "$printed" != unknown ] &&
     git -C "$source_dir" merge-base --is-ancestor "$printed" HEAD'
else
  check "meap --version says the commit is unknown outside a git checkout" test "$printed" = unknown
fi
check "meap --version names the version" grep -qE '^meap [0-9]+\.[0-9]+\.[0-9]+$' "$work/out"
on_off() { [ "$1" = ON ] && echo on || echo off; }
for option in "CUDA $cuda" "MPI $mpi" "NCCL $nccl"; do
  set -- $option
  check "meap --version says $1 is $(on_off "$2")" grep -qE "^$1 +$(on_off "$2")" "$work/out"
done
if [ "$cuda" = ON ]; then check "meap --version names the CUDA archs" has out "archs "; fi

# meap --help lists the commands; each one's --help is CLI11's layout.
run --help
check "meap --help exits 0" test "$rc" -eq 0
commands=$(sed -n '/^Commands:/,/^$/p' "$work/out" | awk 'NR > 1 && NF { print $1 }')
check "meap --help lists the commands" test "$(echo "$commands" | wc -w)" -ge 8
for c in $commands; do
  run "$c" --help
  check "meap $c --help exits 0 with its usage and options" \
    eval '[ "$rc" -eq 0 ] && has out "usage: meap $c" && has out "--help"'
  run "$c" --no-such-option
  check "meap $c --no-such-option exits 2 naming it" \
    eval '[ "$rc" -eq 2 ] && has err "unknown option '"'"'--no-such-option'"'"'" && has err "usage: meap $c"'
done

# Bad values and missing arguments: exit 2, the option named, nothing run.
run batches config.yaml --steps abc --out "$work/b.safetensors"
check "a value that is not a number names the option" eval '[ "$rc" -eq 2 ] && has err "--steps"'
run batches config.yaml --steps 0 --out "$work/b.safetensors"
check "--steps 0 is refused naming the option" \
  eval '[ "$rc" -eq 2 ] && has err "--steps: expects an integer >= 1"'
run generate some-checkpoint --seed -1
check "an unsigned option refuses a sign" eval '[ "$rc" -eq 2 ] && has err "--seed"'
run generate some-checkpoint --temperature nan
check "a number option refuses nan" eval '[ "$rc" -eq 2 ] && has err "--temperature"'
run generate some-checkpoint --device tpu
check "--device refuses an unknown device" eval '[ "$rc" -eq 2 ] && has err "--device"'
run export some-checkpoint --out "$work/x" --max-shard-size 5XB
check "--max-shard-size refuses a size it cannot read" \
  eval '[ "$rc" -eq 2 ] && has err "--max-shard-size" && [ ! -e "$work/x" ]'
run prepare --out "$work/p" --vocab-size 100 --tokenizer t.model corpus.txt
check "--vocab-size and --tokenizer together are refused" \
  eval '[ "$rc" -eq 2 ] && has err "--tokenizer" && [ ! -e "$work/p" ]'
# prepare: a split smaller than one global batch is named with its numbers (the default
# config's or --config's); a failed prepare removes the --out it created, not one it found.
for i in $(seq 1 300); do
  echo "the seed of the tree was good and the water of the sea was $i days deep"
  echo
done >"$work/small.txt"
run prepare --out "$work/small" --vocab-size 300 --threads 1 "$work/small.txt"
check "prepare of a small corpus succeeds" test "$rc" -eq 0
check "prepare warns that the val split is below one global batch of the default config" \
  eval 'has err "the val split holds" && has err "fewer than one global batch of 32 of the default config"'
run prepare --out "$work/small2" --vocab-size 300 --threads 1 --val-fraction 0.2 \
  --config "$source_dir/configs/tiny.yaml" "$work/small.txt"
check "prepare names the --config whose global batch the split is below" \
  eval '[ "$rc" -eq 0 ] && has err "of $source_dir/configs/tiny.yaml"'
printf '{"text": "fine"}\n{broken\n' >"$work/bad.jsonl"
run prepare --out "$work/failed" --vocab-size 300 "$work/bad.jsonl"
check "a failed prepare exits 1 and removes the --out it created" \
  eval '[ "$rc" -eq 1 ] && has err "bad.jsonl:2" && [ ! -e "$work/failed" ]'
mkdir -p "$work/kept"
run prepare --out "$work/kept" --vocab-size 300 "$work/bad.jsonl"
check "a failed prepare keeps an --out that existed before" eval '[ "$rc" -eq 1 ] && [ -d "$work/kept" ]'
# The SFT views: meap inspect takes a config or --sft GLOB --sft-sample N; the SFT flags of
# meap batches need --sft and take only the sft.* keys' values.
run inspect
check "meap inspect without CONFIG.yaml or --sft exits 2 naming both" \
  eval '[ "$rc" -eq 2 ] && has err "CONFIG.yaml (or --sft GLOB --sft-sample N)"'
run inspect --sft 'x-*.bin'
check "meap inspect --sft without --sft-sample exits 2 naming it" \
  eval '[ "$rc" -eq 2 ] && has err "--sft-sample"'
run batches config.yaml --steps 1 --out "$work/b.safetensors" --mask-ratio 0.2
check "an SFT flag of meap batches without --sft exits 2 naming --sft" \
  eval '[ "$rc" -eq 2 ] && has err "--mask-ratio requires --sft"'
run batches config.yaml --steps 1 --out "$work/b.safetensors" --sft 'x-*.bin' --layout paper
check "--layout refuses a layout that is not concat or separate" \
  eval '[ "$rc" -eq 2 ] && has err "--layout"'
run train
check "meap train without CONFIG.yaml exits 2 naming it" eval '[ "$rc" -eq 2 ] && has err "CONFIG.yaml"'
run
check "meap without a command exits 2" test "$rc" -eq 2
run bogus
check "an unknown command exits 2 naming it" eval '[ "$rc" -eq 2 ] && has err "unknown command '"'"'bogus'"'"'"'

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
