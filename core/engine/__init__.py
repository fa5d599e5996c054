"""The training engine: train, evaluate, infer, export and predict from a config plan.

Each job lives in its own module (``corolla.engine.train``, ``.evaluate``,
``.infer``, ``.export``, ``.predict``); most import paddle, so the CLI imports
them only when a verb runs.
"""
