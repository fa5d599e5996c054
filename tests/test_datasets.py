"""Datasets, list files, flowers102 lists and ``corolla data``: parsing, labels, and every bad-data case."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.io import savemat

from corolla import ComponentArgumentError, DataError, load_registry
from corolla.api import read_label_map
from corolla.cli.main import main
from corolla.data.flowers102 import write_flowers102_lists
from corolla.data.pipeline import UnreadableImageError
from engine_support import pipeline_of
from corolla.testing.datasets import make_flowers102, make_image_folder, make_list_dataset

DECODE = [{"DecodeImage": None}]
QUICK_START = Path(__file__).parent.parent / "configs" / "quick_start"


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=4, image_size=24)


def imagenet(registry, root, list_path, **params):
    pipeline = pipeline_of(DECODE, registry, "T")
    return registry.build("dataset", "ImageNetDataset",
                          {"image_root": str(root), "cls_label_path": str(list_path), "transform_ops": pipeline, **params})


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def some_image(data) -> str:
    return data.train_list.read_text().split()[0]


# --- ImageNetDataset ----------------------------------------------------------------


def test_samples_labels_and_unlabeled_lines(registry, data, tmp_path) -> None:
    image = some_image(data)
    listing = write(tmp_path / "list.txt", f"{image} 2\n\n{image}\n{image} -1\n")
    dataset = imagenet(registry, data.root, listing)
    assert len(dataset) == 3 and dataset.labels == [2, -1, -1] and dataset.class_num == 1
    sample, label = dataset[0]
    assert sample.dtype == np.uint8 and sample.shape == (24, 24, 3) and label == 2 and label.dtype == np.int64
    assert dataset.origins == [f"{listing}:1", f"{listing}:3", f"{listing}:4"]


def test_a_byte_order_mark_is_not_part_of_the_first_path(registry, data, tmp_path) -> None:
    image = some_image(data)
    listing = tmp_path / "bom.txt"
    listing.write_bytes(f"{image} 1\n{image} 2\n".encode("utf-8-sig"))
    dataset = imagenet(registry, data.root, listing)
    assert dataset.check().missing == ()
    sample, label = dataset[0]
    assert label == 1 and sample.shape == (24, 24, 3)
    class_map = tmp_path / "labels.txt"  # Windows editors write one into class maps too
    class_map.write_bytes("0 daisy\n1 rose\n".encode("utf-8-sig"))
    assert read_label_map(class_map, key_path="class_id_map_file") == {0: "daisy", 1: "rose"}


def test_tab_delimiter_allows_spaces_in_paths(registry, data, tmp_path) -> None:
    spaced = tmp_path / "with space.jpg"
    spaced.write_bytes((data.root / some_image(data)).read_bytes())
    dataset = imagenet(registry, tmp_path, write(tmp_path / "l.txt", "with space.jpg\t1\n"), delimiter="\t")
    assert dataset[0][1] == 1
    with pytest.raises(DataError, match=r"l2\.txt:1: expected 'path label'.*3 fields.*delimiter"):
        imagenet(registry, tmp_path, write(tmp_path / "l2.txt", "with space.jpg 1\n"))
    # a space-separated list read with a tab delimiter: each label would stick to its path
    with pytest.raises(DataError, match=r"delimiter is '<TAB>', but no line of .*l3\.txt has one; its lines read as "
                                        r"space-separated 'path label' \('a.jpg 1'\): set delimiter: ' '"):
        imagenet(registry, tmp_path, write(tmp_path / "l3.txt", "a.jpg 1\nb.jpg 0\n"), delimiter="\t")
    unlabeled = imagenet(registry, tmp_path, write(tmp_path / "l4.txt", "with space.jpg\n"), delimiter="\t")
    assert unlabeled[0][1] == -1  # a path with a space and no label is no such list
    # YAML's single quotes keep '\t' as a backslash and a t: each label would stick to its path
    with pytest.raises(DataError, match=r"delimiter is the two characters '\\t' .*/l\.txt separates with tabs: "
                                        r"write delimiter: \"\\t\" in double quotes"):
        imagenet(registry, tmp_path, tmp_path / "l.txt", delimiter="\\t")


def test_relabel_maps_present_labels_in_order(registry, data, tmp_path) -> None:
    image = some_image(data)
    dataset = imagenet(registry, data.root, write(tmp_path / "l.txt", f"{image} 7\n{image} 3\n{image}\n{image} 7\n"),
                       relabel=True)
    assert dataset.labels == [1, 0, -1, 1]


@pytest.mark.parametrize("text, message", [
    ("a.jpg x\n", r"l\.txt:1: expected an integer label"),
    ("a.jpg 1\nb.jpg -3\n", r"l\.txt:2: expected an integer label"),
    ("a.jpg 1 2\n", r"l\.txt:1: expected 'path label' or just 'path', found 3 fields"),
    ("\n  \n", r"has no samples"),
])
def test_malformed_list_lines_name_file_and_line(registry, data, tmp_path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        imagenet(registry, data.root, write(tmp_path / "l.txt", text))


def test_missing_list_file_and_root(registry, data, tmp_path) -> None:
    with pytest.raises(DataError, match="list file not found: .*nope.txt"):
        imagenet(registry, data.root, tmp_path / "nope.txt")
    with pytest.raises(DataError, match="image_root .*no_root.* is not a directory"):
        imagenet(registry, tmp_path / "no_root", data.train_list)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match="not UTF-8"):
        imagenet(registry, data.root, tmp_path / "bin.txt")


def test_missing_and_undecodable_images_name_path_and_line(registry, data, tmp_path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (tmp_path / "good.jpg").write_bytes((data.root / some_image(data)).read_bytes())
    listing = write(tmp_path / "l.txt", "good.jpg 0\ngone.jpg 1\nbroken.jpg 2\n")
    dataset = imagenet(registry, tmp_path, listing)
    with pytest.raises(UnreadableImageError, match=rf"{listing}:2: image not found: .*gone\.jpg"):
        dataset[1]
    with pytest.raises(UnreadableImageError, match=rf"{listing}:3: .*broken\.jpg: cannot decode image"):
        dataset[2]
    summary = dataset.check()
    assert summary.missing == (f"{listing}:2: {tmp_path / 'gone.jpg'}",)
    assert "3 images" in summary.describe() and "1 missing" in summary.describe()


def test_check_rejects_labels_beyond_class_num(registry, data) -> None:
    dataset = imagenet(registry, data.root, data.train_list)
    assert dataset.check(class_num=3).classes == (0, 1, 2)
    line = next(i for i, label in enumerate(dataset.labels, start=1) if label == 2)
    with pytest.raises(DataError, match=rf"train_list\.txt:{line}: label 2 is out of range for class_num=2"):
        dataset.check(class_num=2)


def test_unknown_dataset_argument_names_the_component(registry, data) -> None:
    with pytest.raises(ComponentArgumentError, match="no argument 'label_root'.*Did you mean"):
        registry.build("dataset", "ImageNetDataset", {"image_root": str(data.root), "label_root": "x"})


# --- MultiLabelDataset ------------------------------------------------------------


def test_multilabel_samples(registry, data, tmp_path) -> None:
    image = some_image(data)
    listing = write(tmp_path / "m.txt", f"{image}\t0,1,1\n{image}\t1,0,0\n")
    dataset = registry.build("dataset", "MultiLabelDataset", {"image_root": str(data.root), "cls_label_path": str(listing)})
    label = dataset[0][1]
    assert label.dtype == np.float32 and label.tolist() == [0, 1, 1] and dataset.class_num == 3
    assert dataset.check(class_num=3).classes == (0, 1, 2)
    with pytest.raises(DataError, match="3 label flags, but class_num=4"):
        dataset.check(class_num=4)


@pytest.mark.parametrize("text, message", [
    ("a.jpg\t0,1\nb.jpg\t0,1,1\n", r"m\.txt:2: expected 2 flags as on the first line"),
    ("a.jpg\t0,2\n", r"m\.txt:1: expected comma-separated 0/1 flags"),
    ("a.jpg\n", r"m\.txt:1: expected comma-separated 0/1 flags such as 0,1,0, found None"),
])
def test_multilabel_bad_lines(registry, data, tmp_path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        registry.build("dataset", "MultiLabelDataset",
                       {"image_root": str(data.root), "cls_label_path": str(write(tmp_path / "m.txt", text))})


# --- ImageFolderDataset -------------------------------------------------------------


def test_image_folder_writes_its_class_map(registry, tmp_path) -> None:
    names = make_image_folder(tmp_path / "f", num_classes=3, images_per_class=2, image_size=16)
    dataset = registry.build("dataset", "ImageFolderDataset", {"image_root": str(tmp_path / "f")})
    assert len(dataset) == 6 and dataset.labels == [0, 0, 1, 1, 2, 2] and dataset.class_names == sorted(names)
    assert (tmp_path / "f" / "label_list.txt").read_text() == "".join(f"{i} {n}\n" for i, n in enumerate(sorted(names)))
    elsewhere = tmp_path / "maps" / "classes.txt"
    registry.build("dataset", "ImageFolderDataset", {"image_root": str(tmp_path / "f"), "class_id_map_file": str(elsewhere)})
    assert elsewhere.read_text().splitlines()[0] == f"0 {sorted(names)[0]}"


def test_image_folder_errors(registry, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        registry.build("dataset", "ImageFolderDataset", {"image_root": str(tmp_path / "empty")})
    (tmp_path / "empty" / "cats").mkdir()
    with pytest.raises(DataError, match="class folder .*cats has no images"):
        registry.build("dataset", "ImageFolderDataset", {"image_root": str(tmp_path / "empty")})


# --- flowers102 ---------------------------------------------------------------------


def test_flowers102_lists_follow_the_splits(tmp_path) -> None:
    files = make_flowers102(tmp_path, num_classes=3, train_per_class=2, val_per_class=2, test_per_class=3)
    counts = write_flowers102_lists(tmp_path)
    assert counts == {"train_list.txt": 6, "val_list.txt": 6, "extra_list.txt": 9, "train_extra_list.txt": 15,
                      "flowers102_label_list.txt": 102}
    for name, ids in (("train_list.txt", files.trnid), ("val_list.txt", files.valid), ("extra_list.txt", files.tstid)):
        lines = (tmp_path / name).read_text().splitlines()
        assert lines == [f"jpg/image_{i:05d}.jpg {files.labels[i - 1] - 1}" for i in ids]
    train_extra = (tmp_path / "train_extra_list.txt").read_text()
    assert train_extra == (tmp_path / "train_list.txt").read_text() + (tmp_path / "extra_list.txt").read_text()


def test_flowers102_bad_inputs(tmp_path) -> None:
    make_flowers102(tmp_path, num_classes=2, train_per_class=1, val_per_class=1, test_per_class=1)
    (tmp_path / "jpg" / "image_00001.jpg").unlink()
    with pytest.raises(DataError, match="1 listed images are missing.*image_00001.jpg"):
        write_flowers102_lists(tmp_path)
    savemat(tmp_path / "setid.mat", {"trnid": np.array([[1, 99]]), "valid": np.array([[2]]), "tstid": np.array([[3]])})
    with pytest.raises(DataError, match=r"setid\.mat: trnid has image id 99, outside 1\.\.6"):
        write_flowers102_lists(tmp_path)
    savemat(tmp_path / "setid.mat", {"train": np.array([[1]])})
    with pytest.raises(DataError, match=r"setid\.mat: no variable 'trnid' \(it has: train\)"):
        write_flowers102_lists(tmp_path)
    savemat(tmp_path / "imagelabels.mat", {"labels": np.array([[1, 103, 2]])})
    with pytest.raises(DataError, match=r"imagelabels\.mat: label 103 is outside 1\.\.102"):
        write_flowers102_lists(tmp_path)


def test_flowers102_class_map_names_the_102_classes(tmp_path) -> None:
    make_flowers102(tmp_path, num_classes=2, train_per_class=1, val_per_class=1, test_per_class=1)
    write_flowers102_lists(tmp_path)
    names = read_label_map(tmp_path / "flowers102_label_list.txt", key_path="class_id_map_file")
    assert sorted(names) == list(range(102)) and len(set(names.values())) == 102
    assert (names[0], names[76], names[101]) == ("pink primrose", "passion flower", "blackberry lily")


def test_flowers102_again_keeps_an_edited_class_map(tmp_path) -> None:
    make_flowers102(tmp_path, num_classes=2, train_per_class=1, val_per_class=1, test_per_class=1)
    write_flowers102_lists(tmp_path)
    write_flowers102_lists(tmp_path)  # the same files again
    label_list = tmp_path / "flowers102_label_list.txt"
    label_list.write_text("0 primevère\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data flowers102: .*flowers102_label_list\.txt already exists .*kept"):
        write_flowers102_lists(tmp_path)
    assert label_list.read_text(encoding="utf-8") == "0 primevère\n"


@pytest.mark.parametrize("config", sorted(QUICK_START.glob("*.yaml")), ids=lambda path: path.stem)
def test_quick_start_configs_find_what_data_flowers102_writes(tmp_path, monkeypatch, config) -> None:
    monkeypatch.chdir(tmp_path)
    make_flowers102(tmp_path / "dataset" / "flowers102", num_classes=2, train_per_class=1, val_per_class=1,
                    test_per_class=1)
    assert main(["data", "flowers102", "dataset/flowers102"]) == 0
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    for mode in ("Train", "Eval"):
        assert Path(settings["DataLoader"][mode]["dataset"]["cls_label_path"]).is_file()
    class_map = settings["Infer"]["PostProcess"]["class_id_map_file"]
    assert len(read_label_map(class_map, key_path="class_id_map_file")) == 102


def test_data_cli(tmp_path, capsys, data) -> None:
    make_flowers102(tmp_path / "flowers", num_classes=2)
    assert main(["data", "flowers102", str(tmp_path / "flowers")]) == 0
    assert "train_extra_list.txt: 10 lines" in capsys.readouterr().out
    assert main(["data", "flowers102", str(tmp_path / "absent")]) == 2
    assert "imagelabels.mat: not found" in capsys.readouterr().err

    config = {"Arch": {"name": "ResNet50_vd", "class_num": 3}, "DataLoader": {
        mode: {"dataset": {"name": "ImageNetDataset", "image_root": str(data.root), "cls_label_path": str(lst),
                           "transform_ops": DECODE}, "sampler": {"batch_size": 2}}
        for mode, lst in (("Train", data.train_list), ("Eval", data.val_list))}}
    path = write(tmp_path / "c.yaml", yaml.safe_dump(config))
    assert main(["data", "check", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "DataLoader.Train: " in out and "9 images, 3 classes (labels 0..2), all files present" in out
    bad = write(tmp_path / "bad.txt", "nowhere.jpg 0\n")
    assert main(["data", "check", "-c", str(path), "-o", f"DataLoader.Eval.dataset.cls_label_path={bad}"]) == 2
    assert f"1 of 1 images are missing: {bad}:1" in capsys.readouterr().err


def test_plugins_do_not_import_paddle() -> None:
    code = ("import sys; import corolla.plugins.datasets.imagenet, corolla.plugins.datasets.multilabel, "
            "corolla.plugins.datasets.folder, corolla.plugins.transforms.batch, corolla.data.pipeline, "
            "corolla.plugins.transforms.timm_autoaugment; assert 'paddle' not in sys.modules, 'paddle imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
