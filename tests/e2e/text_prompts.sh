#!/usr/bin/env bash
# Logs with titles to prompt files on the command line: `data prepare --items` with a Latin-1
# pipe-separated title file, `data prompts` for both tasks and every part, and the refusals a user
# meets (titles read as UTF-8, a dataset prepared without titles, a log item without a title).
# Usage: text_prompts.sh RECFORGE_BINARY
set -uo pipefail
recforge=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0
pass() { echo "PASS: $*"; }
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# 4 users × 12 rated events over 30 items; titles with a Latin-1 é.
for u in 1 2 3 4; do
  for i in $(seq 1 12); do echo -e "$u\t$(( (u * 7 + i) % 30 + 1 ))\t$(( 3 + (u + i) % 3 ))\t$(( 1000 + i ))"; done
done > log.tsv
for i in $(seq 1 30); do printf '%d|Caf\xe9 %d (1995)|01-Jan-1995\n' "$i" "$i"; done > items.psv

prepare() {
  "$recforge" data prepare --input log.tsv --format tsv --user-col 0 --item-col 1 --rating-col 2 \
    --time-col 3 --output "$@"
}
if prepare data --items items.psv --items-delimiter '|' --items-encoding latin-1 > /dev/null &&
    grep -q "$(printf 'Caf\xc3\xa9')" data/titles.tsv; then
  pass "prepare --items converts Latin-1 titles to UTF-8"
else
  fail "prepare --items"
fi
out=$(prepare bad --items items.psv --items-delimiter '|' 2>&1)
if [[ $? -ne 0 && $out == *"items.psv:1: field 1: the title is not valid UTF-8"* && ! -e bad ]]; then
  pass "Latin-1 titles read as UTF-8 are refused naming line and field, no dataset left"
else
  fail "Latin-1 as UTF-8: $out"
fi
for task in preference candidate_choice; do
  for part in train valid test; do
    if ! "$recforge" data prompts --data data --task $task --part $part --candidates 5 \
        --output $task-$part.json > /dev/null; then
      fail "data prompts $task $part"
    fi
  done
done
if python3 - <<'PY'
import json
for part in ("train", "valid", "test"):
    for e in json.load(open(f"candidate_choice-{part}.json")):
        assert len(e["itemList"]) == 5 and e["trueSelection"] in e["itemList"], e
        assert e["trueSelection"] not in e["historyList"].split("::"), e
    for e in json.load(open(f"preference-{part}.json")):
        assert e["output"] in ("Yes.", "No.") and "Will" not in e["output"], e
PY
then
  pass "prompt files hold the target only as a candidate, labels Yes./No."
else
  fail "prompt file contents"
fi
prepare plain > /dev/null
out=$("$recforge" data prompts --data plain --output x.json 2>&1)
if [[ $? -ne 0 && $out == *"has no titles.tsv"* ]]; then
  pass "a dataset without titles is refused with the flag to add them"
else
  fail "no titles: $out"
fi
head -n 20 items.psv > few.psv
out=$(prepare partial --items few.psv --items-delimiter '|' --items-encoding latin-1 2>&1)
if [[ $? -ne 0 && $out == *"items have no title"* ]]; then
  pass "log items without a title are refused"
else
  fail "missing titles: $out"
fi
exit $((failures > 0))
