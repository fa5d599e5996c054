"""Test support for the engine tests: a tiny backbone and test-only callbacks and losses,
registered as a plugin (in-process through ``extra_plugins``, in subprocesses through a
fake distribution), and a builder for small configs on generated data."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import paddle


class TinyNet(paddle.nn.Layer):
    """Two strided convolutions, global pooling and a classifier."""

    def __init__(self, class_num: int = 10, width: int = 8, batch_norm: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        norm = (lambda c: paddle.nn.BatchNorm2D(c)) if batch_norm else (lambda c: paddle.nn.Identity())
        self.features = paddle.nn.Sequential(
            paddle.nn.Conv2D(3, width, 3, stride=2, padding=1), norm(width), paddle.nn.ReLU(),
            paddle.nn.Conv2D(width, 2 * width, 3, stride=2, padding=1), norm(2 * width), paddle.nn.ReLU(),
            paddle.nn.AdaptiveAvgPool2D(1), paddle.nn.Flatten(),
        )
        self.dropout = paddle.nn.Dropout(dropout)
        self.fc = paddle.nn.Linear(2 * width, class_num)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.fc(self.dropout(self.features(x)))


def build_tiny(*, class_num: int = 10, width: int = 8, batch_norm: bool = True, dropout: float = 0.0,
               pretrained: bool = False) -> TinyNet:
    return TinyNet(class_num, width, batch_norm, dropout)


class StopAfterSteps:
    """Stop training after ``steps`` steps of the run."""

    def __init__(self, steps: int = 2) -> None:
        self.steps = steps

    def corolla_step_end(self, run: Any, epoch: int, step: int, logs: Any) -> None:
        if run.global_step >= self.steps:
            run.stop_training = True


class CrashAfterEpoch:
    """Die like a killed process once epoch ``epoch`` is over (checkpoints and logs
    written), as the next epoch starts."""

    def __init__(self, epoch: int = 1, hard: bool = False) -> None:
        self.epoch = epoch
        self.hard = hard

    def corolla_epoch_start(self, run: Any, epoch: int) -> None:
        if epoch == self.epoch + 1:
            if self.hard:
                os._exit(9)
            raise KeyboardInterrupt(f"simulated kill after epoch {epoch}")


class WaitInEpoch:
    """Once epoch ``epoch`` starts (epoch 1's checkpoint written), create ``ready`` and wait
    there for a signal the test sends."""

    def __init__(self, ready: str, epoch: int = 2) -> None:
        self.ready = Path(ready)
        self.epoch = epoch

    def corolla_epoch_start(self, run: Any, epoch: int) -> None:
        if epoch == self.epoch:
            self.ready.touch()
            time.sleep(300)


class SaveRankWeights:
    """At the end of training every rank writes its trainable parameters to ``folder/rank{r}.npz``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def corolla_train_end(self, run: Any) -> None:
        arrays = {name: p.numpy() for name, p in run.model.named_parameters() if not p.stop_gradient}
        np.savez(Path(self.folder) / f"rank{run.rank}.npz", **arrays)


class NanAfterCalls:
    """A cross entropy that returns NaN from its ``calls``-th call on."""

    def __init__(self, calls: int = 3) -> None:
        self.calls = calls
        self.count = 0

    def __call__(self, outputs: paddle.Tensor, labels: paddle.Tensor) -> dict:
        self.count += 1
        loss = paddle.nn.functional.cross_entropy(outputs, labels.reshape([-1, 1]))
        return {"NanLoss": loss * float("nan") if self.count >= self.calls else loss}


class ScriptedError:
    """A metric that gives ``values[k]`` as ``err`` at the k-th evaluation: a lower-is-better
    metric (``lower_is_better``) with known values."""

    def __init__(self, values: list, lower_is_better: bool = True) -> None:
        self.values, self.lower_is_better, self.evaluations = values, lower_is_better, -1

    def reset(self) -> None:
        self.evaluations += 1

    def update(self, outputs: Any, labels: Any) -> dict:
        return {}

    def result(self) -> dict:
        return {"err": float(self.values[self.evaluations])}


def corolla_metrics() -> dict:
    return {"ScriptedError": ScriptedError}


def corolla_backbones() -> dict:
    return {"TinyNet": build_tiny}


def corolla_callbacks() -> dict:
    return {"StopAfterSteps": StopAfterSteps, "CrashAfterEpoch": CrashAfterEpoch, "SaveRankWeights": SaveRankWeights,
            "WaitInEpoch": WaitInEpoch}


def corolla_losses() -> dict:
    return {"NanAfterCalls": NanAfterCalls}


# --- configs -----------------------------------------------------------------------


def _ops(size: int, *, train: bool) -> list:
    ops: list = [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, {"ResizeImage": {"size": size}}]
    if train:
        ops.append({"RandFlipImage": {"flip_code": 1}})
    ops.append({"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.485, 0.456, 0.406],
                                   "std": [0.229, 0.224, 0.225], "order": ""}})
    return ops


def tiny_config(data: Any, out: Path, *, epochs: int = 2, size: int = 32, batch: int = 8, seed: int = 7,
                flip: bool = True, arch: dict | None = None) -> dict:
    """A complete config for TinyNet on a :func:`corolla.synthetic.make_list_dataset` dataset."""
    def loader(list_file: Path, shuffle: bool, train: bool) -> dict:
        return {
            "dataset": {"name": "ImageNetDataset", "image_root": str(data.root), "cls_label_path": str(list_file),
                        "transform_ops": _ops(size, train=train and flip)},
            "sampler": {"name": "DistributedBatchSampler", "batch_size": batch, "drop_last": False, "shuffle": shuffle},
            "loader": {"num_workers": 0},
        }

    return {
        "Global": {"epochs": epochs, "output_dir": str(out), "seed": seed, "print_batch_step": 1, "device": "cpu",
                   "save_inference_dir": str(out / "inference"), "image_shape": [3, size, size], "save_interval": 1},
        "Arch": arch or {"name": "TinyNet", "class_num": data.num_classes},
        "Loss": {"Train": [{"CELoss": {"weight": 1.0}}], "Eval": [{"CELoss": {"weight": 1.0}}]},
        "Optimizer": {"name": "Momentum", "momentum": 0.9,
                      "lr": {"name": "Cosine", "learning_rate": 0.05, "warmup_epoch": 1},
                      "regularizer": {"name": "L2", "coeff": 0.0001}},
        "DataLoader": {"Train": loader(data.train_list, True, True), "Eval": loader(data.val_list, False, False)},
        "Infer": {"infer_imgs": str(data.root / "images" / data.class_names[0]), "batch_size": 4,
                  "transforms": _ops(size, train=False) + [{"ToCHWImage": None}],
                  "PostProcess": {"name": "Topk", "topk": 2, "class_id_map_file": str(data.label_list)}},
        "Metric": {"Train": [{"TopkAcc": {"topk": [1, 2]}}], "Eval": [{"TopkAcc": {"topk": [1, 2]}}]},
    }


# --- building pieces from plain config fragments (what the verbs do through a plan) ---------


def plan_of(config: dict, registry: Any) -> Any:
    from corolla.config.planner import read_plan

    return read_plan(config, registry)


def pipeline_of(ops: list, registry: Any, key_path: str = "T") -> Any:
    """The pipeline of a ``transform_ops`` list, planned and built as a loader would."""
    from corolla.config.planner import plan_items
    from corolla.data.pipeline import build_pipeline

    return build_pipeline(plan_items(registry, "transform", ops, key_path), registry, key_path)


def batch_ops_of(items: list, registry: Any, key_path: str = "B", *, class_num: int | None = None) -> list:
    from corolla.config.planner import plan_items

    defaults = {"class_num": class_num} if class_num else {}
    return [part.build(registry) for part in plan_items(registry, "batch_transform", items, key_path, **defaults)]


def loader_of(config: dict, mode: str, registry: Any, *, seed: int | None = None, rank: int | None = None,
              world_size: int | None = None) -> Any:
    """``build_dataloader`` of ``DataLoader.<mode>`` as the engine calls it."""
    from corolla.data.loader import build_dataloader

    plan = plan_of(config, registry)
    if mode not in plan.loaders:
        from corolla.plugin.errors import ConfigError

        raise ConfigError(f"DataLoader.{mode}: missing section")
    return build_dataloader(plan.loaders[mode], registry, class_num=plan.model.class_num if plan.model else None,
                            seed=plan.settings.seed or 0 if seed is None else seed, rank=rank, world_size=world_size,
                            image_shape=plan.settings.image_shape)


def loss_of(items: list, registry: Any, key_path: str = "Loss.Train") -> Any:
    from corolla.engine.loss import build_loss

    mode = key_path.rpartition(".")[2]
    return build_loss(plan_of({"Loss": {mode: items}}, registry).losses[mode], registry, key_path)
