"""Your own images in two commands: `corolla data split FOLDER`, then `corolla train -c FOLDER/finetune.yaml`."""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from corolla.cli.main import main
from corolla.data.atomic import WriteError
from corolla.data.split import split_folder
from corolla.plugin.errors import DataError
from corolla.testing.datasets import make_image_folder

#: the shipped 224-px config at 32 px, a small backbone from scratch, one short epoch
SMALL = [
    "Arch.name=PPLCNet_x0_25", "Arch.pretrained=False", "Arch.use_ssld=False", "Global.device=cpu",
    "Global.epochs=1", "Global.image_shape=[3, 32, 32]",
    "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=32",
    "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.resize_short=36",
    "DataLoader.Eval.dataset.transform_ops.2.CropImage.size=32",
    "Infer.transforms.1.ResizeImage.resize_short=36", "Infer.transforms.2.CropImage.size=32",
    "DataLoader.Train.sampler.batch_size=8", "DataLoader.Train.loader.num_workers=0",
    "DataLoader.Eval.loader.num_workers=0",
]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_split_is_stratified_seeded_and_writes_lists_and_class_map(tmp_path):
    names = make_image_folder(tmp_path / "photos", num_classes=3, images_per_class=10, image_size=24)
    split = split_folder(tmp_path / "photos", val_fraction=0.2, seed=3)
    assert split.class_names == tuple(names)
    assert split.train_counts == (8, 8, 8) and split.val_counts == (2, 2, 2)
    train, val = _lines(split.train_list), _lines(split.val_list)
    assert _lines(split.label_list) == [f"{i} {name}" for i, name in enumerate(names)]
    assert all(line.split()[0].split("/")[0] == names[int(line.split()[1])] for line in train + val)
    assert not {line.split()[0] for line in train} & {line.split()[0] for line in val}
    assert _lines(split_folder(tmp_path / "photos", seed=3).val_list) == val  # same seed, same split
    assert _lines(split_folder(tmp_path / "photos", seed=4, out=tmp_path / "seed4").val_list) != val


def test_a_new_class_leaves_the_other_classes_split_alone(tmp_path):
    make_image_folder(tmp_path / "photos", num_classes=2, images_per_class=10, image_size=24)
    before = set(_lines(split_folder(tmp_path / "photos").val_list))
    shutil.copytree(tmp_path / "photos" / "c00_circle", tmp_path / "photos" / "zz_new")
    after = set(_lines(split_folder(tmp_path / "photos", out=tmp_path / "after").val_list))
    assert before <= after and len(after - before) == 2


def test_small_classes_spaces_nested_folders_and_loose_images(tmp_path):
    root = tmp_path / "my photos"
    make_image_folder(root, num_classes=2, images_per_class=3, image_size=24)
    (root / "c01_square" / "0000.jpg").rename(root / "0000.jpg")  # loose, in no class folder
    (root / "c01_square" / "0001.jpg").unlink()  # one image left: train only
    (root / "c00_circle" / "day 2").mkdir()
    (root / "c00_circle" / "0002.jpg").rename(root / "c00_circle" / "day 2" / "a b.jpg")
    split = split_folder(root, out=tmp_path / "lists")
    assert split.delimiter == "\t" and split.train_list.parent == tmp_path / "lists"
    assert "c00_circle/day 2/a b.jpg\t0" in _lines(split.train_list) + _lines(split.val_list)
    assert split.val_counts == (1, 0) and split.train_counts == (2, 1)
    assert "in train only: c01_square" in split.describe() and "1 images directly in" in split.describe()


@pytest.mark.parametrize("make, message", [
    (lambda root: root.mkdir(), r"has no class sub-folders"),
    (lambda root: [(root / name).mkdir(parents=True) for name in ("cats", "dogs")], r"class folder .*cats holds no images"),
    (lambda root: (root / "cats").mkdir(parents=True),
     r"has one class sub-folder, cats, and a classifier needs two or more; is .*photos a class folder\?"),
    (lambda root: None, r"is not a folder"),
    (lambda root: [(root / name).mkdir(parents=True) or (root / name / f"a{name[-1]}\nb.jpg").write_bytes(b"")
                   for name in ("cats", "dogs")],
     r"1 image path\(s\) hold a tab or a line break, which no list file can hold: 'cats/as\\nb.jpg'"),
])
def test_split_errors_name_the_folder_and_what_was_expected(tmp_path, make, message):
    make(tmp_path / "photos")
    with pytest.raises(DataError, match=message):
        split_folder(tmp_path / "photos")


def test_another_split_keeps_the_earlier_lists_and_says_how_to_go_on(tmp_path):
    make_image_folder(tmp_path / "photos", num_classes=2, images_per_class=10, image_size=24)
    split = split_folder(tmp_path / "photos", seed=0)
    before = {path: path.read_bytes() for path in (split.train_list, split.val_list, split.label_list)}
    with pytest.raises(DataError, match=r"val_list\.txt already exist.*kept as they are.*--out FOLDER") as raised:
        split_folder(tmp_path / "photos", seed=1)
    assert "label_list.txt" not in str(raised.value)  # the classes are the same: only the lists differ
    assert {path: path.read_bytes() for path in before} == before
    assert not [p for p in (tmp_path / "photos").iterdir() if p.name.startswith(".tmp-")]


def test_a_failed_write_leaves_the_earlier_file_whole(tmp_path, monkeypatch):
    make_image_folder(tmp_path / "photos", num_classes=2, images_per_class=4, image_size=24)
    split = split_folder(tmp_path / "photos")
    split.val_list.unlink()
    before = split.train_list.read_bytes()

    def disk_full(source, target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(WriteError, match=r"could not write .*train_list\.txt: No space left on device; the previous one"):
        split_folder(tmp_path / "photos")
    assert split.train_list.read_bytes() == before
    assert not [p for p in (tmp_path / "photos").iterdir() if p.name.startswith(".tmp-")]


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_written_files_get_the_mode_open_gives_and_a_rewrite_keeps_a_chmod(tmp_path, monkeypatch, umask_027):
    monkeypatch.chdir(tmp_path)
    make_image_folder(tmp_path / "photos", num_classes=2, images_per_class=5, image_size=24)
    command = ["data", "split", "photos", "-o", "Arch.pretrained=False"]
    assert main(command) == 0
    written = ["train_list.txt", "val_list.txt", "label_list.txt", "finetune.yaml"]
    # 0o666 less the umask, as open() makes them (they were 0o600: unreadable to a team)
    assert {name: oct((tmp_path / "photos" / name).stat().st_mode & 0o777) for name in written} == dict.fromkeys(written, "0o640")
    (tmp_path / "photos" / "finetune.yaml").chmod(0o644)
    assert main(command) == 0  # rewrites the same files
    assert (tmp_path / "photos" / "finetune.yaml").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "photos" / "label_list.txt").stat().st_mode & 0o777 == 0o640


def test_split_again_keeps_an_edited_config_and_rewrites_an_identical_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_image_folder(tmp_path / "photos", num_classes=2, images_per_class=5, image_size=24)
    command = ["data", "split", "photos", "-o", "Arch.pretrained=False"]
    assert main(command) == 0
    assert main(command) == 0  # the same files again
    config = tmp_path / "photos" / "finetune.yaml"
    edited = config.read_text(encoding="utf-8").replace("epochs: 20", "epochs: 3")
    assert "epochs: 3" in edited
    config.write_text(edited, encoding="utf-8")
    capsys.readouterr()
    assert main(command) == 2
    assert f"{Path('photos') / 'finetune.yaml'} already exists" in capsys.readouterr().err
    assert config.read_text(encoding="utf-8") == edited
    val = (tmp_path / "photos" / "val_list.txt").read_text(encoding="utf-8")
    assert main([*command, "--seed", "1"]) == 2
    assert "val_list.txt" in capsys.readouterr().err
    assert (tmp_path / "photos" / "val_list.txt").read_text(encoding="utf-8") == val
    assert config.read_text(encoding="utf-8") == edited


def test_split_then_train_on_a_folder_in_two_commands(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_image_folder(tmp_path / "photos", num_classes=3, images_per_class=6, image_size=40)
    overrides = [arg for override in SMALL for arg in ("-o", override)]
    assert main(["data", "split", "photos", *overrides]) == 0
    printed = capsys.readouterr().out
    assert "3 classes, 15 train and 3 validation images" in printed
    assert "corolla train -c photos/finetune.yaml" in printed
    written = yaml.safe_load((tmp_path / "photos" / "finetune.yaml").read_text())
    assert written["Arch"]["class_num"] == 3
    assert written["DataLoader"]["Eval"]["dataset"]["cls_label_path"] == str(tmp_path / "photos" / "val_list.txt")

    assert main(["train", "-c", "photos/finetune.yaml", "-o", f"Global.output_dir={tmp_path / 'out'}"]) == 0
    records = [json.loads(line) for line in _lines(tmp_path / "out" / "PPLCNet_x0_25" / "metrics.jsonl")]
    assert any(record["event"] == "eval" and "top1" in record for record in records)


def test_shipped_folder_config_fine_tunes_published_weights_at_224():
    config = yaml.safe_load((Path(__file__).parent.parent / "configs" / "finetune" / "folder_224.yaml").read_text())
    assert config["Arch"]["pretrained"] is True and config["Global"]["image_shape"] == [3, 224, 224]
    assert config["DataLoader"]["Train"]["dataset"]["transform_ops"][1]["RandCropImage"]["size"] == 224
