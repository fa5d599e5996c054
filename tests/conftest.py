"""Shared fixtures: fake plugin distributions on sys.path, tiny images and list files, the
same Paddle random state at the start of every test."""
from __future__ import annotations

import gc
import itertools
import os
import shutil
import tempfile
import textwrap
import zlib
from pathlib import Path
from typing import Callable

import paddle
import pytest

from corolla.engine.graph_cache import GRAPH_CACHE_ENV

_counter = itertools.count()


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Make a distribution with ``corolla.plugins`` entry points, visible on sys.path.

    ``fake_dist(name, {"ep_name": source_code}, version="1.0")`` writes each
    source as its own uniquely named module, declares it as entry point
    ``ep_name`` and returns the module-name prefix used.
    """
    root = tmp_path / f"site{next(_counter)}"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def make(dist: str, plugins: dict[str, str], version: str = "1.0") -> str:
        prefix = f"fake_{dist.replace('-', '_')}_{next(_counter)}"
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = ["[corolla.plugins]"]
        for ep_name, source in plugins.items():
            module = f"{prefix}_{ep_name}"
            (root / f"{module}.py").write_text(textwrap.dedent(source))
            lines.append(f"{ep_name} = {module}")
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        return prefix

    return make


@pytest.fixture(autouse=True)
def _same_paddle_random_state() -> None:
    """Every test starts from the same Paddle random state, whatever its worker ran before:
    a model built with Paddle's initializers gets the same weights in every run, so that a
    comparison near its tolerance for some weights fails every time or never, not now and then."""
    paddle.seed(0)


def pytest_configure(config: pytest.Config) -> None:
    """Evaluation graphs go to a cache of this session's own, not the user's (child processes inherit it)."""
    os.environ[GRAPH_CACHE_ENV] = tempfile.mkdtemp(prefix="corolla-test-graphs-")


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (Paddle, every plugin, the registry: over 200,000 objects)
    lives to the end: frozen out of the garbage collector's full collections, which
    building nets triggers every few tests and which would otherwise scan it each time."""
    gc.collect()
    gc.freeze()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(os.environ.pop(GRAPH_CACHE_ENV, ""), ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``COROLLA_SLOW_SHARD=k/n`` keeps the k-th of n slices of the ``slow`` tests (by a
    stable hash of their ids), ``all`` keeps them all, ``none`` drops them; unset, pytest's
    own selection (``-m``) decides. CI runs one slice per commit in each Paddle (tests/run.sh)."""
    shard = os.environ.get("COROLLA_SLOW_SHARD")
    if not shard or shard == "all":
        return
    if shard == "none":
        keep = lambda item: False  # noqa: E731
    else:
        index, count = (int(part) for part in shard.split("/"))
        keep = lambda item: zlib.crc32(item.nodeid.encode()) % count == index  # noqa: E731
    selected, dropped = [], []
    for item in items:
        (selected if item.get_closest_marker("slow") is None or keep(item) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = selected
