#!/usr/bin/env bash
# The GPU checks, as one script for a lent machine that has nvcc, cmake and ninja but none of the
# Debian libraries: unpacks the .deb files fetched beforehand into a private prefix, builds for
# Hopper (sm_90a), runs the `gpu` tests, compute-sanitizer (memcheck on every gpu test, racecheck
# on attention), the train-step benchmark against PyTorch on the GPU, and a short Beauty training
# run when its prepared data came along. Logs go to $OUT (default /tmp/gpu-check).
#
# Beforehand, on a Debian machine with network (the packages tools/install-deps.sh names):
#   mkdir -p .deps/debs && (cd .deps/debs && apt-get download libyaml-cpp-dev libyaml-cpp0.7 \
#     libgtest-dev libcli11-dev nlohmann-json3-dev libopenblas-dev libopenblas-pthread-dev \
#     libopenblas0-pthread libgfortran5)
# Usage: tools/gpu-check.sh [STEPS...]
#   steps: build tests memcheck racecheck bench beauty beauty-bf16 finetune dpo-sweep nccl kernels
#          e2e
#   RECFORGE_MEMCHECK_FILTER: gtest filter of the memcheck step (default: every gpu test but the
#     100-step loss curves, which run the same kernels as the others)
#   RECFORGE_RACECHECK_FILTER: gtest filter of the racecheck step (default: the attention tests)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp/gpu-check}
build=${RECFORGE_GPU_BUILD:-$root/build-gpu}
prefix=/tmp/recforge-deps
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(build tests memcheck racecheck bench beauty finetune)
mkdir -p "$out"

wants() { [[ " ${steps[*]} " == *" $1 "* ]]; }
stamp() { echo "== $(date +%T) $*"; }

unpack_deps() {
  mkdir -p "$prefix"
  for deb in "$root"/.deps/debs/*.deb; do dpkg -x "$deb" "$prefix"; done
  openblas=$prefix/usr/lib/x86_64-linux-gnu/openblas-pthread
  export LD_LIBRARY_PATH=$openblas:$prefix/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
}

build_all() {
  stamp "configure"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix/usr" \
    -DCMAKE_CUDA_ARCHITECTURES=OFF -DCMAKE_CUDA_FLAGS="-gencode=arch=compute_90a,code=sm_90a" \
    -DBLAS_LIBRARIES="$openblas/libopenblas.so" \
    -DCBLAS_INCLUDE_DIR="$prefix/usr/include/x86_64-linux-gnu/openblas-pthread" \
    >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
  stamp "build"
  cmake --build "$build" -j "$(nproc)" --target recforge "${gpu_test_targets[@]}" \
    >"$out/build.log" 2>&1 || { grep -B2 -A8 "error" "$out/build.log" | head -60; exit 1; }
}

# The binaries that hold GPU suites (named *Gpu*, CTest label gpu): the kernels, the decoder and
# the NCCL communicator.
gpu_test_targets=(recforge_kernel_tests recforge_model_tests recforge_dist_tests)
gpu_test_binaries=("$build/tests/kernels/recforge_kernel_tests"
                   "$build/tests/model/recforge_model_tests"
                   "$build/tests/train/dist/recforge_dist_tests")

run_tests() {
  stamp "gpu tests"
  for binary in "${gpu_test_binaries[@]}"; do
    "$binary" --gtest_brief=1 --gtest_filter='*Gpu*'
  done 2>&1 | tee "$out/gpu-tests.log" | grep -v "^\[ *OK" | tail -40
}

run_memcheck() {
  stamp "compute-sanitizer memcheck"
  for binary in "${gpu_test_binaries[@]}"; do
    timeout 120 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
      "$binary" --gtest_brief=1 --gtest_filter="${RECFORGE_MEMCHECK_FILTER:-*Gpu*-*LossCurve*}"
    echo "memcheck $(basename "$binary") exit $?"
  done >"$out/memcheck.log" 2>&1
  grep -E "exit|ERROR SUMMARY|FAILED|Invalid" "$out/memcheck.log" | sort | uniq -c | head
}

run_racecheck() {
  stamp "compute-sanitizer racecheck (attention)"
  timeout 120 compute-sanitizer --tool racecheck --error-exitcode 9 "${gpu_test_binaries[0]}" \
    --gtest_brief=1 --gtest_filter="${RECFORGE_RACECHECK_FILTER:-*Attention*Gpu*}" \
    >"$out/racecheck.log" 2>&1
  echo "racecheck exit $?"; grep -E "ERROR SUMMARY|FAILED|hazard" "$out/racecheck.log" | sort | uniq -c | head
}

run_bench() {
  stamp "train-step benchmark"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu.txt"
  "$build/recforge" bench train-step --device cuda | tee "$out/bench.log"
  python3 "$root/benchmarks/train_step_pytorch.py" --device cuda | tee -a "$out/bench.log"
}

# Beauty pre-training for 10 epochs at one precision (fp32 | bf16): HR/NDCG of both compared.
beauty_run() {
  local precision=$1 suffix=${1/fp32/}
  [ -d "$root/data/beauty" ] || { echo "no data/beauty: skipped"; return; }
  stamp "beauty training (cuda, $precision)"
  rm -rf "/tmp/beauty-run$suffix"
  (cd "$root" && timeout 100 "$build/recforge" train configs/beauty.yaml run.device=cuda \
    "run.output_dir=/tmp/beauty-run$suffix" stages.pretrain.train.epochs=10 \
    "model.precision=$precision" >"$out/beauty$suffix.log" 2>&1)
  echo "beauty $precision exit $?"; tail -5 "$out/beauty$suffix.log"
  mkdir -p "$out/beauty$suffix"
  cp "/tmp/beauty-run$suffix/final_metrics.json" "/tmp/beauty-run$suffix/metrics.jsonl" \
    "$out/beauty$suffix/" 2>/dev/null
}

run_beauty() { beauty_run fp32; }
run_beauty_bf16() { beauty_run bf16; }

run_finetune() {
  [ -d "$root/data/beauty" ] || { echo "no data/beauty: skipped"; return; }
  stamp "beauty fine-tuning table (cuda)"
  rm -rf /tmp/beauty-finetune
  (cd "$root" && timeout 300 benchmarks/beauty_finetune.sh "$build" /tmp/beauty-finetune \
    run.device=cuda >"$out/finetune.log" 2>&1)
  echo "finetune exit $?"; grep -A8 "^| stage" "$out/finetune.log" || tail -20 "$out/finetune.log"
}

# DPO variants from the fine-tuning table's LoRA SFT checkpoint (run finetune first).
run_dpo_sweep() {
  local sft
  sft=$(python3 -c 'import json; d = "/tmp/beauty-finetune/pipeline"
print(d + "/checkpoints/" + json.load(open(d + "/final_metrics-sft.json"))["best_checkpoint"])') ||
    return
  stamp "DPO sweep (cuda)"
  local name overrides
  while read -r name overrides; do
    (cd "$root" && timeout 120 build-gpu/recforge train benchmarks/beauty_finetune/dpo_sdpo.yaml \
      run.device=cuda "run.output_dir=/tmp/dpo-sweep/$name" "stages.0.init=$sft" $overrides \
      >"$out/dpo-$name.log" 2>&1) || echo "$name failed"
    grep " done " "$out/dpo-$name.log" | sed "s/^/$name: /"
  done <<'SWEEP'
sigmoid-lr5e-4 stages.0.objective.dpo.loss=sigmoid stages.0.objective.dpo.rejected=1
sigmoid-lr1e-4 stages.0.objective.dpo.loss=sigmoid stages.0.objective.dpo.rejected=1 stages.0.train.lr=1e-4
sdpo-lr5e-4 stages.0.objective.dpo.loss=sdpo
sdpo-lr1e-4 stages.0.train.lr=1e-4
sdpo-beta1 stages.0.objective.dpo.beta=1.0
sigmoid-dropout stages.0.objective.dpo.loss=sigmoid stages.0.objective.dpo.rejected=1 stages.0.objective.dpo.disable_dropout=false
SWEEP
}

# NCCL as far as one GPU allows: the backend found at configure time, and a one-rank training run
# through the nccl backend and through --nproc 1.
run_nccl() {
  stamp "nccl"
  grep "communication backends" "$out/configure.log"
  rm -rf /tmp/nccl-run /tmp/nproc-run
  (cd "$root" && timeout 120 "$build/recforge" train configs/beauty.yaml run.device=cuda \
    run.output_dir=/tmp/nccl-run distributed.backend=nccl stages.0.train.max_steps=30 2>&1 |
    tail -3)
  (cd "$root" && timeout 120 "$build/recforge" train --nproc 1 configs/beauty.yaml \
    run.device=cuda run.output_dir=/tmp/nproc-run stages.0.train.max_steps=30 2>&1 | tail -2)
}

# Kernel benchmarks against PyTorch (issue 6): benchmarks/kernels.sh's joined table.
run_kernels() {
  stamp "kernel benchmarks"
  (cd "$root" && timeout 300 benchmarks/kernels.sh "$build" "$out/kernels.md" >"$out/kernels.log" 2>&1)
  echo "kernels exit $?"; tail -40 "$out/kernels.md" 2>/dev/null || tail -20 "$out/kernels.log"
}

# End-to-end training step against PyTorch eager and torch.compile, fp32 and bf16, Beauty and
# GPT-2 small (issue 6): benchmarks/end_to_end.sh's table, each row's JSON and log in e2e-runs/.
run_e2e() {
  stamp "end-to-end benchmark"
  (cd "$root" && timeout 420 benchmarks/end_to_end.sh "$build" --device cuda --out "$out/e2e.md" \
    --timeout 180 >"$out/e2e.log" 2>&1)
  echo "e2e exit $?"; cat "$out/e2e.md" 2>/dev/null || tail -20 "$out/e2e.log"
}

unpack_deps
wants build && build_all
wants tests && run_tests
wants memcheck && run_memcheck
wants racecheck && run_racecheck
wants bench && run_bench
wants beauty && run_beauty
wants beauty-bf16 && run_beauty_bf16
wants finetune && run_finetune
wants dpo-sweep && run_dpo_sweep
wants nccl && run_nccl
wants kernels && run_kernels
wants e2e && run_e2e
stamp "done"
