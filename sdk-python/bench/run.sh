#!/usr/bin/env bash
# The Python SDK's benchmark: builds a release wheel (maturin, the venv of
# scripts/test-python-sdk.sh), installs it in target/py-bench-venv and prints the cost of
# observe() on the caller's thread per capture policy (sdk-python/bench/observe.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
build_venv=target/py-build-venv
if ! [ -x "$build_venv/bin/maturin" ]; then
  python3 -m venv "$build_venv"
  "$build_venv/bin/python" -m pip install --quiet --disable-pip-version-check maturin==1.16.0
fi
rm -rf target/wheels/py-sdk-release
"$build_venv/bin/maturin" build --release --manifest-path sdk-python/Cargo.toml \
  --interpreter python3 --out target/wheels/py-sdk-release --quiet >&2
rm -rf target/py-bench-venv
python3 -m venv target/py-bench-venv
target/py-bench-venv/bin/python -m pip install --quiet --disable-pip-version-check target/wheels/py-sdk-release/flowtrail-*.whl
target/py-bench-venv/bin/python sdk-python/bench/observe.py "$@"
