"""What a running search shows: a line when a stage starts and when each trial starts and
ends (stage, trial, value, time, best so far), and a bar per stage on a terminal."""
from __future__ import annotations

import sys
import threading
import time

from tqdm import tqdm


def clock(seconds: float) -> str:
    """``1:02:03`` (hours:minutes:seconds)."""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


class Progress:
    """Lines on stdout (safe from several worker threads); the bar goes to stderr and
    only when it is a terminal."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.bar: tqdm | None = None

    def say(self, text: str) -> None:
        with self.lock:
            tqdm.write(f"[search {clock(time.monotonic() - self.started)}] {text}", file=sys.stdout)
            sys.stdout.flush()

    def stage(self, title: str, total: int, done: int) -> None:
        """A stage starts: its title line, and a fresh bar of ``total`` trials."""
        self.close()
        self.say(title)
        with self.lock:
            self.bar = tqdm(total=total, initial=done, desc="trials", leave=False, dynamic_ncols=True,
                            disable=not sys.stderr.isatty())

    def advance(self, best: str) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.set_postfix_str(best, refresh=False)
                self.bar.update(1)

    def close(self) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
