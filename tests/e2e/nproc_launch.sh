#!/usr/bin/env bash
# `recforge train --nproc 2` end to end, up to where the trainer starts: each worker reports the
# rank the launcher gave it, a worker's failure stops the run with its exit status, a bad config
# fails once in the launcher, and the launch flags and variables are checked.
# Usage: nproc_launch.sh RECFORGE_BINARY CONFIG
set -euo pipefail
recforge=$1
config=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# Expects the command after `--` to fail with exit status $1 and print a line matching $2.
expect_failure() {
  local status=$1 pattern=$2
  shift 3
  set +e
  "$@" >out.log 2>&1
  local got=$?
  set -e
  if [ "$got" -ne "$status" ] || ! grep -q -- "$pattern" out.log; then
    echo "expected exit status $status and \"$pattern\" from: $*"; echo "got $got:"; cat out.log
    exit 1
  fi
}

# The dataset is missing, so each worker stops right after saying who it is (the first to fail
# may stop the other before it says so).
expect_failure 1 "worker [01] failed (exit status 1)" -- \
  "$recforge" train --nproc 2 "$config" run.output_dir=run data.path=missing run.device=cpu
launched=$(grep -c "^launch: rank \([01]\)/2 (local \1) on host .*, from torchrun$" out.log || true)
if [ "$launched" -lt 1 ] || [ "$(grep -c "^launch: " out.log)" -gt 2 ]; then
  echo "expected one or two workers of 2 to report their rank:"; cat out.log; exit 1
fi

expect_failure 1 "unknown key" -- "$recforge" train --nproc 2 "$config" bogus.key=1
if grep -q "^launch: " out.log; then echo "a bad config must fail before any worker"; exit 1; fi

expect_failure 1 "flags launch: --rank 2 must be below --world-size 2" -- \
  "$recforge" train --rank 2 --world-size 2 --local-rank 0 "$config"
expect_failure 1 "drop --rank, --world-size and --local-rank" -- \
  "$recforge" train --nproc 2 --rank 0 "$config"
expect_failure 1 "already part of a launch (RANK=0 is set)" -- \
  env RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 "$recforge" train --nproc 2 "$config"
expect_failure 1 "RANK=1 is set but WORLD_SIZE and LOCAL_RANK are not" -- \
  env RANK=1 "$recforge" train "$config"
echo "nproc launch: ok"
