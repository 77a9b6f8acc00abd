#!/usr/bin/env bash
# End to end through the command line: generate logs, prepare them, start training, send SIGTERM
# mid-run, expect exit code 143 with a checkpoint on disk, resume to completion, and check the
# run directory, then eval and recommend from it.
# Usage: signal_resume.sh RECFORGE_BINARY CONFIG
set -euo pipefail
recforge=$1
config=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$recforge" data synth --output logs.csv --users 800 --items 300 --seed 3 >/dev/null
"$recforge" data prepare --input logs.csv --format csv --header --output data/synthetic >/dev/null

set +e
"$recforge" train "$config" run.output_dir=run run.device=cpu run.threads=1 \
  stages.0.train.epochs=50 stages.0.eval.patience=0 >train1.log 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  grep -q "step 20/" train1.log 2>/dev/null && break
  sleep 0.1
done
kill -TERM "$pid"
wait "$pid"
status=$?
set -e
if [ "$status" -ne 143 ]; then
  echo "expected exit code 143 after SIGTERM, got $status"; cat train1.log; exit 1
fi
grep -q "continue with --resume" train1.log || { echo "no resume hint"; cat train1.log; exit 1; }
ls run/checkpoints/pretrain-step* >/dev/null

if "$recforge" train "$config" run.output_dir=run >refused.log 2>&1; then
  echo "a run directory with checkpoints must be refused without --resume"; exit 1
fi
grep -q "already holds checkpoints" refused.log

"$recforge" train "$config" run.output_dir=run run.device=cpu run.threads=1 \
  stages.0.train.epochs=50 stages.0.eval.patience=0 stages.0.train.max_steps=60 \
  --resume >train2.log 2>&1 || { echo "resume failed"; cat train2.log; exit 1; }
grep -q "resumed pretrain" train2.log
test -s run/final_metrics.json
test -s run/config.resolved.yaml
"$recforge" eval --run run --threads 1 | grep -q '"test/ndcg@10"'
"$recforge" recommend --run run --user u1 --k 3 | wc -l | grep -q 3
echo "signal, resume, eval and recommend: ok"
