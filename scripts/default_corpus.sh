#!/usr/bin/env bash
# Writes the default training corpus as plain text, from Debian packages only (nothing from
# the internet, nothing stored in the repository):
#   OUT/kjv.txt       the King James Bible (package bible-kjv), one document per chapter
#   OUT/fortunes.txt  the fortunes files (package fortunes-min), one document per fortune
# Documents are separated by blank lines, as `meap prepare` expects.
# Usage: scripts/default_corpus.sh OUT_DIR
set -euo pipefail
out=${1:?usage: scripts/default_corpus.sh OUT_DIR}
command -v bible >/dev/null || { echo "default_corpus: 'bible' not found (apt-get install bible-kjv)" >&2; exit 1; }
mkdir -p "$out"

# `bible -f` prints "Ge1:1 In the beginning ..." one verse a line; drop the reference and
# start a new document (blank line) at each new chapter.
bible -f "gen1:1-rev22:21" | awk '
  { ref = $1; sub(/:[0-9]+$/, "", ref); $1 = "" ; sub(/^ /, "") }
  ref != chapter { if (NR > 1) print ""; chapter = ref }
  { print }' > "$out/kjv.txt.tmp"
mv "$out/kjv.txt.tmp" "$out/kjv.txt"

# Fortune files separate entries with a line holding only "%".
fortunes=/usr/share/games/fortunes
cat "$fortunes"/fortunes "$fortunes"/literature "$fortunes"/riddles |
  sed 's/^%$//' > "$out/fortunes.txt.tmp"
mv "$out/fortunes.txt.tmp" "$out/fortunes.txt"
echo "default_corpus: wrote $out/kjv.txt ($(wc -c < "$out/kjv.txt") bytes), $out/fortunes.txt ($(wc -c < "$out/fortunes.txt") bytes)"
