"""Samplers are components (the ``sampler`` kind): PaddleClas's DistributedBatchSampler,
BatchSampler, RASampler and MultiScaleSampler (with MultiScaleDataset), and a third-party
sampler named in a config."""
from __future__ import annotations

import copy
from collections import Counter

import numpy as np
import pytest

from corolla import ConfigError, load_registry
from corolla.plugin.errors import ComponentArgumentError
from corolla.plugins.datasets.samplers import BatchSampler, MultiScaleSampler, RASampler
from corolla.testing.datasets import make_list_dataset
from engine_support import loader_of, plan_of

OPS = [{"DecodeImage": {"to_rgb": True, "channel_first": False}}, {"RandCropImage": {"size": 32, "interpolation": "bilinear"}},
       {"RandFlipImage": {"flip_code": 1}},
       {"NormalizeImage": {"scale": "1.0/255.0", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "order": ""}}]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=2, images_per_class=11, image_size=40,
                             val_fraction=0.1)  # 20 training images


def config_for(data, sampler: dict, *, dataset: str = "ImageNetDataset", ops: list = OPS) -> dict:
    return {"Global": {"seed": 3}, "Arch": {"name": "ResNet18", "class_num": 2},
            "DataLoader": {"Train": {"dataset": {"name": dataset, "image_root": str(data.root),
                                                 "cls_label_path": str(data.train_list), "transform_ops": copy.deepcopy(ops)},
                                     "sampler": sampler, "loader": {"num_workers": 0}}}}


def test_the_sampler_section_is_planned_as_a_component(registry, data) -> None:
    plan = plan_of(config_for(data, {"batch_size": 4}), registry)  # no name: DistributedBatchSampler
    sampler = plan.loaders["Train"].sampler
    assert (sampler.kind, sampler.name, sampler.params) == ("sampler", "DistributedBatchSampler", {"batch_size": 4})
    assert sampler in list(plan.parts())
    with pytest.raises(ComponentArgumentError, match=r"DataLoader\.Train\.sampler\.batch_sise: sampler 'BatchSampler' .* "
                                                     r"Did you mean 'batch_size'"):
        plan_of(config_for(data, {"name": "BatchSampler", "batch_sise": 4}), registry)
    with pytest.raises(ComponentArgumentError, match=r"DataLoader\.Train\.sampler\.first_bs: .* expects an integer"):
        plan_of(config_for(data, {"name": "MultiScaleSampler", "scales": [32], "first_bs": "four"}), registry)


def test_batch_sampler_gives_every_process_the_whole_set(registry, data) -> None:
    loader = loader_of(config_for(data, {"name": "BatchSampler", "batch_size": 8}), "Train", registry, rank=1, world_size=2)
    assert (loader.sampler.rank, loader.sampler.world_size, len(loader)) == (0, 1, 3)
    assert isinstance(loader.sampler, BatchSampler)


def test_rasampler_repeats_each_image_for_different_processes() -> None:
    dataset = list(range(10))
    ranks = [RASampler(dataset=dataset, batch_size=4, shuffle=True, num_repeats=3, selected_round=4, seed=1,
                       rank=rank, world_size=2) for rank in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(2)
    orders = [sampler.indices() for sampler in ranks]
    assert [len(o) for o in orders] == [4, 4] and [len(s) for s in ranks] == [1, 1]  # floor(10 / 4) * 4 / 2 each
    together = np.stack(orders, axis=1).ravel()  # the epoch's order, dealt in turn: each image thrice in a row
    assert Counter(together[:6].tolist()) == Counter({together[0]: 3, together[3]: 3})
    ranks[0].set_epoch(3)
    assert not np.array_equal(ranks[0].indices(), orders[0])  # shuffled per epoch
    with pytest.raises(ConfigError, match=r"RASampler: an epoch keeps floor\(10 images / selected_round 256\)"):
        RASampler(dataset=dataset, batch_size=4, seed=1)


def test_multiscale_sampler_draws_sizes_and_batch_sizes_as_paddleclas() -> None:
    dataset = list(range(50))
    sampler = MultiScaleSampler(dataset=dataset, scales=[64, 32, [48, 40]], first_bs=4, divided_factor=16, seed=5)
    pairs = {(w, h): n for w, h, n in sampler.batches}
    assert set(pairs) <= {(64, 64): 4, (32, 32): 16, (48, 32): 10}.keys()  # [48, 40] rounded down to 16s
    assert {(64, 64): 4, (32, 32): 16, (48, 32): 10}.items() >= pairs.items()  # same pixels as 4 at 64x64
    assert sum(n for _, _, n in sampler.batches) >= 50 and sampler.image_sizes == sorted(pairs)
    again = MultiScaleSampler(dataset=dataset, scales=[64, 32, [48, 40]], first_bs=4, divided_factor=16, seed=5, rank=1,
                              world_size=2)
    assert again.batches[:3] == sampler.batches[:3]  # the same sizes in every process (from the seed)
    sampler.set_epoch(1)
    first = list(sampler)
    assert len(first) == len(sampler) and all(len(b) == n for b, (_, _, n) in zip(first, sampler.batches))
    assert {i for batch in first for i, _, _ in batch} == set(range(50))
    sampler.set_epoch(2)
    assert [b for b in sampler] != first and len(list(sampler)) == len(first)  # new order, same sizes
    evaluating = MultiScaleSampler(dataset=dataset, scales=[64, 32], first_bs=8, is_training=False, seed=5)
    assert evaluating.image_sizes == [(64, 64)] and len(evaluating) == 7
    assert [i for batch in evaluating for i, _, _ in batch][:50] == list(range(50))


def test_multiscale_training_batches_come_in_each_batchs_size(registry, data) -> None:
    config = config_for(data, {"name": "MultiScaleSampler", "scales": [32, 16, 24], "first_bs": 2, "divided_factor": 8,
                               "is_training": True}, dataset="MultiScaleDataset")
    loader = loader_of(config, "Train", registry, seed=3, rank=0, world_size=1)
    shapes = [(tuple(images.shape), tuple(labels.shape)) for images, labels in loader]
    expected = [((n, 3, h, w), (n,)) for w, h, n in loader.sampler.batches]
    assert shapes == expected and len({s[0][2] for s in shapes}) > 1


def test_multiscale_needs_a_transform_that_sets_the_size(registry, data) -> None:
    ops = [OPS[0], {"ResizeImage": {"resize_short": 40}}, OPS[3]]
    plan_of(config_for(data, {"name": "MultiScaleSampler", "scales": [32], "first_bs": 2}, ops=ops), registry)  # resize_short
    with pytest.raises(ConfigError, match=r"DataLoader\.Train\.sampler: MultiScaleSampler varies the image size .* no "
                                          r"transform of DataLoader\.Train\.dataset\.transform_ops sets a size"):
        plan_of(config_for(data, {"name": "MultiScaleSampler", "scales": [32], "first_bs": 2}, ops=[OPS[0], OPS[3]]), registry)


def test_a_third_party_sampler_is_named_in_the_config(fake_dist, data) -> None:
    fake_dist("corolla-samplers-test", {"pairs": '''
        from corolla.api import EpochBatchSampler, hookimpl

        class PairSampler(EpochBatchSampler):
            def __init__(self, *, dataset, seed, rank, world_size):
                super().__init__(len(dataset), 2, shuffle=False, drop_last=True, seed=seed, rank=rank, world_size=world_size)

        @hookimpl
        def corolla_samplers():
            return {"PairSampler": PairSampler}
    '''})
    registry = load_registry()
    loader = loader_of(config_for(data, {"name": "PairSampler"}), "Train", registry, rank=0, world_size=1)
    assert [labels.shape[0] for _, labels in loader] == [2] * 10
    assert registry.resolve("sampler", "PairSampler").plugin.dist == "corolla-samplers-test"


def test_the_config_check_makes_the_sampler_once_so_its_values_are_checked(registry, data) -> None:
    with pytest.raises(ComponentArgumentError, match=r"DataLoader\.Train\.sampler: .*batch_size: expected an integer >= 1, found 0"):
        plan_of(config_for(data, {"name": "DistributedBatchSampler", "batch_size": 0}), registry)
    with pytest.raises(ComponentArgumentError, match=r"DataLoader\.Train\.sampler: .*scales: expected positive ints"):
        plan_of(config_for(data, {"name": "MultiScaleSampler", "scales": [32, -1], "first_bs": 2}), registry)
