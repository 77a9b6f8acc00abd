#!/usr/bin/env bash
# Creates (once) the Python environment of the tests that read model files independently of
# recforge: the `gguf` package (GGUF reading and dequantization) and Hugging Face `tokenizers`,
# over Debian's Python with its NumPy and PyTorch (--system-site-packages). Prints the venv's
# python. Usage: tools/reference-venv.sh DIR
set -euo pipefail
if [[ $# -ne 1 ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
packages=(gguf==0.19.0 tokenizers==0.23.3)
if [[ ! -x $dir/bin/python ]] || ! "$dir/bin/python" -c "import gguf, tokenizers" 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages "$dir" >&2
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}" >&2
fi
echo "$dir/bin/python"
