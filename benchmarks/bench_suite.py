"""The test suite's wall time, in the two ways it runs on a 2-core machine: both Paddle
environments side by side with one core each (as ``tests/run.sh`` runs them), and each
environment alone on every core (``pytest -n <cores> --dist worksteal``, pytest-xdist: an idle
worker takes tests from a busy one, so the long tests do not leave one core waiting).

The slow slices are left out (``COROLLA_SLOW_SHARD=none``), so that every run covers the same
tests; ``tests/run.sh`` adds one slice per environment. The environments must exist
(``bash tests/run.sh`` makes them). Prints a table of wall seconds and pytest's summary line,
and writes them as JSON with ``--json``.

Run: ``python benchmarks/bench_suite.py [--envs .venv .venv26] [--cores 2] [--ways side alone] [--json FILE]``
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]


def _pytest(venv: str, *extra: str) -> tuple[subprocess.Popen, IO[str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COROLLA_SLOW_SHARD": "none"}
    command = [str(ROOT / venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-q", *extra]
    log = tempfile.TemporaryFile("w+")  # not a pipe: a run side by side must not block on a full one
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True), log


def _finish(runs: list[tuple[subprocess.Popen, IO[str]]], started: float) -> list[dict]:
    """Wait for every run; each one's seconds count until it ended, not until the others did."""
    ended: dict[int, float] = {}
    while len(ended) < len(runs):
        for index, (process, _) in enumerate(runs):
            if index not in ended and process.poll() is not None:
                ended[index] = time.monotonic()
        time.sleep(0.2)
    results = []
    for index, (process, log) in enumerate(runs):
        log.seek(0)
        output = log.read()
        summary = [line for line in output.splitlines() if " passed" in line or " failed" in line]
        results.append({"seconds": round(ended[index] - started), "exit": process.returncode,
                        "summary": summary[-1].strip("= ") if summary else output[-300:]})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=[".venv", ".venv26"])
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ways", nargs="+", choices=["side", "alone"], default=["side", "alone"],
                        help="side by side with one core each, and/or each environment alone")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    missing = [venv for venv in args.envs if not (ROOT / venv / "bin" / "python").is_file()]
    if missing:
        sys.exit(f"bench_suite: no environment {', '.join(missing)} (bash tests/run.sh makes them)")

    rows = []
    if "side" in args.ways:
        started = time.monotonic()
        for venv, result in zip(args.envs, _finish([_pytest(venv) for venv in args.envs], started)):
            rows.append({"run": "side by side, one core each", "env": venv, **result})
            print(f"{rows[-1]['run']}: {venv} {rows[-1]['seconds']} s", flush=True)
    for venv in args.envs if "alone" in args.ways else []:
        started = time.monotonic()
        (result,) = _finish([_pytest(venv, "-n", str(args.cores), "--dist", "worksteal")], started)
        rows.append({"run": f"alone, pytest -n {args.cores} --dist worksteal", "env": venv, **result})
        print(f"{rows[-1]['run']}: {venv} {rows[-1]['seconds']} s", flush=True)

    print("\n| run | environment | wall s | pytest |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['run']} | {row['env']} | {row['seconds']} | {row['summary']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(row["exit"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
