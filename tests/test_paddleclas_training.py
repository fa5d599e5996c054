"""One training step per model family from PaddleClas 2.6's own configs (issue 12).

For each folder of ``ImageNet/`` (a model family, or a recipe folder: ``DataAugment``,
``Distillation``) one config is loaded as a user would run it, with ``-o`` overrides for
what differs here only: data paths (a generated dataset), the image size (the smallest the
model takes, its family module's ``MIN_INPUT_SIZE``, and at least 64), batches of 2, pretrained weights off,
a stop after two steps (or one update with ``Global.update_freq``), no evaluation, no loader
workers. It must train: the steps run and every loss is finite. The config keeps
``device: gpu``, AMP, EMA, its optimizer, schedule, sampler and augmentations.

Fast (run on every commit, about 15 s together): PPLCNet (PP series), PPLCNetV2
(MultiScaleSampler), MobileNetV3, ResNet (ResNet18), FasterNet (AdamW, its ignored
clip_grad), Distillation (PPLCNet_x1_0_ssld: a frozen ResNet50_vd teacher). Every other
family is marked ``slow`` (CI runs one shard of the slow tests per commit); among them
ConvNeXt (update_freq 4), CvT_21 (update_freq 2, RASampler) and MobileViTV3
(MultiScaleSampler).

The configs are at ``../shared/paddleclas-2.6/configs`` (or ``$COROLLA_PADDLECLAS_CONFIGS``);
without them the tests are skipped.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest

import corolla
import engine_support
from _backbone_cases import input_size
from corolla.config.load import load_config
from corolla.config.planner import read_plan
from corolla.engine.train import train
from corolla.testing.datasets import make_list_dataset
from test_paddleclas_configs import CONFIGS

#: ImageNet folder -> its config under test: the folder's first, or its smallest model
FAMILIES: dict[str, str] = {
    "AlexNet": "AlexNet.yaml", "CSPNet": "CSPDarkNet53.yaml", "CSWinTransformer": "CSWinTransformer_tiny_224.yaml",
    "ConvNeXt": "ConvNeXt_tiny.yaml", "CvT": "CvT_21_224.yaml", "DLA": "DLA34.yaml", "DPN": "DPN68.yaml",
    "DSNet": "DSNet_tiny.yaml", "DarkNet": "DarkNet53.yaml", "DataAugment": "ResNet50_Cutmix.yaml",
    "DeiT": "DeiT_tiny_patch16_224.yaml", "DenseNet": "DenseNet121.yaml", "Distillation": "PPLCNet_x1_0_ssld.yaml",
    "ESNet": "ESNet_x0_25.yaml", "EfficientNet": "EfficientNetB0.yaml", "EfficientNetV2": "EfficientNetV2_S.yaml",
    "FasterNet": "FasterNet_T1.yaml", "GhostNet": "GhostNet_x0_5.yaml", "HRNet": "HRNet_W18_C.yaml",
    "HarDNet": "HarDNet39_ds.yaml", "Inception": "InceptionV3.yaml", "LeViT": "LeViT_128S.yaml",
    "MicroNet": "MicroNet_M0.yaml", "MixNet": "MixNet_S.yaml", "MobileNeXt": "MobileNeXt_x1_0.yaml",
    "MobileNetV1": "MobileNetV1.yaml", "MobileNetV2": "MobileNetV2.yaml", "MobileNetV3": "MobileNetV3_large_x0_35.yaml",
    "MobileNetV4": "MobileNetV4_conv_small.yaml", "MobileViT": "MobileViT_XXS.yaml",
    "MobileViTV2": "MobileViTV2_x0_5.yaml", "MobileViTV3": "MobileViTV3_XXS.yaml", "NextViT": "NextViT_small_224.yaml",
    "PPHGNet": "PPHGNet_tiny.yaml", "PPHGNetV2": "PPHGNetV2_B0.yaml", "PPLCNet": "PPLCNet_x0_25.yaml",
    "PPLCNetV2": "PPLCNetV2_small.yaml", "PVTV2": "PVT_V2_B0.yaml", "PeleeNet": "PeleeNet.yaml",
    "ReXNet": "ReXNet_1_0.yaml", "RedNet": "RedNet26.yaml", "RegNet": "RegNetX_200MF.yaml", "RepVGG": "RepVGG_A0.yaml",
    "Res2Net": "Res2Net50_26w_4s.yaml", "ResNeSt": "ResNeSt50_fast_1s1x64d.yaml", "ResNeXt": "ResNeXt50_32x4d.yaml",
    "ResNeXt101_wsl": "ResNeXt101_32x8d_wsl.yaml", "ResNet": "ResNet18.yaml", "SENet": "SE_ResNet18_vd.yaml",
    "ShuffleNet": "ShuffleNetV2_x0_25.yaml", "SqueezeNet": "SqueezeNet1_0.yaml", "StarNet": "StarNet_S1.yaml",
    "SwinTransformer": "SwinTransformer_tiny_patch4_window7_224.yaml",
    "SwinTransformerV2": "SwinTransformerV2_tiny_patch4_window8_256.yaml", "TNT": "TNT_small.yaml",
    "TinyNet": "TinyNet_A.yaml", "Twins": "pcpvt_small.yaml", "UniFormer": "UniFormer_small.yaml", "VAN": "VAN_B0.yaml",
    "VGG": "VGG11.yaml", "VisionTransformer": "ViT_small_patch16_224.yaml", "Xception": "Xception41.yaml",
}
FAST = {"PPLCNet", "PPLCNetV2", "MobileNetV3", "ResNet", "FasterNet", "Distillation"}
IMAGES = 8  # training images: 4 batches of 2
#: the smallest image trained on: at 32x32 the last maps of most nets are 1x1, where each
#: BatchNorm sees two values per channel, and an update at the configs' learning rates (set for
#: batches of hundreds) then sends some of them to inf (MobileNetV2, HRNet, RegNet, ...)
TRAIN_MIN_SIZE = 64


def cases() -> list:
    return [family if family in FAST else pytest.param(family, marks=pytest.mark.slow) for family in sorted(FAMILIES)]


@pytest.fixture(scope="module")
def registry():
    if not CONFIGS.is_dir():
        pytest.skip(f"PaddleClas 2.6 configs not found at {CONFIGS} (set COROLLA_PADDLECLAS_CONFIGS)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return corolla.load_registry(extra_plugins=[("engine_support", engine_support)])


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Any:
    """A small generated dataset per image size, made once."""
    made: dict[int, Any] = {}

    def of_size(size: int) -> Any:
        if size not in made:
            made[size] = make_list_dataset(tmp_path_factory.mktemp(f"data{size}"), num_classes=2, images_per_class=5,
                                           val_fraction=0.2, image_size=size + size // 4, seed=size)
            assert made[size].num_train == IMAGES
        return made[size]

    return of_size


def backbones(arch: dict) -> Iterator[str]:
    """The backbone names of ``Arch`` (a distillation model's sub-models)."""
    if arch.get("name") == "DistillationModel" or "models" in arch:
        for item in arch["models"]:
            (settings,) = item.values()
            yield from backbones(settings)
    else:
        yield arch["name"]


def pretrained_off(node: Any, path: str) -> Iterator[str]:
    """Overrides turning off every ``pretrained`` under ``Arch`` (no downloads in tests)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pretrained" and value:
                yield f"{path}.{key}=False"
            elif key == "pretrained_list" and value:
                yield f"{path}.{key}=null"
            else:
                yield from pretrained_off(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from pretrained_off(value, f"{path}.{index}")


def size_overrides(ops: list, where: str, size: int) -> Iterator[str]:
    """Overrides giving every op that sets an image size the test's ``size``."""
    for index, item in enumerate(ops or []):
        ((name, params),) = item.items()
        for key in ("size", "img_size", "resize_short"):
            if key in (params or {}):
                value = size + size // 8 if key == "resize_short" else size
                yield f"{where}.{index}.{name}.{key}={value}"


def overrides_for(config: dict, data: Any, out: Path, size: int, steps: int) -> list[str]:
    train = config["DataLoader"]["Train"]
    sampler = train.get("sampler") or {}
    found = [
        f"DataLoader.Train.dataset.image_root={data.root}", f"DataLoader.Train.dataset.cls_label_path={data.train_list}",
        "DataLoader.Train.loader.num_workers=0", "Global.epochs=1", "Global.eval_during_train=False",
        f"Global.output_dir={out}", f"Global.save_inference_dir={out / 'inference'}", "Global.pretrained_model=null",
        "Global.print_batch_step=1", f"Global.image_shape=[3,{size},{size}]", "Global.seed=5",
        f"Global.callbacks=[{{MetricsLog: null}}, {{StopAfterSteps: {{steps: {steps}}}}}]",
        *pretrained_off(config["Arch"], "Arch"),
        *size_overrides(train["dataset"].get("transform_ops"), "DataLoader.Train.dataset.transform_ops", size),
    ]
    if sampler.get("name") == "MultiScaleSampler":
        found += ["DataLoader.Train.sampler.first_bs=2", f"DataLoader.Train.sampler.scales=[{size},{size + 32}]"]
    else:
        found.append("DataLoader.Train.sampler.batch_size=2")
    if sampler.get("name") == "RASampler":
        found.append("DataLoader.Train.sampler.selected_round=4")
    return found


@pytest.mark.parametrize("family", cases())
def test_one_training_step_from_paddleclas_config(family, registry, datasets, tmp_path):
    path = CONFIGS / "ImageNet" / family / FAMILIES[family]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = load_config(path)
        size = max(TRAIN_MIN_SIZE, *(input_size(name) for name in backbones(config["Arch"])))
        steps = max(2, int((config.get("Global") or {}).get("update_freq", 1)))  # at least one update
        overrides = overrides_for(config, datasets(size), tmp_path, size, steps)
        plan = read_plan(load_config(path, overrides), registry)
        run = train(plan, distributed=False)

    assert run.global_step == steps and run.stop_training
    records = [json.loads(line) for line in (run.output_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["event"] == "step"]
    assert len(losses) == steps and all(math.isfinite(v) for v in losses), losses


def test_every_imagenet_folder_has_its_case():
    if not CONFIGS.is_dir():
        pytest.skip(f"PaddleClas 2.6 configs not found at {CONFIGS}")
    assert sorted(FAMILIES) == sorted(p.name for p in (CONFIGS / "ImageNet").iterdir() if p.is_dir())
    assert all((CONFIGS / "ImageNet" / family / name).is_file() for family, name in FAMILIES.items())
    assert FAST <= set(FAMILIES)
