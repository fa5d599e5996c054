"""The test suite's wall time, in the two ways it runs on a 2-core machine: both Paddle
environments side by side with one core each (as ``tests/run.sh`` runs them), and each
environment alone on every core (``pytest -n <cores> --dist worksteal``, pytest-xdist: an idle
worker takes tests from a busy one, so the long tests do not leave one core waiting).

The slow slices are left out (``COROLLA_SLOW_SHARD=none``), so that every run covers the same
tests; ``tests/run.sh`` adds one slice per environment. The environments must exist
(``bash tests/run.sh`` makes them). Prints a table of wall seconds and pytest's summary line,
and writes them as JSON with ``--json``.

A shared machine's speed drifts (the same tree took 265 s and 287 s within an hour here), so
a change is measured against a baseline in the same sitting: ``--against COMMIT`` checks that
commit's tree out beside this one (a git worktree using these environments) and alternates
the two, ``--rounds`` times, then prints each one's median and their ratio. The environments'
corolla is this checkout's (an editable install): the baseline runs its own tests against
this checkout's code, which is what a change to the tests alone needs.

Run: ``python benchmarks/bench_suite.py [--envs .venv .venv26] [--cores 2] [--ways side alone]
[--against COMMIT] [--rounds 1] [--json FILE]``
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator

ROOT = Path(__file__).resolve().parents[1]


def _pytest(tree: Path, venv: str, *extra: str) -> tuple[subprocess.Popen, IO[str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COROLLA_SLOW_SHARD": "none"}
    command = [str(ROOT / venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "-q", *extra]
    log = tempfile.TemporaryFile("w+")  # not a pipe: a run side by side must not block on a full one
    return subprocess.Popen(command, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, text=True), log


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


def _measure(tree: Path, label: str, envs: list[str], ways: list[str], cores: int) -> list[dict]:
    """The suite of ``tree`` run each way in ``ways``: one row per environment and way."""
    rows = []
    if "side" in ways:
        started = time.monotonic()
        for venv, result in zip(envs, _finish([_pytest(tree, venv) for venv in envs], started)):
            rows.append({"tree": label, "run": "side by side, one core each", "env": venv, **result})
            print(f"{label}, {rows[-1]['run']}: {venv} {rows[-1]['seconds']} s", flush=True)
    for venv in envs if "alone" in ways else []:
        started = time.monotonic()
        (result,) = _finish([_pytest(tree, venv, "-n", str(cores), "--dist", "worksteal")], started)
        rows.append({"tree": label, "run": f"alone, pytest -n {cores} --dist worksteal", "env": venv, **result})
        print(f"{label}, {rows[-1]['run']}: {venv} {rows[-1]['seconds']} s", flush=True)
    return rows


@contextlib.contextmanager
def _checkout(commit: str, envs: list[str]) -> Iterator[Path]:
    """``commit``'s tree in a temporary git worktree, with links to this checkout's environments
    and to its ``../shared`` (PaddleClas's configs, which the compatibility tests read)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    tree = folder / ROOT.name
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), commit], cwd=ROOT, check=True)
    try:
        for venv in envs:
            (tree / venv).symlink_to(ROOT / venv)
        if (ROOT.parent / "shared").is_dir():
            (folder / "shared").symlink_to(ROOT.parent / "shared")
        yield tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _ratios(rows: list[dict], baseline: str) -> list[str]:
    """For each way and environment: the median seconds of the baseline and of this checkout, and their ratio."""
    lines = []
    for run, env in dict.fromkeys((row["run"], row["env"]) for row in rows):
        def median(tree: str) -> float:
            return statistics.median(r["seconds"] for r in rows if (r["tree"], r["run"], r["env"]) == (tree, run, env))
        before, after = median(baseline), median("this checkout")
        lines.append(f"| {run} | {env} | {before:g} | {after:g} | {after / before:.2f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=[".venv", ".venv26"])
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ways", nargs="+", choices=["side", "alone"], default=["side", "alone"],
                        help="side by side with one core each, and/or each environment alone")
    parser.add_argument("--against", metavar="COMMIT", help="a baseline commit, run in turn with this checkout")
    parser.add_argument("--rounds", type=int, default=1, help="how many times each tree runs (default: %(default)s)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    missing = [venv for venv in args.envs if not (ROOT / venv / "bin" / "python").is_file()]
    if missing:
        sys.exit(f"bench_suite: no environment {', '.join(missing)} (bash tests/run.sh makes them)")

    rows = []
    with _checkout(args.against, args.envs) if args.against else contextlib.nullcontext() as baseline:
        for _ in range(args.rounds):
            if baseline is not None:
                rows += _measure(baseline, args.against, args.envs, args.ways, args.cores)
            rows += _measure(ROOT, "this checkout", args.envs, args.ways, args.cores)

    print("\n| tree | run | environment | wall s | pytest |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['tree']} | {row['run']} | {row['env']} | {row['seconds']} | {row['summary']} |")
    if args.against:
        print(f"\n| run | environment | {args.against} s (median) | this checkout s (median) | ratio |\n|---|---|---|---|---|")
        print("\n".join(_ratios(rows, args.against)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(row["exit"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
