"""The engine's verbs: ``train``, ``eval``, ``infer``, ``export``, ``predict``.

Each reads ``-c CONFIG -o ...`` and the plugin flags, then hands over to
``corolla.engine``; engine modules import paddle, so they are imported here
only when their verb runs.
"""
from __future__ import annotations

import argparse

from corolla.cli.common import interrupt_on_sigterm, plan_from_args


def _with_eval_engine(args: argparse.Namespace) -> argparse.Namespace:
    """``--eval-engine X`` is ``-o Global.eval_engine=X``, so that the run manifest records it."""
    if args.eval_engine:
        args.override = [*args.override, f"Global.eval_engine={args.eval_engine}"]
    return args


def train(args: argparse.Namespace) -> int:
    from corolla.engine.train import train as run_training

    interrupt_on_sigterm()  # after paddle's import: its handler printed a C++ stack, with no advice on resuming
    run_training(plan_from_args(_with_eval_engine(args)), overwrite=args.overwrite)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    from corolla.data.placement import is_main_process
    from corolla.engine.evaluate import evaluate_config
    from corolla.engine.formatting import format_values

    results = evaluate_config(plan_from_args(_with_eval_engine(args)))
    if is_main_process():
        print(f"[Eval] {format_values(results)}, images/s: {results['images_per_sec']:.1f}", flush=True)
    return 0


def infer(args: argparse.Namespace) -> int:
    from corolla.engine.inference import infer as run_infer

    run_infer(plan_from_args(args), json_path=args.json, skip_bad_images=args.skip_bad_images)
    return 0


def export(args: argparse.Namespace) -> int:
    from corolla.engine.export import export as run_export

    folder = run_export(plan_from_args(args), formats=[args.format])
    print(f"[Export] inference model ({args.format}) written to {folder}", flush=True)
    return 0


def predict(args: argparse.Namespace) -> int:
    from corolla.engine.predict import predict as run_predict

    run_predict(plan_from_args(args), backend=args.backend, json_path=args.json, skip_bad_images=args.skip_bad_images)
    return 0
