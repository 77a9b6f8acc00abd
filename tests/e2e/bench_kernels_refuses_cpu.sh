#!/usr/bin/env bash
# `bench kernels` runs on a GPU only: on the CPU it must fail with a clear message.
# Usage: bench_kernels_refuses_cpu.sh RECFORGE
set -uo pipefail
output=$("$1" bench kernels --device cpu 2>&1)
status=$?
echo "$output"
[[ $status -ne 0 ]] || { echo "FAIL: exit status 0"; exit 1; }
grep -q "bench kernels needs a CUDA device" <<<"$output" || { echo "FAIL: no refusal message"; exit 1; }
echo "PASS"
