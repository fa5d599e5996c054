"""Evaluation: loss and metrics over a whole loader, exact under data parallelism."""
from __future__ import annotations

import contextlib
import time
import warnings
from typing import Any, Mapping, Sequence

import paddle

from corolla.config.plan import Plan
from corolla.engine.builders import build_metrics, build_trained_model
from corolla.engine.collectives import gather_outputs, select_rows
from corolla.engine.eval_engine import EvalEngine
from corolla.data.placement import cpu_thread_count, setup_environment
from corolla.engine.formatting import progress
from corolla.engine.precision import Precision
from corolla.data.loader import build_dataloader
from corolla.engine.loss import TermMeans, build_loss, labeled_rows


def deciding_metric(metrics: Mapping[str, float], eval_metrics: Sequence[Any]) -> tuple[str | None, bool]:
    """The value that decides ``best_model``, and whether lower is better: the first value of
    the first ``Metric.Eval`` entry (PaddleClas's rule) with that metric's ``lower_is_better``,
    else the top-1 accuracy."""
    for metric in eval_metrics:
        for key in metric.result():
            return key, bool(getattr(metric, "lower_is_better", False))
    return ("top1" if "top1" in metrics else None), False


def improves(value: float, best: float | None, lower_is_better: bool) -> bool:
    """Whether ``value`` beats ``best`` (None: no evaluation yet)."""
    return best is None or (value < best if lower_is_better else value > best)


def sample_count(loader: Any) -> int | None:
    """How many distinct samples a loader's dataset has (None when it does not say)."""
    dataset = getattr(loader, "dataset", None)
    try:
        return len(dataset) if dataset is not None else None
    except TypeError:
        return None


def real_rows(start: int, count: int, *, rank: int, world_size: int, size: int) -> paddle.Tensor:
    """Which of this rank's ``count`` samples from its ``start``-th on are real, not
    the repeats that even out the ranks: corolla's loader deals sample ``i`` of
    the padded epoch order to rank ``i % world_size``, so local sample ``j`` is
    sample ``j * world_size + rank`` and real when that is below ``size``."""
    local = paddle.arange(start, start + count, dtype="int64")
    return (local * world_size + rank < size).astype("int64")


@paddle.no_grad()
def evaluate(
    model: paddle.nn.Layer,
    loader: Any,
    *,
    metrics: Sequence[Any],
    loss_fn: Any = None,
    precision: Precision | None = None,
    rank: int = 0,
    world_size: int = 1,
    show_progress: bool = True,
    engine: EvalEngine | None = None,
) -> dict[str, float]:
    """``loss`` and each loss term (means over the samples, or over the labeled ones for a
    term of labeled rows only: :class:`corolla.engine.loss.TermMeans`), every metric's
    ``result()``, and ``images_per_sec``.

    ``engine`` may run the forward pass through Paddle Inference (see
    :mod:`corolla.engine.eval_engine`); without it, the model runs in dygraph.

    With several processes, every batch's outputs and labels are gathered from
    all ranks, so each rank computes the metrics over the whole set, without
    the samples the loader repeats to give all ranks the same number.
    """
    was_training = model.training
    model.eval()
    for metric in metrics:
        metric.reset()
    precision = precision or Precision(None, "cpu")
    # a loader that does not split the data (sampler BatchSampler) gives every rank the whole set
    world_size = getattr(getattr(loader, "sampler", None), "world_size", world_size)
    size = sample_count(loader) if world_size > 1 else None
    if world_size > 1 and size is None:
        warnings.warn("evaluation: the loader does not tell its dataset size; repeated padding samples are counted")
    terms = TermMeans(getattr(loss_fn, "labeled_terms", set()))
    seen = local = 0
    started = time.perf_counter()
    stack = contextlib.ExitStack()
    forward = stack.enter_context(engine.evaluation(model, batches=_length(loader))) if engine is not None else model
    try:
        for images, labels in progress(loader, total=_length(loader), desc="eval", enabled=show_progress):
            with precision.autocast(training=False):
                outputs = forward(images)
            if world_size > 1:
                count = int(labels.shape[0])
                keep = real_rows(local, count, rank=rank, world_size=world_size, size=size if size is not None else 2**62)
                local += count
                outputs, labels = gather_outputs(outputs, world_size), gather_outputs(labels, world_size)
                rows = paddle.nonzero(gather_outputs(keep, world_size)).flatten()
                outputs, labels = select_rows(outputs, rows), select_rows(labels, rows)
            count = int(labels.shape[0])
            if count == 0:
                continue
            if loss_fn is not None:
                values = {name: float(value.item()) for name, value in loss_fn(outputs, labels).items()}
                terms.add(values, count, float(labeled_rows(labels).item()))
            for metric in metrics:
                metric.update(outputs, labels)
            seen += count
    finally:
        stack.close()
        model.train() if was_training else model.eval()
    elapsed = max(time.perf_counter() - started, 1e-9)
    results = terms.means()
    for metric in metrics:
        results.update(metric.result())
    results["images_per_sec"] = seen / elapsed
    return results


def _length(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def evaluate_config(plan: Plan) -> dict[str, float]:
    """Run ``corolla eval``: ``Global.pretrained_model`` on ``DataLoader.Eval`` with
    ``Loss.Eval`` and ``Metric.Eval`` (also under ``paddle.distributed.launch``), on CPU
    through Paddle Inference as ``Global.eval_engine`` says."""
    plan.require("eval")
    settings = plan.settings
    env = setup_environment(settings.device, settings.seed)
    engine = EvalEngine(settings.eval_engine, device=env.device, threads=cpu_thread_count(env.world_size))
    model = build_trained_model(plan)
    loader = build_dataloader(plan.loaders["Eval"], plan.registry, class_num=plan.model.class_num, seed=env.seed,
                              rank=env.rank, world_size=env.world_size, image_shape=settings.image_shape,
                              device=env.device)
    results = evaluate(
        model,
        loader,
        metrics=build_metrics(plan, "Eval"),
        loss_fn=build_loss(plan.losses["Eval"], plan.registry, "Loss.Eval") if plan.losses["Eval"] else None,
        precision=Precision(plan.amp, env.device),
        rank=env.rank,
        world_size=env.world_size,
        show_progress=env.is_main,
        engine=engine,
    )
    plan.registry.hook.corolla_eval_end(run=None, epoch=0, metrics=results)
    return results
