"""The training engine: train, evaluate, infer, export and predict from a config.

Each job lives in its own module (``corolla.engine.train``, ``.evaluate``,
``.infer``, ``.export``, ``.predict``); all of them import paddle, so the CLI
imports them only when a verb runs.
"""
import os
import sys

#: ``OMP_NUM_THREADS`` as the user set it, read before Paddle is imported
#: (importing Paddle sets it to 1 when unset, so afterwards a 1 means nothing).
USER_OMP_THREADS: str | None = None if "paddle" in sys.modules else os.environ.get("OMP_NUM_THREADS")
