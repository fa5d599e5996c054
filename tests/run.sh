#!/usr/bin/env bash
# The test command (the README's, and what .ci/run calls): set up two virtual
# environments, Paddle 3.x (.venv) and Paddle 2.6.2 (.venv26, the package registry's
# GPU line), and run the suite in both at once, one core each.
#
# Tests marked `slow` (the larger variants of each backbone family) run in the
# Paddle 3 environment in shards: each run takes one of 16 slices, picked
# by the commit (COROLLA_SLOW_SHARD=k/n chooses one; =all runs them all; =none none).
set -euo pipefail
cd "$(dirname "$0")/.."

quiet=(-q --disable-pip-version-check)
setup() {  # venv, paddle requirement, other pins
    [ -x "$1/bin/python" ] || python3 -m venv "$1"
    "$1/bin/pip" install "${quiet[@]}" -e ".[test,parity]" "${@:2}"
    "$1/bin/pip" install "${quiet[@]}" --no-deps paddleclas==2.6.0
}
setup .venv "paddlepaddle>=3.0"
setup .venv26 "paddlepaddle==2.6.2" "paddle2onnx<2"  # paddle2onnx 2 reads only Paddle 3's programs

shards=16
commit=$(git rev-parse --short=8 HEAD 2>/dev/null || echo 0)
export COROLLA_SLOW_SHARD=${COROLLA_SLOW_SHARD:-$(( 16#${commit:0:6} % shards ))/$shards}
export OMP_NUM_THREADS=1  # one core for each environment's run

logs=$(mktemp -d)
.venv/bin/python -m pytest -p no:cacheprovider -q > "$logs/paddle3.txt" 2>&1 & first=$!
.venv26/bin/python -m pytest -p no:cacheprovider -q -m "not slow" > "$logs/paddle26.txt" 2>&1 & second=$!
status=0
wait $first || status=1
wait $second || status=1
for pair in paddle3:.venv paddle26:.venv26; do
    echo "===== $("${pair#*:}/bin/python" -c 'import paddle; print("Paddle", paddle.__version__)' 2>/dev/null)" \
         "(${pair#*:}, slow shard ${COROLLA_SLOW_SHARD} in Paddle 3 only)"
    cat "$logs/${pair%%:*}.txt"
done
exit $status
