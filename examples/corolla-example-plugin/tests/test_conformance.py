"""Every component of corolla-example-plugin keeps its kind's contract (corolla's conformance kit)."""
from pathlib import Path

import pytest

from corolla.testing.conformance import check_component, components_of
from corolla.testing.datasets import make_list_dataset

DISTRIBUTION = "corolla-example-plugin"


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV listing a small generated dataset, with one unlabeled row."""
    data = make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=3, image_size=40)
    rows = [line.replace(" ", ",") for line in data.train_list.read_text().splitlines()]
    rows[-1] = rows[-1].split(",")[0] + ","
    path = data.root / "train.csv"
    path.write_text("path,label\n" + "\n".join(rows) + "\n")
    return path


def test_the_distribution_gives_one_component_of_each_kind():
    kinds = [kind for kind, _ in components_of(DISTRIBUTION)]
    assert sorted(kinds) == sorted(["backbone", "transform", "batch_transform", "loss", "dataset", "metric", "callback"])


@pytest.mark.parametrize("kind, name", components_of(DISTRIBUTION))
def test_conformance(kind, name, csv_file):
    if kind == "dataset":
        check_component(kind, name, {"image_root": str(csv_file.parent), "csv_file": str(csv_file)}, class_num=3)
    elif kind == "transform":
        check_component(kind, name, {"prob": 0.5})
    else:
        check_component(kind, name)
