#!/usr/bin/env bash
# The test command (the README's, and what .ci/run calls): set up two virtual
# environments, Paddle 3.x (.venv) and Paddle 2.6.2 (.venv26, the package registry's
# GPU line), side by side, and run the suite in both at once, one core each.
#
# Tests marked `slow` (the larger variants of each backbone family) run in slices: of 32
# slices, each commit picks two, one for each environment, so that 16 commits run them all
# once, half of them in each Paddle. COROLLA_SLOW_SHARD=k/n runs slice k of n in both;
# =all runs them all; =none none.
set -euo pipefail
cd "$(dirname "$0")/.."

quiet=(-q --disable-pip-version-check)
setup() {  # venv, paddle requirement, other pins
    [ -x "$1/bin/python" ] || python3 -m venv "$1"
    "$1/bin/pip" install "${quiet[@]}" -e ".[test,parity]" "${@:2}"
    "$1/bin/pip" install "${quiet[@]}" --no-deps paddleclas==2.6.0
}
logs=$(mktemp -d)
setup .venv "paddlepaddle>=3.0" > "$logs/setup3.txt" 2>&1 & first=$!
setup .venv26 "paddlepaddle==2.6.2" "paddle2onnx<2" > "$logs/setup26.txt" 2>&1 & second=$!  # paddle2onnx 2 reads only Paddle 3's programs
wait $first || { cat "$logs/setup3.txt"; exit 1; }
wait $second || { cat "$logs/setup26.txt"; exit 1; }

slices=32
commit=$(git rev-parse --short=8 HEAD 2>/dev/null || echo 0)
pick=$(( 16#${commit:0:6} % (slices / 2) ))
slow3=${COROLLA_SLOW_SHARD:-$pick/$slices}
slow26=${COROLLA_SLOW_SHARD:-$(( pick + slices / 2 ))/$slices}
export OMP_NUM_THREADS=1  # one core for each environment's run

COROLLA_SLOW_SHARD=$slow3 .venv/bin/python -m pytest -p no:cacheprovider -q > "$logs/paddle3.txt" 2>&1 & first=$!
COROLLA_SLOW_SHARD=$slow26 .venv26/bin/python -m pytest -p no:cacheprovider -q > "$logs/paddle26.txt" 2>&1 & second=$!
status=0
wait $first || status=1
wait $second || status=1
for run in paddle3:.venv:$slow3 paddle26:.venv26:$slow26; do
    IFS=: read -r log venv slow <<< "$run"
    echo "===== $("$venv/bin/python" -c 'import paddle; print("Paddle", paddle.__version__)' 2>/dev/null)" \
         "($venv, slow slice $slow)"
    cat "$logs/$log.txt"
done
exit $status
