#!/usr/bin/env bash
# What a user could lose, or be misled by, on the command line: each check does what a user would
# do and expects the command to refuse with a message naming the cause (or to do the right thing),
# and nothing of the user's to be lost.
#   prepare   an output directory holding other files is never deleted; a dataset is replaced only
#             with --overwrite; a trailing slash names the directory; a UTF-8 byte order mark is
#             not part of the first user; columns past the limit are named
#   items     eval and recommend read item ids through the checkpoint's own vocabulary: a dataset
#             prepared again in another order gives the same metrics, a part of the catalogue
#             still recommends from the whole, items the model never saw are refused
#   lock      a second training in a run directory is refused naming the holder
#   config    a path that is not UTF-8 and a missing data.path are refused before training
#   weights   a NaN in a checkpoint stops eval and recommend naming the tensor
#   flags     --k 0 and --k "1e2", "1;5", "" are refused
#   ulimit    past `ulimit -f` the run stops naming the file and leaves no partial checkpoint
# Usage: state_guards.sh RECFORGE_BINARY CONFIG
set -uo pipefail
recforge=$1
config=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0

pass() { echo "PASS: $*"; }
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
# refused NAME PATTERN COMMAND...: the command exits non-zero and its output holds PATTERN.
refused() {
  local name=$1 pattern=$2
  shift 2
  local output
  if output=$("$@" 2>&1); then
    fail "$name: exited 0"
  elif grep -qF -- "$pattern" <<<"$output"; then
    pass "$name"
  else
    fail "$name: expected \"$pattern\" in: $output"
  fi
}

"$recforge" data synth --output logs.csv --users 300 --items 400 --seed 5 >/dev/null
prepare() { "$recforge" data prepare --input logs.csv --format csv --header "$@"; }

# ---- prepare ----
mkdir -p mine && cp logs.csv mine/logs.csv
refused "prepare into a directory of the user's files" "is a directory that is not a recforge" \
  prepare --output mine
[ -f mine/logs.csv ] && pass "the user's files are still there" || fail "mine/logs.csv was deleted"
prepare --output data/ >/dev/null && [ -f data/interactions.bin ] && [ ! -e data/.tmp-* ] &&
  pass "a trailing slash names the directory" || fail "prepare --output data/"
refused "prepare over a dataset without --overwrite" "add --overwrite" prepare --output data
prepare --output data --overwrite >/dev/null && pass "--overwrite replaces a dataset" ||
  fail "--overwrite"
printf '\xef\xbb\xbfu1,a\nu1,b\nu1,c\n' >bom.csv
"$recforge" data prepare --input bom.csv --format csv --time-col -1 --output bom >/dev/null
grep -q $'^0\tu1$' bom/users.tsv && pass "a byte order mark is not part of the first user" ||
  fail "BOM: $(cat bom/users.tsv)"
refused "a column past the limit" "the user column is 2147483647" \
  prepare --output big --user-col 2147483647

# ---- config ----
run() { "$recforge" train "$config" run.device=cpu run.threads=1 stages.0.train.epochs=1 "$@"; }
refused "a path that is not UTF-8" "data.path: not valid UTF-8" \
  run run.output_dir=bad "data.path=$(printf 'data\xff')"
printf 'run: {output_dir: nodata}\nstages: [{name: pretrain}]\n' >nodata.yaml
refused "a missing data.path" "data.path is missing" "$recforge" train nodata.yaml

# ---- lock ----
mkdir -p locked
flock locked/.lock sleep 60 >/dev/null 2>&1 &  # its output away: ctest waits for its holders
holder=$!
sleep 0.5
refused "a second training in one run directory" "is in use by another training" \
  run run.output_dir=locked data.path=data
pkill -P "$holder"
wait "$holder" 2>/dev/null || true

# ---- items ----
run run.output_dir=trained data.path=data >train.log 2>&1 || { cat train.log; fail "training"; }
eval_ndcg() {
  "$recforge" eval --run trained --data "$1" --k 10 | grep -o '"test/ndcg@10": [0-9.e-]*' |
    cut -d' ' -f2 | xargs printf '%.9f'
}
before=$(eval_ndcg data)
# The users in another order, each user's events as they were: other internal item ids, the same
# sequences.
(head -n1 logs.csv && tail -n +2 logs.csv | sort -t, -k1,1 -s) >reordered.csv
"$recforge" data prepare --input reordered.csv --format csv --header --output reordered >/dev/null
if [ "$(cut -f2 reordered/items.tsv | head -3)" = "$(cut -f2 data/items.tsv | head -3)" ]; then
  fail "the reordered log kept the item order: the check would prove nothing"
fi
after=$(eval_ndcg reordered)
[ -n "$before" ] && [ "$before" = "$after" ] && pass "eval on a re-prepared dataset: $after" ||
  fail "eval on a re-prepared dataset: $before then $after"
user=$(sed -n 2p data/users.tsv | cut -f2)
[ "$("$recforge" recommend --run trained --data reordered --user "$user" --k 5)" = \
  "$("$recforge" recommend --run trained --user "$user" --k 5)" ] &&
  pass "recommend on a re-prepared dataset" || fail "recommend on a re-prepared dataset"
grep "^$user," logs.csv | head -3 >part.csv
"$recforge" data prepare --input part.csv --format csv --output part >/dev/null
count=$("$recforge" recommend --run trained --data part --user "$user" --k 10 | wc -l)
[ "$count" -eq 10 ] && pass "a part of the catalogue still recommends from the whole" ||
  fail "recommend on a 3-item dataset listed $count items"
printf 'u1,unknown-item,1\nu1,i1,2\nu1,i2,3\n' >foreign.csv
"$recforge" data prepare --input foreign.csv --format csv --output foreign >/dev/null
refused "a dataset with items the model never saw" "never saw" \
  "$recforge" eval --run trained --data foreign

# ---- weights ----
checkpoint=$(ls -d trained/checkpoints/*-step* | head -1)
cp -r "$checkpoint" poisoned
python3 - poisoned/model.safetensors <<'POISON'
import json, struct, sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
length = struct.unpack("<Q", data[:8])[0]
begin = json.loads(data[8:8 + length])["wte"]["data_offsets"][0]
data[8 + length + begin:8 + length + begin + 4] = struct.pack("<f", float("nan"))
open(path, "wb").write(bytes(data))
POISON
refused "eval of NaN weights" "tensor 'wte' holds nan" "$recforge" eval --checkpoint poisoned \
  --data data
refused "recommend from NaN weights" "tensor 'wte' holds nan" \
  "$recforge" recommend --checkpoint poisoned --data data --user "$user"

# ---- flags ----
refused "recommend --k 0" "expected an integer >= 1, got \"0\"" \
  "$recforge" recommend --run trained --user "$user" --k 0
for k in 1e2 "1;5" ""; do
  refused "eval --k \"$k\"" "--k" "$recforge" eval --run trained --k "$k"
done

# ---- ulimit ----
output=$( (ulimit -f 64 && run run.output_dir=limited data.path=data) 2>&1)
status=$?
if [ "$status" -ne 0 ] && grep -q "File too large" <<<"$output" &&
  [ -z "$(find limited -name '*.tmp*')" ]; then
  pass "past ulimit -f: $(grep error: <<<"$output" | head -c 160)"
else
  fail "past ulimit -f: status $status, $(find limited -name '*.tmp*'), $output"
fi

echo "$failures failed"
[ "$failures" -eq 0 ]
