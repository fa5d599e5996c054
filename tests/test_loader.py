"""build_dataloader: batches, seeded and resumable shuffling, ranks, one preprocessing for loader and infer,
batch transforms, workers, shared memory, and bad data."""
from __future__ import annotations

import copy
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from corolla import ConfigError, DataError, load_registry
from corolla.plugin.errors import ComponentArgumentError, UnknownComponentError
from corolla.data.batches import as_tensor
from corolla.data.loader import SkippedImagesWarning
from corolla.data.pipeline import UnreadableImageError
from corolla.data.sampler import EpochBatchSampler
from engine_support import loader_of, pipeline_of
from corolla.testing.datasets import make_list_dataset

NORMALIZE = {"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                "order": ""}}
TRAIN_OPS = [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, {"RandCropImage": {"size": 16}},
             {"RandFlipImage": {"flip_code": 1}}, NORMALIZE, {"RandomErasing": {"EPSILON": 0.5}}]
EVAL_OPS = [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, {"ResizeImage": {"resize_short": 20}},
            {"CropImage": {"size": 16}}, NORMALIZE, {"ToCHWImage": None}]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=7, image_size=24,
                             val_fraction=0.3, unlabeled=3)


def config_for(data, list_path: Path | None = None, *, ops=TRAIN_OPS, batch_size: int = 4, shuffle: bool = True,
               drop_last: bool = False, loader: dict | None = None, **dataset_extra) -> dict:
    return {
        "Global": {"seed": 5, "image_shape": [3, 16, 16]},
        "Arch": {"name": "ResNet18", "class_num": 3},
        "DataLoader": {"Train": {
            "dataset": {"name": "ImageNetDataset", "image_root": str(data.root),
                        "cls_label_path": str(list_path or data.train_list), "transform_ops": copy.deepcopy(ops),
                        **dataset_extra},
            "sampler": {"name": "DistributedBatchSampler", "batch_size": batch_size, "drop_last": drop_last,
                        "shuffle": shuffle},
            "loader": loader or {"num_workers": 0, "use_shared_memory": True},
        }},
    }


def collect(loader) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(images.numpy(), labels.numpy()) for images, labels in loader]


def test_batches_shapes_and_types(registry, data) -> None:
    loader = loader_of(config_for(data, data.train_extra_list), "Train", registry, rank=0, world_size=1)
    batches = collect(loader)
    assert len(loader) == len(batches) == 5  # 15 labeled + 3 unlabeled lines, batch 4
    images, labels = batches[0]
    assert images.shape == (4, 3, 16, 16) and images.dtype == np.float32
    assert labels.shape == (4,) and labels.dtype == np.int64
    every_label = np.concatenate([labels for _, labels in batches])
    assert sorted(every_label.tolist()) == [-1] * 3 + [0] * 5 + [1] * 5 + [2] * 5
    assert "18 images, 3 unlabeled, 3 classes" in loader.summary
    dropped = loader_of(config_for(data, drop_last=True), "Train", registry, rank=0, world_size=1)
    assert len(dropped) == 3 and all(len(labels) == 4 for _, labels in collect(dropped))


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
def test_batch_tensors_own_their_memory(dtype) -> None:
    # a tensor wrapping NumPy memory (DLPack) is freed through a deleter that holds a Paddle lock
    # while it waits for the GIL; a compiled step frees its inputs on Paddle's threads, and
    # training hung with the main thread holding the GIL and waiting for that lock
    array = np.arange(24).astype(dtype).reshape(2, 3, 4)
    tensor = as_tensor(array)
    array[:] = 7
    assert tensor.numpy().dtype == dtype
    np.testing.assert_array_equal(tensor.numpy(), np.arange(24).astype(dtype).reshape(2, 3, 4))


def test_shuffling_is_seeded_per_epoch_and_resumable(registry, data) -> None:
    straight = loader_of(config_for(data), "Train", registry, rank=0, world_size=1)
    epoch0, epoch1 = collect(straight), collect(straight)  # the second iteration is epoch 1
    order = lambda batches: np.concatenate([labels for _, labels in batches]).tolist()  # noqa: E731
    assert order(epoch0) != order(epoch1)
    resumed = loader_of(config_for(data), "Train", registry, rank=0, world_size=1)
    resumed.set_epoch(1)
    again = collect(resumed)
    assert order(again) == order(epoch1)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(again, epoch1))  # augmentation draws too
    other_seed = loader_of(config_for(data), "Train", registry, seed=99, rank=0, world_size=1)
    assert order(collect(other_seed)) != order(epoch0)


def test_loaders_iterated_together_keep_their_own_draws(registry, data) -> None:
    alone = collect(loader_of(config_for(data), "Train", registry, rank=0, world_size=1))
    first = loader_of(config_for(data), "Train", registry, rank=0, world_size=1)
    second = loader_of(config_for(data), "Train", registry, seed=8, rank=0, world_size=1)
    together = [(images.numpy(), other.numpy()) for (images, _), (other, _) in zip(first, second)]
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(alone, together))


def test_ranks_split_the_data(registry, data) -> None:
    ranks = [loader_of(config_for(data, shuffle=True), "Train", registry, rank=r, world_size=2) for r in (0, 1)]
    labels = [np.concatenate([lab for _, lab in collect(loader)]) for loader in ranks]
    assert len(labels[0]) == len(labels[1]) == 8  # 15 samples padded to 16, 8 per rank
    sampler = EpochBatchSampler(15, 4, shuffle=True, drop_last=False, seed=5, rank=0, world_size=2)
    both = np.concatenate([sampler.indices(),
                           EpochBatchSampler(15, 4, shuffle=True, drop_last=False, seed=5, rank=1, world_size=2).indices()])
    assert sorted(set(both.tolist())) == list(range(15)) and len(both) == 16
    single = loader_of(config_for(data), "Train", registry, rank=1, world_size=2)
    assert len(single) == 2  # 8 of 15 samples on rank 1
    config = config_for(data)
    config["DataLoader"]["Train"]["sampler"]["name"] = "BatchSampler"
    assert len(loader_of(config, "Train", registry, rank=1, world_size=2)) == 4  # no split


def test_rank_comes_from_the_launcher_environment(registry, data, monkeypatch) -> None:
    monkeypatch.setenv("PADDLE_TRAINER_ID", "1")
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    loader = loader_of(config_for(data), "Train", registry)
    assert (loader.sampler.rank, loader.sampler.world_size) == (1, 2) and len(loader) == 2


def test_loader_and_infer_give_the_same_arrays(registry, data) -> None:
    """One preprocessing implementation: the eval batch equals the infer pipeline, image by image."""
    loader = loader_of(config_for(data, data.val_list, ops=EVAL_OPS, shuffle=False), "Train", registry,
                              rank=0, world_size=1)
    batch = np.concatenate([images for images, _ in collect(loader)])
    pipeline = pipeline_of(EVAL_OPS, registry, "Infer.transforms")
    paths = [data.root / line.split()[0] for line in data.val_list.read_text().splitlines()]
    single = np.stack([pipeline(path) for path in paths])
    assert batch.shape == single.shape == (6, 3, 16, 16)
    assert np.array_equal(batch, single)


def test_batch_transforms_give_soft_labels(registry, data) -> None:
    config = config_for(data, batch_transform_ops=[{"MixupOperator": {"alpha": 0.2}}])
    images, labels = collect(loader_of(config, "Train", registry, rank=0, world_size=1))[0]
    assert labels.shape == (4, 3) and labels.dtype == np.float32
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
    # Global.class_num reaches the loader as Arch.class_num does (PaddleClas copies one into the other)
    del config["Arch"]["class_num"]
    config["Global"]["class_num"] = 3
    assert collect(loader_of(config, "Train", registry, rank=0, world_size=1))[0][1].shape == (4, 3)
    # without either, the model's own class count (ResNet18's 1000) is what Mixup mixes
    del config["Global"]["class_num"]
    assert collect(loader_of(config, "Train", registry, rank=0, world_size=1))[0][1].shape == (4, 1000)


def test_global_class_num_checks_the_labels_as_arch_class_num_does(registry, data) -> None:
    config = config_for(data)
    del config["Arch"]["class_num"]
    config["Global"]["class_num"] = 2
    with pytest.raises(DataError, match=r"train_list\.txt:\d+: label 2 is out of range for class_num=2"):
        loader_of(config, "Train", registry)


def test_config_errors(registry, data) -> None:
    config = config_for(data)
    del config["DataLoader"]["Train"]["dataset"]["transform_ops"]
    with pytest.raises(ConfigError, match=r"DataLoader\.Train\.dataset\.transform_ops: missing"):
        loader_of(config, "Train", registry)
    config = config_for(data)
    del config["DataLoader"]["Train"]["sampler"]["batch_size"]
    with pytest.raises(ComponentArgumentError, match=r"DataLoader\.Train\.sampler: sampler 'DistributedBatchSampler' .* "
                                                    r"needs argument 'batch_size', which is missing"):
        loader_of(config, "Train", registry)
    config = config_for(data)
    config["DataLoader"]["Train"]["sampler"]["name"] = "PKSampler"
    with pytest.raises(UnknownComponentError, match=r"DataLoader\.Train\.sampler: unknown sampler 'PKSampler'"):
        loader_of(config, "Train", registry)
    with pytest.raises(ConfigError, match=r"loader\.num_worker: unknown key\. Did you mean 'num_workers'"):
        loader_of(config_for(data, loader={"num_worker": 2}), "Train", registry)
    with pytest.raises(ConfigError, match=r"DataLoader\.Eval: missing section"):
        loader_of(config_for(data), "Eval", registry)
    config = config_for(data)
    config["Arch"]["class_num"] = 2
    with pytest.raises(DataError, match=r"train_list\.txt:\d+: label 2 is out of range for class_num=2"):
        loader_of(config, "Train", registry)


# --- bad data -----------------------------------------------------------------------


@pytest.fixture
def flawed(data, tmp_path) -> tuple[Path, Path]:
    """A list with one missing and one undecodable image among good ones."""
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    good = [f"{data.root / line}" for line in data.train_list.read_text().splitlines()]
    lines = good[:5] + [f"{tmp_path / 'gone.jpg'} 1", f"{tmp_path / 'broken.jpg'} 2"] + good[5:9]
    listing = tmp_path / "flawed.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing, tmp_path


def test_missing_images_fail_before_training(registry, data, flawed) -> None:
    listing, folder = flawed
    with pytest.raises(DataError, match=rf"1 of 11 images are missing: {listing}:6: {folder / 'gone.jpg'}.*skip_bad_images"):
        loader_of(config_for(data, listing), "Train", registry, rank=0, world_size=1)


def test_undecodable_image_fails_with_its_line(registry, data, flawed, tmp_path) -> None:
    listing, folder = flawed
    fixed = tmp_path / "only_broken.txt"
    fixed.write_text("".join(line + "\n" for line in listing.read_text().splitlines() if "gone" not in line))
    loader = loader_of(config_for(data, fixed, shuffle=False), "Train", registry, rank=0, world_size=1)
    with pytest.raises(UnreadableImageError, match=rf"{fixed}:6: {folder / 'broken.jpg'}: cannot decode image.* \(to skip "
                                                   r"unreadable images, set DataLoader.Train.loader.skip_bad_images: true\)$"):
        collect(loader)


def test_skipping_bad_images_counts_them_per_epoch(registry, data, flawed) -> None:
    listing, _ = flawed
    config = config_for(data, listing, shuffle=False, loader={"num_workers": 0, "skip_bad_images": True})
    loader = loader_of(config, "Train", registry, rank=0, world_size=1)
    assert "1 missing" in loader.summary and "will be skipped" in loader.summary
    with pytest.warns(SkippedImagesWarning, match=r"skipped 2 unreadable images this epoch.*flawed\.txt:6"):
        batches = collect(loader)
    assert sum(len(labels) for _, labels in batches) == 9 and loader.skipped == 2


def test_skipped_images_are_counted_when_the_consumer_stops_early(registry, data, flawed) -> None:
    # training leaves the batches past its last update, so its epochs never run the loader to the end
    listing, _ = flawed
    config = config_for(data, listing, shuffle=False, loader={"num_workers": 0, "skip_bad_images": True})
    loader = loader_of(config, "Train", registry, rank=0, world_size=1)
    with pytest.warns(SkippedImagesWarning, match=r"skipped 2 unreadable images this epoch"):
        for step, _ in enumerate(loader, start=1):
            if step == 2:  # the bad images are in the second of three batches
                break
    assert loader.skipped == 2


def test_a_batch_of_only_bad_images_is_left_out(registry, data, tmp_path) -> None:
    good = data.train_list.read_text().splitlines()[:2]
    listing = tmp_path / "l.txt"
    listing.write_text("\n".join([f"{tmp_path / 'a.jpg'} 0", f"{tmp_path / 'b.jpg'} 0"] + [f"{data.root / g}" for g in good]))
    config = config_for(data, listing, batch_size=2, shuffle=False, loader={"skip_bad_images": True})
    loader = loader_of(config, "Train", registry, rank=0, world_size=1)
    with pytest.warns(SkippedImagesWarning, match="skipped 2"):
        batches = collect(loader)
    assert len(batches) == 1 and len(batches[0][1]) == 2


# --- worker processes -------------------------------------------------------------


def test_workers_give_the_same_batches_and_report_errors(registry, data, flawed, tmp_path) -> None:
    config = config_for(data, data.val_list, ops=EVAL_OPS, shuffle=True, loader={"num_workers": 2})
    in_process = collect(loader_of(config_for(data, data.val_list, ops=EVAL_OPS), "Train", registry,
                                          rank=0, world_size=1))
    with_workers = collect(loader_of(config, "Train", registry, rank=0, world_size=1))
    assert len(in_process) == len(with_workers) == 2
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(in_process, with_workers))

    listing, folder = flawed
    fixed = tmp_path / "only_broken.txt"
    fixed.write_text("".join(line + "\n" for line in listing.read_text().splitlines() if "gone" not in line))
    broken = loader_of(config_for(data, fixed, loader={"num_workers": 1}), "Train", registry, rank=0, world_size=1)
    running = set(multiprocessing.active_children())  # other tests' in this process
    with pytest.raises(UnreadableImageError, match=rf"{fixed}:6: {folder / 'broken.jpg'}: cannot decode image"):
        collect(broken)
    assert set(multiprocessing.active_children()) <= running  # the error stopped the workers


def test_a_consumer_that_stops_early_stops_the_workers(registry, data) -> None:
    loader = loader_of(config_for(data, loader={"num_workers": 2}, batch_size=2), "Train", registry, rank=0, world_size=1)
    running = set(multiprocessing.active_children())  # other tests' in this process
    batches = iter(loader)
    next(batches)
    assert len(set(multiprocessing.active_children()) - running) == 2
    batches.close()  # what dropping it does
    assert set(multiprocessing.active_children()) <= running


def test_small_shared_memory_falls_back_with_a_message(registry, data, monkeypatch) -> None:
    monkeypatch.setattr("corolla.data.background.shm_free_bytes", lambda: 1 << 20)
    with pytest.warns(UserWarning, match=r"/dev/shm has 1 MiB free, 2 workers need about \d+ MiB.*--shm-size"):
        loader = loader_of(config_for(data, loader={"num_workers": 2}, batch_size=64), "Train", registry,
                                  rank=0, world_size=1)
    assert loader.use_shared_memory is False
    monkeypatch.setattr("corolla.data.background.shm_free_bytes", lambda: None)
    with pytest.warns(UserWarning, match="there is no /dev/shm"):
        loader_of(config_for(data, loader={"num_workers": 1}), "Train", registry, rank=0, world_size=1)
