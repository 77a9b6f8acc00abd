#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, AddressSanitizer and UBSan, CPU-only) and runs each for a
# while on its seeds: the interaction-log parser, the YAML config loader, the safetensors
# checkpoint reader, the trainer-state reader of a resume, the match of a dataset's items onto a
# checkpoint's, the GGUF model-file reader and the tokenizer (text and tokenizer.json). A crash or
# sanitizer report fails the script and leaves the reproducer (crash-*) in the target's corpus
# directory.
# Usage: tools/run-fuzz.sh [BUILD_DIR] [SECONDS_PER_TARGET]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-fuzz}
mkdir -p "$build"
build=$(cd "$build" && pwd)  # absolute: each fuzzer runs inside its corpus directory
seconds=${2:-60}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DRECFORGE_FUZZ=ON \
  -DRECFORGE_ENABLE_CUDA=OFF -DRECFORGE_NATIVE=OFF >/dev/null
targets=(log_parser_fuzz config_fuzz checkpoint_fuzz trainer_state_fuzz item_match_fuzz gguf_fuzz
         tokenizer_fuzz prompt_files_fuzz)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
declare -A seeds=([log_parser_fuzz]="" [config_fuzz]="$root/tests/fuzz/seeds/config"
                  [checkpoint_fuzz]="$root/tests/fuzz/seeds/safetensors"
                  [trainer_state_fuzz]="$root/tests/fuzz/seeds/trainer_state" [item_match_fuzz]=""
                  [gguf_fuzz]="$root/tests/fuzz/seeds/gguf" [tokenizer_fuzz]=""
                  [prompt_files_fuzz]="")
declare -A options=([config_fuzz]="-dict=$root/tests/fuzz/config.dict")
for target in "${targets[@]}"; do
  corpus="$build/corpus/$target"
  mkdir -p "$corpus"
  echo "fuzzing $target for ${seconds}s"
  log="$build/corpus/$target.log"
  if ! (cd "$corpus" && "$build/tests/fuzz/$target" -max_total_time="$seconds" -timeout=10 \
      -print_final_stats=1 ${options[$target]:-} "$corpus" ${seeds[$target]} >"$log" 2>&1); then
    tail -40 "$log" >&2
    echo "$target failed; reproducer: $(ls "$corpus"/crash-* "$corpus"/leak-* \
      "$corpus"/timeout-* "$corpus"/oom-* 2>/dev/null)" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_units|Done" "$log" || true
done
