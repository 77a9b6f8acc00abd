#!/usr/bin/env bash
# Installs recforge's system dependencies from Debian packages; does nothing for packages already
# present, so it is safe to run again. The CUDA toolkit (nvcc, cuBLAS, NCCL, NVTX) is not a Debian
# package here: when /usr/local/cuda exists it is used, otherwise recforge builds CPU-only.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libopenblas-dev        # the CPU backend's BLAS
  libyaml-cpp-dev        # configs
  libgtest-dev           # tests
  libcli11-dev           # command line
  nlohmann-json3-dev     # metrics and state files
  libpcre2-dev           # the text tokenizers' pre-tokenizer regexes (Unicode classes)
  libopenmpi-dev openmpi-bin  # multi-process data parallelism on CPUs
  python3-torch python3-numpy  # the PyTorch reference tests (run as /usr/bin/python3)
  python3-pip python3-venv     # tools/fetch-model.sh and tools/reference-venv.sh
  clang libclang-rt-dev libomp-dev  # libFuzzer targets (tools/run-fuzz.sh)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
