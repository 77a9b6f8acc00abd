#!/usr/bin/env bash
# Logs with titles to prompt files on the command line: `data prepare --items` with a Latin-1
# pipe-separated title file, `data prompts` for both tasks and every part, and the refusals a user
# meets (titles read as UTF-8, a dataset prepared without titles, a log item without a title), and
# an item-ID model ranking the same candidate lists the prompts show (--save-candidates).
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
cat > items.yaml <<'YAML'
run: {output_dir: items-run, seed: 1, device: cpu, log_every_steps: 100}
data: {path: data, max_len: 16, split: leave_one_out}
model: {d_model: 32, n_layer: 1, n_head: 1, mlp_ratio: 2, dropout: 0.0}
stages:
  - name: pretrain
    objective: {type: nbp, next_k: 1, loss: full_softmax}
    train: {batch_size: 4, lr: 1.0e-3, epochs: 1}
    eval: {metric: ndcg@10, patience: 0, protocol: full, sampled_negatives: 10}
YAML
"$recforge" data prompts --data data --task candidate_choice --part test --candidates 5 \
  --output lists.json --save-candidates lists.txt > /dev/null
"$recforge" train items.yaml > /dev/null 2>&1
out=$("$recforge" eval --run items-run --candidates lists.txt --k 1,5 2>&1)
if python3 -c "
import json, sys
r = json.loads(sys.argv[1]); prompts = json.load(open('lists.json'))
assert r['lists'] == len(prompts) and r['candidates_per_list'] == 5, r
assert r['hr@5'] == 1.0 and 0 <= r['hr@1'] <= 1, r
" "$out"; then
  pass "an item-ID model ranks the prompts' own candidate lists"
else
  fail "eval --candidates: $out"
fi
echo "0 1 0 999 1" > other.txt
out=$("$recforge" eval --run items-run --candidates other.txt 2>&1)
if [[ $? -ne 0 && $out == *"item 999 is not one of the"* ]]; then
  pass "candidate lists from another dataset are refused"
else
  fail "foreign candidate lists: $out"
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
