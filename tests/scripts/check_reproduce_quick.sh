#!/usr/bin/env bash
# scripts/reproduce_small.sh --quick, as a smoke test of the study pipeline: every stage
# produces its outputs (no claim is checked: a few steps prove nothing).
# Usage: tests/scripts/check_reproduce_quick.sh SOURCE_DIR MEAP_BINARY WORK_DIR
set -euo pipefail
src=$1 meap=$2 work=$3
command -v bible > /dev/null || { echo "SKIPPED: no 'bible' (apt-get install bible-kjv): the default corpus needs it"; exit 0; }
[ -f /usr/share/games/fortunes/fortunes ] || { echo "SKIPPED: no fortunes-min: the default corpus needs it"; exit 0; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

docs_before=$(sha256sum "$src/docs/results.md" 2>/dev/null || echo absent)
rm -rf "$work"
start=$SECONDS
bash "$src/scripts/reproduce_small.sh" --quick --out "$work" --meap "$meap" || fail "reproduce_small.sh --quick failed"
ok "reproduce_small.sh --quick ran in $((SECONDS - start)) s"
[ "$(sha256sum "$src/docs/results.md" 2>/dev/null || echo absent)" = "$docs_before" ] || fail "--quick changed docs/results.md"
ok "docs/results.md untouched"

for stage in corpus train eval leakage sft report; do
  line=$(grep -P "^$stage\t" "$work/stages.tsv") || fail "stage $stage missing from stages.tsv"
  status=$(cut -f2 <<< "$line")
  case $stage:$status in
    sft:done|sft:skipped|*:done) ok "stage $stage: $status" ;;
    *) fail "stage $stage: $status" ;;
  esac
  grep -qP "^$stage\t[0-9.]+$" "$work/timings.tsv" || fail "no wall time for stage $stage"
done
if grep -qP "^sft\tskipped" "$work/stages.tsv"; then
  [ -s "$work/sft-skipped.txt" ] || fail "the sft stage is skipped without a reason"
  grep -q "Skipped:" "$work/results.md" || fail "results.md does not report the skipped SFT stage"
  ok "sft skipped: $(cat "$work/sft-skipped.txt")"
fi

# The twins, the ablation ratio and the sampling variant, over 2 seeds.
for seed in 1 2; do
  for name in ntp meap mask-0.30 authors; do
    run=$work/runs/$name-seed$seed
    ls -d "$run"/checkpoints/step-* > /dev/null 2>&1 || fail "$run has no checkpoint"
    ev=$work/eval/$name-seed$seed/eval.json
    for t in ppl niah mdqa attn; do
      grep -q "\"$t\"" "$ev" || fail "$ev has no $t results"
    done
    [ -s "$work/eval/$name-seed$seed/items/niah-items.jsonl" ] || fail "no NIAH items for $name-seed$seed"
  done
done
ok "8 runs trained and evaluated (ppl, niah, mdqa, attn)"
grep -q "data.meap.sampling=authors_code" "$work/commands.sh" || fail "commands.sh lacks the authors_code run"
grep -q "data.meap.mask_ratio=0.30" "$work/commands.sh" || fail "commands.sh lacks the ablation run"
grep -q "no leak" "$work/results.md" || fail "results.md does not report the leakage check"
for row in "NIAH accuracy" "MDQA accuracy, all gold positions" "Held-out bits per byte" \
           "Attention received by masked positions" "Mask-ratio ablation" "Mask sampling" \
           "Stages and wall times" "| SFT: MDQA accuracy, MEAP-SFT vs NTP-SFT (1 epoch each) |" \
           "| SFT: MDQA accuracy, MEAP-SFT 1 epoch vs NTP-SFT 2 epochs |" \
           "| Mask-ratio ablation: 0.15 vs the best other ratio"; do
  grep -qF "$row" "$work/results.md" || fail "results.md lacks '$row'"
done
grep -q '"claims"' "$work/results.json" || fail "results.json lacks the claims"
ok "results.md, results.json, commands.sh, timings.tsv written"
