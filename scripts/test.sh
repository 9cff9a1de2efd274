#!/usr/bin/env bash
# The test command (README, CI): install dependencies, build, run the CTest suite.
# GPU-labelled tests skip with a message on machines without a GPU.
# Usage: scripts/test.sh [extra ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
# Busy-waiting OpenMP threads cost far more than they save on a small shared machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
bash scripts/setup.sh --no-python
BUILD=${ATOM_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release ${ATOM_CMAKE_ARGS:-}
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j"$(nproc)" "$@"
