#!/usr/bin/env bash
# Captures a timeline of a short training run on the GPU with Nsight Systems: CUDA kernels and
# copies, plus the NVTX ranges of kernels/nvtx.h ("layer 3 forward", "output loss", ...). Without
# nsys it prints the command to run where nsys is installed.
# Usage: tools/profile.sh CONFIG [section.key=value ...]
#   RECFORGE_BIN            the recforge binary (default build/recforge)
#   RECFORGE_PROFILE_STEPS  optimizer steps before the run stops (default 30)
#   RECFORGE_PROFILE_OUT    output directory (default runs/profile-<config>-<time>)
# Then: nsys stats -r nvtx_sum,cuda_gpu_kern_sum OUT/timeline.nsys-rep (or open it in nsys-ui).
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 CONFIG [section.key=value ...]" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
config=$1
shift
bin=${RECFORGE_BIN:-$root/build/recforge}
steps=${RECFORGE_PROFILE_STEPS:-30}
out=${RECFORGE_PROFILE_OUT:-$root/runs/profile-$(basename "$config" .yaml)-$(date +%Y%m%d-%H%M%S)}

# The run stops after $steps steps as if interrupted (exit code 143, a checkpoint written); the
# caller's overrides come last, so they win over run.device and run.output_dir.
command=(nsys profile -t "cuda,nvtx" --force-overwrite true -o "$out/timeline"
         "$bin" train --interrupt-after-steps "$steps" "$config"
         run.device=cuda run.output_dir="$out/run" "$@")

if ! command -v nsys > /dev/null; then
  echo "nsys (Nsight Systems) is not installed here; on a machine with a GPU and nsys, run:"
  echo "  ${command[*]}"
  exit 0
fi
mkdir -p "$out"
status=0
"${command[@]}" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 143 ]; then
  echo "profile: the run failed with exit code $status" >&2
  exit "$status"
fi
echo "timeline: $out/timeline.nsys-rep"
echo "summary:  nsys stats -r nvtx_sum,cuda_gpu_kern_sum $out/timeline.nsys-rep"
