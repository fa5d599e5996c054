"""Faults and bad input: nothing a user made is lost or silently wrong.

Full disks are injected at the write calls (the suite needs no small filesystem), kills
are simulated where they hurt (inside an export, between the files of a checkpoint), and
every kind of file corolla reads is also fed corrupt or truncated.
"""
from __future__ import annotations

import copy
import errno
import json
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

import corolla
import engine_support
from corolla.cli.main import main
from corolla.config.load import load_config
from corolla.config.planner import read_plan
from corolla.engine import files, images
from corolla.engine.checkpointing import RunFolderTaken, TrainingDiverged, read_states, resume_advice
from corolla.engine.evaluate import evaluate_config
from corolla.engine.export import export
from corolla.data.atomic import WriteError
from corolla.engine.images import list_images
from corolla.engine.inference import infer
from corolla.engine.predict import predict
from corolla.engine.safe_pickle import load_state_dict_file
from corolla.engine.train import train
from corolla.plugin.errors import ConfigError, DataError, WeightsError
from corolla.testing.datasets import make_image_folder, make_list_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=8, image_size=40, seed=5)


@pytest.fixture(scope="module")
def registry():
    return corolla.load_registry(extra_plugins=[("engine_support", engine_support)])


def run(config, registry, **options):
    return train(read_plan(copy.deepcopy(config), registry), distributed=False, **options)


@pytest.fixture(scope="module")
def trained(data, registry, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    config = engine_support.tiny_config(data, out, epochs=1)
    return config, run(config, registry)


def exported_copy(trained, tmp_path):
    config = copy.deepcopy(trained[0])
    config["Global"]["pretrained_model"] = str(trained[1].output_dir / "best_model")
    config["Global"]["save_inference_dir"] = str(tmp_path / "model")
    return config


# --- 1. export ---------------------------------------------------------------------------


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_export_that_paddle_truncates_is_caught_and_the_previous_one_kept(trained, registry, tmp_path, monkeypatch):
    config = exported_copy(trained, tmp_path)
    folder = export(read_plan(config, registry))
    before = _tree(folder)
    real_save = paddle.jit.save

    def save_then_truncate(layer, path, **kwargs):  # a full disk that Paddle does not report
        real_save(layer, path, **kwargs)
        params = Path(f"{path}.pdiparams")
        params.write_bytes(params.read_bytes()[: params.stat().st_size * 3 // 4])

    monkeypatch.setattr(paddle.jit, "save", save_then_truncate)
    with pytest.raises(WriteError, match="the exported model does not load back .*[Tt]he previous export is intact"):
        export(read_plan(config, registry))
    assert _tree(folder) == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["model"]  # no staging folder left


def test_an_export_into_a_new_folder_on_a_full_disk_leaves_nothing(trained, registry, tmp_path, monkeypatch):
    config = exported_copy(trained, tmp_path)

    def full(layer, path, **kwargs):
        Path(f"{path}.json").write_bytes(b"{partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(paddle.jit, "save", full)
    with pytest.raises(WriteError, match=r"could not export to .*model: No space left on device; nothing was left behind"):
        export(read_plan(config, registry))
    assert list(tmp_path.iterdir()) == []


def test_an_export_killed_half_way_leaves_the_previous_one(trained, registry, tmp_path, monkeypatch):
    config = exported_copy(trained, tmp_path)
    folder = export(read_plan(config, registry))
    before = _tree(folder)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("corolla.engine.export._write_record", killed)
    with pytest.raises(KeyboardInterrupt):
        export(read_plan(config, registry))
    assert _tree(folder) == before and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_an_export_without_its_class_map_writes_nothing(trained, registry, tmp_path):
    config = exported_copy(trained, tmp_path)
    config["Infer"]["PostProcess"]["class_id_map_file"] = str(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="class id map file not found"):
        export(read_plan(config, registry))
    assert list(tmp_path.iterdir()) == []


def _not_built(*args, **kwargs):
    raise AssertionError("the model was built although the export is refused")


def test_an_export_refuses_a_folder_it_did_not_write_and_touches_nothing(trained, registry, tmp_path, monkeypatch):
    earlier = exported_copy(trained, tmp_path / "inference" / "flowers")
    export(read_plan(earlier, registry))
    exported = _tree(tmp_path / "inference" / "flowers" / "model")
    user = tmp_path / "userdir"
    (user / "sub").mkdir(parents=True)
    (user / "notes.txt").write_text("mine")
    (user / "sub" / "a.txt").write_text("also mine")
    (tmp_path / "a_file").write_text("mine too")
    checkpoints = trained[1].output_dir
    kept = sorted(p.name for p in checkpoints.iterdir())
    monkeypatch.setattr("corolla.engine.export.build_trained_model", _not_built)
    for target, holds in [(user, r"\(it holds notes.txt, sub/\)"), (tmp_path / "inference", r"\(it holds flowers/\)"),
                          (checkpoints, r"\(it holds .+\)"), (tmp_path / "a_file", "is a file, not a folder")]:
        config = exported_copy(trained, tmp_path)
        config["Global"]["save_inference_dir"] = str(target)
        with pytest.raises(ConfigError, match=rf"Global.save_inference_dir: {re.escape(str(target.resolve()))} .*{holds}.*choose another Global.save_inference_dir"):
            export(read_plan(config, registry))
    assert (user / "notes.txt").read_text() == "mine" and (user / "sub" / "a.txt").read_text() == "also mine"
    assert (tmp_path / "a_file").read_text() == "mine too" and sorted(p.name for p in checkpoints.iterdir()) == kept
    assert _tree(tmp_path / "inference" / "flowers" / "model") == exported
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "inference", "userdir"]  # no staging folder left


def test_an_export_whose_infer_transforms_do_not_make_global_image_shape_is_refused_for_onnx(trained, registry, tmp_path):
    config = exported_copy(trained, tmp_path)
    config["Global"]["image_shape"] = [3, 24, 24]  # Infer.transforms crop 32: ONNX Runtime would refuse every image
    mismatch = r"Global.image_shape is \[3, 24, 24\], but Infer.transforms make \[3, 32, 32\] images"
    with pytest.raises(ConfigError, match=rf"{mismatch} .*which ONNX Runtime refuses: set -o Global.image_shape=\[3,32,32\]"):
        export(read_plan(config, registry), formats=["all"])
    assert not any(tmp_path.iterdir())
    with pytest.warns(UserWarning, match=rf"{mismatch} .*a ViT\) fails on them in predict; set -o Global.image_shape=\[3,32,32\]"):
        export(read_plan(config, registry), formats=["paddle"])  # a convolutional network takes them: PaddleClas has such configs


def test_an_export_replaces_an_earlier_export_or_an_empty_folder_never_the_current_one(trained, registry, tmp_path,
                                                                                     monkeypatch, capsys):
    config = exported_copy(trained, tmp_path)
    folder = export(read_plan(config, registry))
    assert "earlier export" not in capsys.readouterr().out
    (folder / "inference.yml").write_text("from an earlier export\n")
    assert export(read_plan(config, registry)) == folder
    assert f"[Export] {folder} holds an earlier export: the new one replaces it" in capsys.readouterr().out
    assert "PreProcess" in (folder / "inference.yml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the earlier export is gone, not set aside
    empty = tmp_path / "empty"
    empty.mkdir()
    config["Global"]["save_inference_dir"] = str(empty)
    assert export(read_plan(config, registry)) == empty and (empty / "inference.yml").is_file()
    monkeypatch.chdir(folder)  # an earlier export, but the user's shell would be left in a deleted folder
    config["Global"]["save_inference_dir"] = "."
    with pytest.raises(ConfigError, match=rf"Global.save_inference_dir: {re.escape(str(folder))} is the current folder"):
        export(read_plan(config, registry))
    assert "PreProcess" in (folder / "inference.yml").read_text()


# --- 2. weights of another model -------------------------------------------------------------


def test_a_checkpoint_of_another_width_is_an_error_not_a_warning(trained, data, registry, tmp_path):
    config, first = trained
    other = engine_support.tiny_config(data, tmp_path, epochs=2, arch={"name": "TinyNet", "class_num": 3, "width": 4})
    resumed = copy.deepcopy(other)
    resumed["Global"]["checkpoints"] = str(first.output_dir / "latest")
    with pytest.raises(WeightsError, match=r"latest.pdparams does not fit Global.checkpoints: .*shape mismatches"):
        run(resumed, registry)
    pretrained = copy.deepcopy(other)
    pretrained["Global"]["pretrained_model"] = str(first.output_dir / "latest")
    with pytest.raises(WeightsError, match=r"does not fit Global.pretrained_model: .*shape mismatches"):
        run(pretrained, registry)


# --- 3. a new run never destroys an earlier one ----------------------------------------------


def test_a_new_run_in_a_folder_with_an_earlier_run_is_refused(trained, registry):
    config, first = trained
    before = {p.name: p.stat().st_mtime_ns for p in first.output_dir.iterdir()}
    with pytest.raises(RunFolderTaken, match=r"holds an earlier run \(its last checkpoint, latest, is after epoch 1\).*"
                                             r"Global.checkpoints=.*latest.*--overwrite"):
        run(config, registry)
    assert {p.name: p.stat().st_mtime_ns for p in first.output_dir.iterdir()} == before


def test_a_run_stopped_before_writing_latest_is_resumed_from_the_checkpoint_it_has(trained, registry, tmp_path):
    # stopped while writing epoch 1's checkpoints: best_model is there, epoch_1 and latest are not
    config, first = trained
    config = copy.deepcopy(config)
    config["Global"]["output_dir"] = str(tmp_path)
    folder = tmp_path / "TinyNet"
    folder.mkdir()
    for file in first.output_dir.glob("best_model.*"):
        (folder / file.name).write_bytes(file.read_bytes())
    advice = f"resume it by adding -o Global.checkpoints={folder / 'best_model'} to the same command"
    assert resume_advice(folder) == advice
    with pytest.raises(RunFolderTaken, match=rf"its last checkpoint, best_model, is after epoch 1\).*Resume it with "
                                             rf"-o Global.checkpoints={re.escape(str(folder / 'best_model'))},"):
        run(config, registry)
    config["Global"].update(checkpoints=str(folder / "best_model"), epochs=2)
    assert run(config, registry).epoch == 2  # the advice works
    (folder / "epoch_2.pdstates").rename(folder / "epoch_2.kept")
    (folder / "latest.pdstates").unlink()
    (folder / "best_model.pdstates").unlink()
    assert "no training state was written" in resume_advice(folder) and "--overwrite" in resume_advice(folder)


def test_an_earlier_run_that_left_no_checkpoint_is_moved_aside_without_asking(data, registry, tmp_path, capsys):
    # a run that failed in its first epoch (NaN, a bad image): its advice, a lower rate, must just work
    config = engine_support.tiny_config(data, tmp_path, epochs=1)
    folder = tmp_path / "TinyNet"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    (folder / "metrics.jsonl").write_text('{"event": "step"}\n')
    assert run(config, registry).epoch == 1
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("TinyNet.before-")]
    assert (aside / "metrics.jsonl").read_text() == '{"event": "step"}\n'
    assert f"was moved to {aside}" in capsys.readouterr().out


def test_overwrite_moves_the_earlier_run_aside_and_resuming_is_allowed(data, registry, tmp_path, capsys):
    config = engine_support.tiny_config(data, tmp_path, epochs=1)
    first = run(config, registry)
    best = (first.output_dir / "best_model.pdparams").read_bytes()
    run(config, registry, overwrite=True)
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("TinyNet.before-")]
    assert (aside / "best_model.pdparams").read_bytes() == best
    assert "was moved to" in capsys.readouterr().out
    resumed = copy.deepcopy(config)
    resumed["Global"].update(epochs=2, checkpoints=str(first.output_dir / "latest"))
    assert run(resumed, registry).epoch == 2


def test_a_second_process_on_the_same_folder_is_stopped(data, registry, tmp_path):
    folder = tmp_path / "TinyNet"
    folder.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / ".lock").write_text(str(sleeper.pid))
        with pytest.raises(RunFolderTaken, match=rf"being written by another training process \(pid {sleeper.pid}\)"):
            run(engine_support.tiny_config(data, tmp_path, epochs=1), registry)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert run(engine_support.tiny_config(data, tmp_path, epochs=1), registry).epoch == 1  # a dead owner's lock is taken over
    assert not (folder / ".lock").exists()


def test_ctrl_c_says_how_to_resume_from_the_latest_checkpoint(data, tmp_path, fake_dist, capsys):
    import yaml

    fake_dist("engine-support", {"support": "from engine_support import corolla_backbones, corolla_callbacks\n"})
    config = engine_support.tiny_config(data, tmp_path, epochs=2)
    config["Global"].update(eval_during_train=False, callbacks=[{"ConsoleLogger": None}, {"CrashAfterEpoch": {"epoch": 1}}])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "-c", str(path)]) == 130
    captured = capsys.readouterr()
    latest = tmp_path / "TinyNet" / "latest"
    assert captured.err.splitlines()[-1] == (f"corolla train: interrupted; resume it by adding "
                                             f"-o Global.checkpoints={latest} to the same command")
    assert "[Train] interrupted in epoch 2" in captured.out and "[Train] done" not in captured.out


def _unwritable(fault: str, folder: Path, monkeypatch) -> str:
    """Make ``folder`` unwritable as ``fault`` says (the suite runs as root, which may write
    anywhere: read-only is simulated); the reason an error should give."""
    if fault == "a file":
        folder.write_text("not a folder")
        return f"{folder} is a file, not a folder"
    code = errno.EROFS if fault == "read-only" else errno.EACCES
    real_mkdir, real_open = Path.mkdir, os.open

    def mkdir(self, *args, **kwargs):
        if folder in (self, *self.parents) and not self.is_dir():  # mkdir(exist_ok=True) of a folder there works
            raise OSError(code, os.strerror(code), str(self))
        return real_mkdir(self, *args, **kwargs)

    def open_(path, *args, **kwargs):
        if folder in Path(path).parents:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    return os.strerror(code)


@pytest.mark.parametrize("fault", ["a file", "read-only", "no permission"])
def test_an_unwritable_output_dir_is_an_error_naming_the_key_and_the_folder(data, tmp_path, fake_dist, monkeypatch,
                                                                            capsys, fault):
    import yaml

    fake_dist("engine-support", {"support": "from engine_support import corolla_backbones, corolla_callbacks\n"})
    out = tmp_path / "out"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(engine_support.tiny_config(data, out, epochs=1)))
    if fault == "no permission":
        (out / "TinyNet").mkdir(parents=True)  # there, but .lock cannot be made in it
        why = _unwritable(fault, out / "TinyNet", monkeypatch)
    else:
        why = _unwritable(fault, out, monkeypatch)
    assert main(["train", "-c", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"corolla train: error: Global.output_dir: cannot write the run folder {out / 'TinyNet'}: {why}; "
        "set Global.output_dir to a folder this user can write"]


@pytest.mark.parametrize("fault", ["a file", "read-only"])
def test_an_unwritable_json_file_is_an_error_naming_the_option_and_the_file(trained, tmp_path, fake_dist, monkeypatch,
                                                                           capsys, fault):
    import yaml

    fake_dist("engine-support", {"support": "from engine_support import corolla_backbones, corolla_callbacks\n"})
    config, run_ = copy.deepcopy(trained[0]), trained[1]
    config["Global"]["pretrained_model"] = str(run_.output_dir / "best_model")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    folder = tmp_path / "results"
    json_file = folder / "out.jsonl"
    if fault == "a file":
        why = _unwritable(fault, folder, monkeypatch)
        written = ""
    else:
        folder.mkdir()
        why, written = os.strerror(errno.EROFS), f" (written to {json_file}.partial first)"

        def read_only(file, *args, **kwargs):
            raise OSError(errno.EROFS, why, str(file))

        monkeypatch.setattr(images, "open", read_only, raising=False)  # the module's open(), not the builtin
    capsys.readouterr()
    assert main(["infer", "-c", str(path), "--json", str(json_file)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"corolla infer: error: --json: cannot write {json_file}{written}: {why}; give a file in a folder this user can write")


def test_sigterm_stops_training_as_ctrl_c_does(data, tmp_path, fake_dist):
    """What timeout, docker stop and schedulers send: Paddle's own handler printed a C++ stack and exited 143."""
    import signal

    import yaml

    fake_dist("engine-support", {"support": "from engine_support import corolla_backbones, corolla_callbacks\n"})
    ready = tmp_path / "ready"
    config = engine_support.tiny_config(data, tmp_path, epochs=2)
    config["Global"].update(eval_during_train=False, callbacks=[{"ConsoleLogger": None}, {"WaitInEpoch": {"ready": str(ready)}}])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    paths = [sys.path[0], str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]  # the fake distribution, engine_support
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    training = subprocess.Popen([sys.executable, "-m", "corolla", "train", "-c", str(path)], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists() and training.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        training.send_signal(signal.SIGTERM)
        out, err = training.communicate(timeout=120)
    finally:
        training.kill()
    assert training.returncode == 130, out[-2000:] + err[-3000:]
    latest = tmp_path / "TinyNet" / "latest"
    assert err.splitlines()[-1] == (f"corolla train: interrupted; resume it by adding "
                                    f"-o Global.checkpoints={latest} to the same command")
    assert "[Train] interrupted in epoch 2" in out and "FatalError" not in err


# --- 4. divergence ---------------------------------------------------------------------------


def test_divergence_never_saves_a_bad_checkpoint_and_resuming_with_a_lower_rate_works(data, registry, tmp_path):
    config = engine_support.tiny_config(data, tmp_path, epochs=3)
    config["Global"]["callbacks"] = [{"MetricsLog": None}]
    good = run({**config, "Global": {**config["Global"], "epochs": 1}}, registry)
    good_best = (good.output_dir / "best_model.pdparams").read_bytes()
    exploding = copy.deepcopy(config)
    exploding["Global"]["checkpoints"] = str(good.output_dir / "latest")
    exploding["Optimizer"]["lr"] = {"name": "Constant", "learning_rate": 1e6}
    with pytest.raises(TrainingDiverged) as info:
        run(exploding, registry)
    message = str(info.value)
    assert f"the last good checkpoint is {good.output_dir / 'latest'}" in message and "-o Optimizer.lr.learning_rate" in message
    assert (good.output_dir / "best_model.pdparams").read_bytes() == good_best
    for name in ("latest", "best_model"):
        weights = load_state_dict_file(good.output_dir / f"{name}.pdparams")
        assert all(np.isfinite(v).all() for v in weights.values())
    assert int(load_state_dict_file(good.output_dir / "latest.pdstates")["epoch"]) == 1

    calm = copy.deepcopy(exploding)
    calm["Optimizer"]["lr"] = {"name": "Constant", "learning_rate": 0.01}
    with pytest.warns(UserWarning, match=r"Optimizer.lr or the run's length changed since the checkpoint \(.*"
                                         r"learning_rate 0.05 -> 0.01, name 'Cosine' -> 'Constant'.*\): the new schedule takes effect"):
        resumed = run(calm, registry)
    assert resumed.epoch == 3 and resumed.lr == pytest.approx(0.01)


def test_resuming_with_another_batch_size_continues_the_schedule_from_the_resumed_epoch(data, registry, tmp_path):
    config = engine_support.tiny_config(data, tmp_path, epochs=2, batch=8)
    config["Optimizer"]["lr"] = {"name": "Cosine", "learning_rate": 0.05}
    first = run({**config, "Global": {**config["Global"], "epochs": 1}}, registry)
    smaller = copy.deepcopy(config)
    smaller["Global"]["checkpoints"] = str(first.output_dir / "latest")
    smaller["DataLoader"]["Train"]["sampler"]["batch_size"] = 4
    steps = -(-len(data.train_list.read_text().splitlines()) // 4)  # an epoch of the new batch size
    with pytest.warns(UserWarning, match=rf"step_each_epoch {-(-steps // 2)} -> {steps}.*: the new schedule takes effect "
                                         rf"from its step {steps} of {2 * steps}, where the run resumes \(learning rate now 0.025\)"):
        resumed = run(smaller, registry)
    assert resumed.epoch == 2 and resumed.lr == pytest.approx(0.0, abs=1e-9)  # the cosine ran to its end


@pytest.mark.parametrize("lower_is_better, best_epoch", [(True, 2), (False, 3)])
def test_best_model_follows_the_direction_of_the_deciding_metric(data, registry, tmp_path, lower_is_better, best_epoch):
    config = engine_support.tiny_config(data, tmp_path, epochs=3)
    config["Metric"] = {"Eval": [{"ScriptedError": {"values": [0.5, 0.2, 0.6], "lower_is_better": lower_is_better}},
                                 {"TopkAcc": {"topk": [1]}}]}
    done = run(config, registry)
    assert (done.best_metric_name, done.best_metric, done.best_epoch) == ("err", [0.2, 0.6][best_epoch - 2], best_epoch)
    assert read_states(done.output_dir / "best_model")["epoch"] == best_epoch


# --- 5. predict streams, and may skip unreadable images ----------------------------------------


@pytest.fixture
def folder_with_a_bad_image(data, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    sources = sorted((data.root / "images").rglob("*.jpg"))[:7]
    for i, source in enumerate(sources):
        (images / f"{i:02d}.jpg").write_bytes(source.read_bytes())
    (images / "04.jpg").write_bytes(b"not a jpeg")
    return images


def test_predict_streams_each_batch_and_names_the_bad_image(trained, registry, tmp_path, folder_with_a_bad_image, capsys):
    config = exported_copy(trained, tmp_path)
    export(read_plan(config, registry))
    config["Infer"].update(infer_imgs=str(folder_with_a_bad_image), batch_size=2)
    json_file = tmp_path / "out.jsonl"
    capsys.readouterr()
    assert main(["predict", "-c", _write(config, tmp_path), "--json", str(json_file)]) == 2
    captured = capsys.readouterr()
    assert [line.split(":")[0] for line in captured.out.splitlines()] == ["00.jpg", "01.jpg", "02.jpg", "03.jpg"]
    assert "04.jpg: cannot decode image: not an image format PIL knows" in captured.err and "--skip-bad-images" in captured.err
    assert not json_file.exists() and len(Path(f"{json_file}.partial").read_text().splitlines()) == 4

    assert main(["predict", "-c", _write(config, tmp_path), "--json", str(json_file), "--skip-bad-images"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 6 and "skipped 1 of 7 images that could not be read" in captured.err
    assert len(json_file.read_text().splitlines()) == 6 and not Path(f"{json_file}.partial").exists()


def test_a_predict_stopped_by_a_bad_image_says_where_its_predictions_are(trained, registry, tmp_path,
                                                                       folder_with_a_bad_image, capsys):
    config = exported_copy(trained, tmp_path)
    export(read_plan(config, registry))
    config["Infer"].update(infer_imgs=str(folder_with_a_bad_image), batch_size=2)
    json_file = tmp_path / "out.jsonl"
    json_file.write_text('{"from": "an earlier run"}\n')
    capsys.readouterr()
    assert main(["predict", "-c", _write(config, tmp_path), "--json", str(json_file)]) == 2
    assert (f"the predictions made so far (4) are in {json_file}.partial; {json_file} is an earlier run's, "
            "left as it was") in capsys.readouterr().err
    assert json_file.read_text() == '{"from": "an earlier run"}\n'
    with pytest.raises(DataError, match=rf"04.jpg: .*; the predictions made so far \(4\) are in {re.escape(str(json_file))}.partial"):
        infer(read_plan(config, registry), json_path=json_file)

    assert main(["predict", "-c", _write(config, tmp_path), "--json", str(json_file), "--skip-bad-images"]) == 0
    err = capsys.readouterr().err
    assert f"skipped {folder_with_a_bad_image / '04.jpg'}: cannot decode image" in err and err.count("04.jpg") == 1
    assert main(["predict", "-c", _write(config, tmp_path), "--json", str(tmp_path), "--skip-bad-images"]) == 2
    assert f"--json: {tmp_path} is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["eval", "infer", "export"])
def test_weights_of_another_class_count_are_refused_where_nothing_trains_the_classifier(trained, registry, tmp_path, verb):
    config = exported_copy(trained, tmp_path)
    config["Arch"]["class_num"] = 4  # the weights are of a 3-class model
    with pytest.raises(WeightsError, match=r"best_model.pdparams has 3 classes and the model \(Global.pretrained_model\) 4: its "
                                           r"classifier would be random. Set Arch.class_num=3, or give the weights of a 4-class model"):
        {"eval": evaluate_config, "infer": infer, "export": export}[verb](read_plan(config, registry))
    assert not (tmp_path / "model").exists()


def test_files_without_an_image_suffix_are_counted_and_named(tmp_path):
    for name in ("a.jpg", "b.JPEG", "cats/c.png", "notes.txt", "cats/labels.csv", "cats/d.heic", "x/y/z.md", ".git/config"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    with pytest.warns(UserWarning, match=r"^Infer.infer_imgs: 4 of the 7 files in .* are not classified, as their names do not "
                                         r"end in an image suffix: cats/d.heic, cats/labels.csv, notes.txt and 1 more$"):
        found = list_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.jpg", "b.JPEG", "cats/c.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list_images(tmp_path / "cats" / "c.png") == [tmp_path / "cats" / "c.png"]  # a file given is taken as it is


def _write(config: dict, folder: Path) -> str:
    """The config as a file for the command line, without the test-only TinyNet (the
    verbs called with it need no model)."""
    import yaml

    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in config.items() if k not in ("Arch", "Optimizer", "Loss")}))
    return str(path)


# --- 6, 7. values and keys (the plan's tests cover the rest) --------------------------------


def test_values_from_yaml_are_checked_before_anything_runs(data, registry, tmp_path):
    import yaml

    config = engine_support.tiny_config(data, tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config).replace("learning_rate: 0.05", "learning_rate: 1e-3"))
    assert read_plan(load_config(path), registry).lr_schedule.params["learning_rate"] == 1e-3
    config["DataLoader"]["Train"]["dataset"]["transform_ops"].insert(1, {"ColorJitter": {"prob": "high"}})
    with pytest.raises(ConfigError, match=r"transform_ops.1.ColorJitter: transform 'ColorJitter' .*: prob: expected a number.*found 'high'"):
        read_plan(config, registry)


# --- 8. one class map per run ------------------------------------------------------------------


def test_a_validation_folder_lacking_a_class_cannot_shift_labels(registry, tmp_path):
    make_image_folder(tmp_path / "train", num_classes=3, images_per_class=3, image_size=24)
    make_image_folder(tmp_path / "val", num_classes=3, images_per_class=2, image_size=24)
    missing = sorted(p for p in (tmp_path / "val").iterdir() if p.is_dir())[1]
    for image in missing.iterdir():
        image.unlink()
    missing.rmdir()
    config = engine_support.tiny_config(make_list_dataset(tmp_path / "unused", num_classes=3, images_per_class=2), tmp_path / "out")
    for mode, folder in (("Train", "train"), ("Eval", "val")):
        config["DataLoader"][mode]["dataset"] = {"name": "ImageFolderDataset", "image_root": str(tmp_path / folder),
                                                 "transform_ops": config["DataLoader"][mode]["dataset"]["transform_ops"]}
    with pytest.raises(DataError, match=r"DataLoader.Eval: its classes \(.*\) are not the training set's .*class_id_map_file"):
        run(config, registry)
    train_map = (tmp_path / "train" / "label_list.txt").read_text()
    config["DataLoader"]["Eval"]["dataset"]["class_id_map_file"] = str(tmp_path / "train" / "label_list.txt")
    config["Global"]["epochs"] = 1
    assert main(["data", "check", "-c", _write(config, tmp_path)]) == 0
    trained = run(config, registry, overwrite=True)
    assert (tmp_path / "train" / "label_list.txt").read_text() == train_map  # never overwritten
    assert trained.epoch == 1


# --- 9. the contract between ops ---------------------------------------------------------------


def test_an_op_that_turns_a_normalised_image_back_to_uint8_is_named(data, registry, tmp_path, fake_dist):
    fake_dist("bad-ops", {"ops": "import numpy as np\n"
                                 "def corolla_transforms():\n"
                                 "    return {'ToBytes': lambda: (lambda img: (img * 255).astype(np.uint8))}\n"})
    bad_registry = corolla.load_registry(extra_plugins=[("engine_support", engine_support)])
    config = engine_support.tiny_config(data, tmp_path, epochs=1)
    config["DataLoader"]["Train"]["dataset"]["transform_ops"].append({"ToBytes": None})
    with pytest.raises(DataError, match=r"transform_ops.4.ToBytes: ToBytes returned a uint8 array of 3 dimensions from a float32 one"):
        run(config, bad_registry)


# --- 10. smaller things ----------------------------------------------------------------------


def test_a_full_disk_during_a_checkpoint_save_says_the_previous_one_is_intact(tmp_path, monkeypatch):
    files.write_checkpoint(tmp_path / "latest", {".pdparams": {"w": np.zeros(3)}})

    def full(directory, write, **_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "staged_file", full)
    with pytest.raises(WriteError, match=r"could not write checkpoint .*latest: No space left on device; its previous files "
                                         r"are intact.*resume the run with -o Global.checkpoints"):
        files.write_checkpoint(tmp_path / "latest", {".pdparams": {"w": np.ones(3)}})
    assert load_state_dict_file(tmp_path / "latest.pdparams")["w"].tolist() == [0, 0, 0]


def test_data_check_does_not_suggest_what_is_already_set(data, tmp_path, capsys):
    config = engine_support.tiny_config(data, tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_text(data.train_list.read_text() + "images/nowhere.jpg 0\n")
    config["DataLoader"]["Train"]["dataset"]["cls_label_path"] = str(listing)
    config["DataLoader"]["Train"]["loader"]["skip_bad_images"] = True
    assert main(["data", "check", "-c", _write(config, tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 missing (missing images will be skipped: loader.skip_bad_images)" in out and "set loader" not in out


def _unlabeled_copy(listing: Path, folder: Path, keep: int = 0) -> Path:
    """``listing`` with the labels of all but its first ``keep`` lines removed."""
    lines = listing.read_text().splitlines()
    copy_ = folder / f"unlabeled_{keep}_{listing.name}"
    copy_.write_text("\n".join(lines[:keep] + [line.split(" ")[0] for line in lines[keep:]]) + "\n")
    return copy_


def test_a_run_with_nothing_to_learn_from_or_evaluate_on_is_refused_before_training(data, registry, tmp_path):
    config = engine_support.tiny_config(data, tmp_path, epochs=1)
    loaders, images = config["DataLoader"], len(data.train_list.read_text().splitlines())

    def refused(message: str, **lists: Path) -> None:
        changed = copy.deepcopy(config)
        for mode, listing in lists.items():
            changed["DataLoader"][mode]["dataset"]["cls_label_path"] = str(listing)
        with pytest.raises(DataError, match=message):
            run(changed, registry)
        assert not (tmp_path / "TinyNet").exists()

    refused(rf"DataLoader.Train: none of the {images} images of .* has a label, and every loss of Loss.Train needs labels",
            Train=_unlabeled_copy(data.train_list, tmp_path))
    refused(r"DataLoader.Eval: none of the \d+ images of .* has a label, and evaluation needs labels",
            Eval=_unlabeled_copy(data.val_list, tmp_path))
    missing = tmp_path / "missing.txt"
    missing.write_text("images/gone_1.jpg 0\nimages/gone_2.jpg 1\n")
    loaders["Train"]["loader"]["skip_bad_images"] = True
    refused(r"DataLoader.Train: none of the 2 images of .*missing.txt exists \(.*missing.txt:1: .*gone_1.jpg, ...\)", Train=missing)

    config["DataLoader"]["Train"]["dataset"]["cls_label_path"] = str(_unlabeled_copy(data.train_list, tmp_path, keep=4))
    with pytest.warns(UserWarning, match=rf"DataLoader.Train: {images - 4} of the {images} images of .* have no label, and "
                                         r"every loss of Loss.Train needs labels: they are not trained on"):
        assert run(config, registry).epoch == 1


def test_an_evaluation_set_image_that_cannot_be_read_keeps_the_trained_epoch(data, registry, tmp_path):
    config = engine_support.tiny_config(data, tmp_path, epochs=2)
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a jpeg")
    listing = tmp_path / "val.txt"
    listing.write_text(data.val_list.read_text() + f"{broken} 0\n")
    config["DataLoader"]["Eval"]["dataset"]["cls_label_path"] = str(listing)
    with pytest.raises(DataError, match=r"broken.jpg: cannot decode image.*\. Epoch 1 is trained and saved, not evaluated: "
                                        r"fix DataLoader.Eval, then resume it by adding -o Global.checkpoints=.*latest"):
        run(config, registry)
    assert read_states(tmp_path / "TinyNet" / "latest")["epoch"] == 1


def test_misspelt_names_get_close_matches_across_kinds_and_distributions(capsys):
    assert main(["plugins", "show", "RandomErasng"]) == 2
    assert "Close matches: RandomErasing (transform)" in capsys.readouterr().err
    registry = corolla.load_registry(prefer={"RandFlipImage": "corola"})
    with pytest.raises(corolla.PluginError, match=r"names distribution 'corola', which does not give transform "
                                                  r"'RandFlipImage'; it is given by corolla. Did you mean 'corolla'"):
        registry.resolve("transform", "RandFlipImage")


# --- corrupt and truncated files of every kind corolla reads ----------------------------------


def test_truncated_or_corrupt_files_are_clear_errors(trained, data, registry, tmp_path):
    config, first = trained
    params = tmp_path / "cut.pdparams"
    params.write_bytes((first.output_dir / "latest.pdparams").read_bytes()[:500])
    with pytest.raises(WeightsError, match=r"cut.pdparams is not a paddle.save file .*truncated"):
        load_state_dict_file(params)
    states = tmp_path / "latest.pdstates"
    states.write_bytes(b"\x80\x04garbage")
    resumed = copy.deepcopy(config)
    resumed["Global"]["checkpoints"] = str(tmp_path / "latest")
    with pytest.raises(WeightsError, match="latest.pdstates is not a"):
        run(resumed, registry)
    broken_yaml = tmp_path / "broken.yaml"
    broken_yaml.write_text("Global:\n  epochs: [1\nArch: {}\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+:\d+: invalid YAML"):
        load_config(broken_yaml)
    record = Path(exported_copy(trained, tmp_path)["Global"]["save_inference_dir"])
    export(read_plan(exported_copy(trained, tmp_path), registry))
    (record / "inference.yml").write_text("PreProcess: {transform_ops: [{NoSuchOp: null}]}\n")
    config_predict = exported_copy(trained, tmp_path)
    with pytest.raises(corolla.UnknownComponentError, match=r"inference.yml: PreProcess.transform_ops.0.NoSuchOp: unknown transform"):
        predict(read_plan(config_predict, registry))
    labels = tmp_path / "labels.txt"
    labels.write_text("0 a\nx b\n")
    config_labels = exported_copy(trained, tmp_path)
    config_labels["Infer"]["PostProcess"]["class_id_map_file"] = str(labels)
    with pytest.raises(DataError, match=r"labels.txt:2: expected 'CLASS_ID NAME', found 'x b'"):
        export(read_plan(config_labels, registry))
    image = tmp_path / "cut.jpg"
    image.write_bytes(next((data.root / "images").rglob("*.jpg")).read_bytes()[:200])
    with pytest.raises(DataError, match=r"cut.jpg: .*cannot decode image"):
        engine_support.pipeline_of([{"DecodeImage": None}], registry, "T")(str(image))
    bomb = tmp_path / "bomb.png"
    Image.new("1", (16_000, 12_000)).save(bomb)  # 192 million pixels in a few kB
    with pytest.raises(DataError, match=r"bomb.png: .*decompression bomb"):
        engine_support.pipeline_of([{"DecodeImage": None}], registry, "T")(str(bomb))
