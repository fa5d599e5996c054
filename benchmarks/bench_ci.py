"""The README's test command from a clean clone, timed: this checkout's commit cloned into a
temporary folder (with ``../shared`` beside it, as this checkout has it), then ``bash .ci/run``
there, which installs both virtual environments from the package index and runs each Paddle's
suite with one slow slice, as CI does. Prints the wall time and each Paddle's pytest summary.

Run: ``python benchmarks/bench_ci.py [--keep]`` (``--keep``: leave the clone, to read its logs).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def clean_clone(folder: Path) -> Path:
    """Clone this checkout's commit into ``folder/main``, with the shared folder beside it."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(folder / "main")], check=True)
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        (folder / "shared").symlink_to(shared.resolve())
    return folder / "main"


def summaries(output: str) -> list[tuple[str, str]]:
    """``(environment line, pytest summary line)`` per Paddle, in the order ``tests/run.sh`` prints them."""
    found, current = [], None
    for line in output.splitlines():
        if line.startswith("===== "):
            current = line.removeprefix("===== ").strip()
        elif current and re.search(r"\d+ (passed|failed)", line) and " in " in line:
            found.append((current, line.strip("= ").strip()))
            current = None
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave the clone and its log")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    folder = Path(tempfile.mkdtemp(prefix="corolla-ci-"))
    try:
        clone = clean_clone(folder)
        started = time.perf_counter()
        done = subprocess.run(["bash", ".ci/run"], cwd=clone, capture_output=True, text=True)
        wall = time.perf_counter() - started
        (folder / "ci.log").write_text(done.stdout + done.stderr)
        print(f"| commit | `.ci/run` from a clean clone | result |\n|---|---|---|\n"
              f"| {commit} | {wall:.0f} s | {'passed' if done.returncode == 0 else f'failed (exit {done.returncode})'} |")
        for environment, summary in summaries(done.stdout):
            print(f"  {environment}: {summary}")
        if args.keep:
            print(f"clone and log: {folder}")
        return done.returncode
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
