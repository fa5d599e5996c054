"""How long ``corolla quickstart`` takes, and on what: the README's figure, rerunnable by anyone.

Each run is a fresh ``corolla quickstart`` process (generate the dataset, train, evaluate,
export, predict) in its own work folder. For each run it reports the wall time, the CPU time
of the process and its children (user + system) and the peak resident memory of the largest
process; with them the machine it ran on: CPU model, cores this process may use, Paddle's
version, and the load average before and after (other work on a shared machine lengthens
the wall time, much less the CPU time). CPU time over wall time is how many cores it kept
busy on average.

Run: ``python benchmarks/bench_quickstart.py [--runs 1] [--json FILE] [-o Global.epochs=5 ...]``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path


def machine() -> dict:
    """What the figures were taken on."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    try:
        paddle = metadata.version("paddlepaddle")
    except metadata.PackageNotFoundError:
        paddle = metadata.version("paddlepaddle-gpu")
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(), "paddle": paddle}


def run_once(workdir: Path, overrides: list[str]) -> dict:
    """One quickstart in a child process: its wall time, CPU time, peak memory and top-1."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "corolla", "quickstart", "--workdir", str(workdir),
                           *(arg for override in overrides for arg in ("-o", override))],
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"corolla quickstart failed ({done.returncode}):\n{done.stderr[-3000:]}")
    top1 = re.search(r"Top-1 on the validation set: ([0-9.]+)", done.stdout)
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 1),
        "peak_rss_mb": round(after.ru_maxrss / 1024),  # Linux: KiB, the largest child so far
        "top1": float(top1.group(1)) if top1 else None,
        "load_before": [round(x, 2) for x in load],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="quickstarts to run one after the other (default: 1)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("-o", "--override", action="append", default=[], help="passed on to corolla quickstart")
    args = parser.parse_args()
    host = machine()
    print(f"machine: {host['cpu']}, {host['cores']} cores usable, Python {host['python']}, Paddle {host['paddle']}")
    runs = []
    for index in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench_quickstart_") as folder:
            runs.append(run_once(Path(folder), args.override))
        r = runs[-1]
        print(f"run {index + 1}: {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU ({r['cpu_s'] / r['wall_s']:.2f} cores busy), "
              f"peak {r['peak_rss_mb']} MB, top-1 {r['top1']}; load average (1/5/15 min) "
              f"{'/'.join(map(str, r['load_before']))} before, {'/'.join(map(str, r['load_after']))} after", flush=True)
    wall = statistics.median(r["wall_s"] for r in runs)
    cpu = statistics.median(r["cpu_s"] for r in runs)
    print(f"median of {len(runs)}: {wall:.0f} s wall ({wall / 60:.1f} min), {cpu:.0f} s CPU time, "
          f"peak {max(r['peak_rss_mb'] for r in runs)} MB, on {host['cores']} cores")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": host, "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
