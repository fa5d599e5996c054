#!/usr/bin/env bash
# Issue 16's GPU checks in one run on the device machine: corolla env, tests/test_gpu.py and
# benchmarks/bench_gpu.py on Paddle 2.6.2 from ../shared/gpu's kit; logs and JSON go to $OUT.
#
# Here first (no GPU needed), once:
#   bash ../shared/gpu/prepare.sh                 # the Paddle kit in .gpu/ (../shared/gpu/README.md)
#   bash benchmarks/gpu_session.sh prepare        # wheels the GPU machine lacks, in .whl/ (typeguard)
# On the device, after on_device.sh has assembled the kit there (same machine session):
#   run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=600)
# It stops each stage in time (tests 210 s, benchmark 330 s) so that $OUT comes back; the
# benchmark writes its JSON after each model. Options: BENCH_ARGS="--models PPLCNet_x1_0 --workers 12".
# Rehearsal on a CPU: GPU_ENV=<a script putting Paddle on PYTHONPATH> BENCH_ARGS=--dry-run OUT=/tmp/x bash ...
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = prepare ]; then
    exclude="$(git rev-parse --git-dir)/info/exclude"
    mkdir -p "$(dirname "$exclude")" .whl
    grep -qx "/.whl/" "$exclude" 2>/dev/null || echo "/.whl/" >> "$exclude"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
        typeguard==4.6.1 typing_extensions==4.15.0
    ls .whl
    [ -d .gpu/extra ] || echo "no Paddle kit in .gpu/ yet: bash ../shared/gpu/prepare.sh"
    exit 0
fi

OUT=${OUT:-/tmp/gpu_session_out}
GPU_ENV=${GPU_ENV:-/tmp/gpu_env.sh}  # what on_device.sh writes (another file rehearses this on a CPU)
mkdir -p "$OUT"
[ -f "$GPU_ENV" ] || { echo "no $GPU_ENV: assemble the kit first (../shared/gpu/README.md)"; exit 2; }
# shellcheck disable=SC1090
. "$GPU_ENV"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 3
fi
python3 -m pip install -q --no-deps --no-build-isolation --target /tmp/corolla . || exit 4
rm -rf build
export PYTHONPATH=/tmp/corolla${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python3 -m corolla env 2>&1 | tee "$OUT/env.txt"

timeout 210 python3 -m pytest -p no:cacheprovider -q -rs tests/test_gpu.py 2>&1 | tee "$OUT/test_gpu.txt"
echo "tests: exit ${PIPESTATUS[0]}" | tee -a "$OUT/test_gpu.txt"

# shellcheck disable=SC2086
timeout 330 python3 benchmarks/bench_gpu.py --out "$OUT/bench_gpu.json" ${BENCH_ARGS:-} 2>&1 \
    | grep -v "^\[Train\]\[Epoch" | tee "$OUT/bench_gpu.txt"
echo "benchmark: exit ${PIPESTATUS[0]}" | tee -a "$OUT/bench_gpu.txt"
