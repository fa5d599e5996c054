"""Training end to end on generated data: outputs, resume, NaN stop, EMA/AMP, hooks;
then eval, infer, export and predict of the trained model."""
from __future__ import annotations

import copy
import json
import re

import numpy as np
import paddle
import pytest

import corolla
import engine_support
from corolla.engine.evaluate import evaluate_config
from corolla.engine.export import export
from corolla.engine.inference import infer
from corolla.engine.predict import predict
from corolla.data.loader import SkippedImagesWarning
from corolla.engine.train import TrainingDiverged, TrainingInterrupted, train
from corolla.plugin.errors import DataError
from corolla.config.planner import read_plan
from corolla.testing.datasets import make_list_dataset
from corolla.engine.safe_pickle import load_state_dict_file


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_list_dataset(tmp_path_factory.mktemp("data"), num_classes=3, images_per_class=12, image_size=40, seed=3)


@pytest.fixture(scope="module")
def registry():
    return corolla.load_registry(extra_plugins=[("engine_support", engine_support)])


def run_training(config, registry):
    return train(read_plan(copy.deepcopy(config), registry), distributed=False)


@pytest.fixture(scope="module")
def trained(data, registry, tmp_path_factory):
    """Two epochs of TinyNet; shared by the tests that read its outputs."""
    out = tmp_path_factory.mktemp("run")
    config = engine_support.tiny_config(data, out, epochs=2)
    return config, run_training(config, registry)


def test_training_writes_paddleclas_layout_logs_curves_and_manifest(trained, data):
    config, run = trained
    folder = run.output_dir
    assert folder.name == "TinyNet" and run.epoch == 2 and run.global_step == 2 * run.steps_per_epoch
    assert run.steps_per_epoch == -(-data.num_train // 8)
    for prefix in ("latest", "best_model", "epoch_1", "epoch_2"):
        for suffix in (".pdparams", ".pdopt", ".pdstates"):
            assert (folder / f"{prefix}{suffix}").is_file(), prefix + suffix
    states = load_state_dict_file(folder / "latest.pdstates")
    assert int(states["epoch"]) == 2 and int(states["global_step"]) == run.global_step and int(states["seed"]) == 7
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["epoch"] for r in evals] == [1, 2]
    assert all(0.0 <= r["top1"] <= r["top2"] <= 1.0 and r["loss"] > 0 for r in evals)
    assert run.best_metric_name == "top1" and run.best_metric == max(r["top1"] for r in evals)
    assert len([r for r in records if r["event"] == "step"]) == run.global_step  # print_batch_step 1
    assert (folder / "curves.png").read_bytes().startswith(b"\x89PNG")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["config"]["Arch"]["name"] == "TinyNet" and manifest["seed"] == 7
    used = {c["name"]: c["distribution"] for c in manifest["components"]}
    assert used["TinyNet"] == "<registered>" and used["Momentum"] == "corolla"
    assert {p["name"] for p in manifest["plugins"]} >= {"backbones", "losses", "optim", "engine_support"}


def test_resume_after_a_kill_gives_bitwise_the_same_weights(data, registry, tmp_path, capsys):
    straight = engine_support.tiny_config(data, tmp_path / "straight", epochs=3)
    straight["Arch"]["dropout"] = 0.3  # random numbers in the model too
    run_training(straight, registry)

    killed = copy.deepcopy(straight)
    killed["Global"]["output_dir"] = str(tmp_path / "killed")
    killed["Global"]["callbacks"] = [{"ConsoleLogger": None}, {"MetricsLog": None}, {"CrashAfterEpoch": {"epoch": 1}}]
    capsys.readouterr()
    with pytest.raises(TrainingInterrupted) as interrupted:
        run_training(killed, registry)
    latest = tmp_path / "killed" / "TinyNet" / "latest"
    assert interrupted.value.resume == f"resume it by adding -o Global.checkpoints={latest} to the same command"
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("[Train] interrupted in epoch 2 after ")
    assert last.endswith(f"; checkpoints in {latest.parent}: best_model, epoch_1, latest")
    stale = tmp_path / "killed" / "TinyNet" / ".tmp-x1y2.ckpt"
    stale.write_bytes(b"half a checkpoint")  # what a kill during a save leaves
    resumed = copy.deepcopy(killed)
    resumed["Global"]["callbacks"] = [{"ConsoleLogger": None}, {"MetricsLog": None}]
    resumed["Global"]["checkpoints"] = str(tmp_path / "killed" / "TinyNet" / "latest")
    run = run_training(resumed, registry)
    assert run.resumed_from is not None and run.start_epoch == 2 and run.epoch == 3
    assert not stale.exists()

    a = load_state_dict_file(tmp_path / "straight" / "TinyNet" / "latest.pdparams")
    b = load_state_dict_file(tmp_path / "killed" / "TinyNet" / "latest.pdparams")
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    sa = load_state_dict_file(tmp_path / "straight" / "TinyNet" / "latest.pdstates")
    sb = load_state_dict_file(tmp_path / "killed" / "TinyNet" / "latest.pdstates")
    for key in ("global_step", "best_metric", "lr_schedule/last_epoch", "lr_schedule/last_lr"):
        assert sa[key] == sb[key], key
    records = [json.loads(l) for l in (tmp_path / "killed" / "TinyNet" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2, 3]


def test_a_nan_loss_stops_with_step_lr_and_last_checkpoint(data, registry, tmp_path):
    config = engine_support.tiny_config(data, tmp_path, epochs=3)
    steps = -(-data.num_train // 8)
    config["Loss"]["Train"] = [{"NanAfterCalls": {"calls": steps + 2}}]
    with pytest.raises(TrainingDiverged) as failure:
        run_training(config, registry)
    message = str(failure.value)
    assert f"at epoch 2, step 2 (global step {steps + 2}) with lr " in message
    assert f"the last good checkpoint is {tmp_path / 'TinyNet' / 'latest'}" in message
    assert int(load_state_dict_file(tmp_path / "TinyNet" / "latest.pdstates")["epoch"]) == 1


class NanLogitsForEvaluation:
    """After epoch 1's last step, NaN logits (as broken BatchNorm statistics give): the evaluation's loss is NaN."""

    def corolla_step_end(self, run, epoch, step, logs):
        if step == run.steps_per_epoch:
            run.model.fc.bias.set_value(paddle.full_like(run.model.fc.bias, float("nan")))


def test_a_nan_evaluation_after_a_small_last_batch_suggests_drop_last(data, registry, tmp_path):
    config = engine_support.tiny_config(data, tmp_path, epochs=1, batch=8)
    last = data.num_train % 8
    assert 0 < last < 8
    with registry.callbacks([NanLogitsForEvaluation()]), pytest.raises(TrainingDiverged) as failure:
        run_training(config, registry)
    assert (f"the evaluation loss became nan after epoch 1 (the training set's last batch holds {last} image(s): "
            "BatchNorm statistics of so small a batch can break; DataLoader.Train.sampler.drop_last: true leaves it out)"
            ) in str(failure.value)
    config["DataLoader"]["Train"]["sampler"]["drop_last"] = True
    config["Global"]["output_dir"] = str(tmp_path / "dropped")
    with registry.callbacks([NanLogitsForEvaluation()]), pytest.raises(TrainingDiverged) as failure:
        run_training(config, registry)
    assert "after epoch 1; no checkpoint of this epoch was written" in str(failure.value)


def test_a_run_that_fails_before_any_checkpoint_does_not_claim_one(data, registry, tmp_path, capsys):
    config = engine_support.tiny_config(data, tmp_path, epochs=1)
    config["Loss"]["Train"] = [{"NanAfterCalls": {"calls": 1}}]
    with pytest.raises(TrainingDiverged):
        run_training(config, registry)
    lines = capsys.readouterr().out.splitlines()
    assert not any(line.startswith("[Train] done") for line in lines)
    assert lines[-1].startswith("[Train] stopped by TrainingDiverged in epoch 1 after ")
    assert lines[-1].endswith(f"; no checkpoint in {tmp_path / 'TinyNet'}")


def test_skipped_training_images_are_counted_every_epoch(data, registry, tmp_path):
    listing = tmp_path / "with_a_bad_image.txt"
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    listing.write_text(data.train_list.read_text() + f"{tmp_path / 'bad.jpg'} 0\n")
    config = engine_support.tiny_config(data, tmp_path, epochs=2)
    config["Global"]["eval_during_train"] = False
    config["DataLoader"]["Train"]["dataset"]["cls_label_path"] = str(listing)
    config["DataLoader"]["Train"]["loader"]["skip_bad_images"] = True
    with pytest.warns(SkippedImagesWarning) as warned:
        run = run_training(config, registry)
    skips = [str(w.message) for w in warned if issubclass(w.category, SkippedImagesWarning)]
    assert len(skips) == 2 and all(s.startswith("DataLoader.Train: skipped 1 unreadable image this epoch") for s in skips)
    assert run.steps_per_epoch == -(-(data.num_train + 1) // 8) and run.global_step == 2 * run.steps_per_epoch


def test_ema_and_amp_sections_train_and_save_the_average(data, registry, tmp_path, capsys):
    config = engine_support.tiny_config(data, tmp_path, epochs=1)
    config["EMA"] = {"decay": 0.9}
    config["AMP"] = {"scale_loss": 128.0, "use_dynamic_loss_scaling": True, "level": "O1"}
    with pytest.warns(UserWarning, match="AMP: Paddle has no float16/bfloat16 training kernels on CPU"):
        run = run_training(config, registry)
    ema = load_state_dict_file(tmp_path / "TinyNet" / "latest.pdema")
    weights = load_state_dict_file(tmp_path / "TinyNet" / "latest.pdparams")
    assert sorted(ema) == sorted(weights)
    assert not np.array_equal(ema["fc.weight"], weights["fc.weight"])
    assert (tmp_path / "TinyNet" / "best_model_ema.pdparams").is_file()
    evals = [json.loads(l) for l in (tmp_path / "TinyNet" / "metrics.jsonl").read_text().splitlines()
             if '"eval"' in l]
    assert "ema_top1" in evals[0] and "top1" in evals[0] and "ema_images_per_sec" in evals[0]
    assert run.epoch == 1
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[Eval]")]
    assert re.search(r"ema_top1: \d\.\d{4}", line) and "images_per_sec" not in line  # shown once, as images/s


def test_a_loss_over_labeled_rows_is_averaged_over_them_in_training_and_evaluation(registry, tmp_path):
    """Batches of 6 from 9 labeled images then 6 unlabeled, in order: 6, 3 and 0 labeled rows.
    CELoss is a mean over labeled rows: the epoch average weights it by them (not by the
    batch), and a batch without labels has no CELoss to show."""
    mixed = make_list_dataset(tmp_path / "data", num_classes=3, images_per_class=4, image_size=32, unlabeled=6, seed=5)
    config = engine_support.tiny_config(mixed, tmp_path, epochs=1, batch=6)
    config["DataLoader"]["Train"]["dataset"]["cls_label_path"] = str(mixed.train_extra_list)
    config["DataLoader"]["Train"]["sampler"]["shuffle"] = False
    del config["Metric"]["Train"]
    run = run_training(config, registry)
    records = [json.loads(line) for line in (run.output_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["event"] == "step"]
    (epoch,) = [r for r in records if r["event"] == "epoch"]
    assert [s["batch_size"] for s in steps] == [6, 6, 3] and "CELoss" not in steps[2]
    assert epoch["CELoss"] == pytest.approx((6 * steps[0]["CELoss"] + 3 * steps[1]["CELoss"]) / 9, rel=1e-6)
    assert epoch["loss"] == pytest.approx((6 * steps[0]["loss"] + 6 * steps[1]["loss"] + 3 * steps[2]["loss"]) / 15, rel=1e-6)

    config["Global"]["pretrained_model"] = str(run.output_dir / "latest")
    results = {}
    for listing in (mixed.train_list, mixed.train_extra_list):  # the same labeled images, then 6 unlabeled more
        config["DataLoader"]["Eval"]["dataset"]["cls_label_path"] = str(listing)
        results[listing.name] = evaluate_config(read_plan(copy.deepcopy(config), registry))
    assert results["train_extra_list.txt"]["CELoss"] == pytest.approx(results["train_list.txt"]["CELoss"], rel=1e-5)


def test_evaluation_starts_at_start_eval_epoch_and_follows_eval_interval(data, registry, tmp_path):
    """As in PaddleClas: epochs are counted from 1 and epoch ``start_eval_epoch`` itself is evaluated."""
    config = engine_support.tiny_config(data, tmp_path, epochs=5)
    config["Global"].update(start_eval_epoch=2, eval_interval=2)
    run = run_training(config, registry)
    records = [json.loads(line) for line in (run.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "eval"] == [2, 4]


def test_training_prints_the_data_check_of_both_lists_first(data, registry, tmp_path, capsys):
    run_training(engine_support.tiny_config(data, tmp_path, epochs=1), registry)
    lines = capsys.readouterr().out.splitlines()
    data_lines = [line for line in lines if line.startswith("[Data]")]
    assert data_lines == [
        f"[Data] Train: {data.train_list}: {data.num_train} images, 3 classes (labels 0..2), all files present",
        f"[Data] Eval: {data.val_list}: {data.num_val} images, 3 classes (labels 0..2), all files present",
    ]
    assert lines.index(data_lines[0]) < min(i for i, line in enumerate(lines) if "Iter" in line)


def test_a_callback_can_stop_training(data, registry, tmp_path):
    config = engine_support.tiny_config(data, tmp_path, epochs=5)
    config["Global"]["callbacks"] = [{"StopAfterSteps": {"steps": 3}}]
    run = run_training(config, registry)
    assert run.global_step == 3 and run.epoch == 1 and run.stop_training


def test_resume_from_a_missing_checkpoint_names_the_file(data, registry, tmp_path):
    config = engine_support.tiny_config(data, tmp_path, epochs=1)
    config["Global"]["checkpoints"] = str(tmp_path / "nowhere" / "latest")
    with pytest.raises(DataError, match=r"Global.checkpoints: file not found: .*nowhere/latest.pdstates"):
        run_training(config, registry)


@pytest.mark.parametrize("suffix", [".pdparams", ".pdstates"])
def test_resume_from_a_checkpoint_file_continues_after_its_epoch(data, registry, tmp_path, suffix):
    config = engine_support.tiny_config(data, tmp_path, epochs=2)
    config["Global"]["callbacks"] = [{"CrashAfterEpoch": {"epoch": 1}}]
    with pytest.raises(KeyboardInterrupt):
        run_training(config, registry)
    latest = tmp_path / "TinyNet" / "latest"
    config["Global"]["callbacks"] = []
    config["Global"]["checkpoints"] = f"{latest}{suffix}"
    run = run_training(config, registry)
    assert run.start_epoch == 2 and run.epoch == 2 and run.resumed_from == latest
    assert int(load_state_dict_file(tmp_path / "TinyNet" / "latest.pdstates")["epoch"]) == 2
    config["Global"]["checkpoints"] = str(latest)  # the run is finished: resuming it again trains nothing, and says so
    with pytest.warns(UserWarning, match=r"is after epoch 2 and Global.epochs is 2: nothing is left to train"):
        assert run_training(config, registry).epoch == 2


def test_eval_of_a_checkpoint_given_as_global_checkpoints_uses_its_weights_and_says_so(trained, registry):
    config, run = trained
    config = copy.deepcopy(config)
    config["Global"]["checkpoints"] = str(run.output_dir / "epoch_1")
    with pytest.warns(UserWarning, match=r"Global.pretrained_model is not set: the weights are Global.checkpoints' \(.*epoch_1\)"):
        from_checkpoints = evaluate_config(read_plan(copy.deepcopy(config), registry))
    config["Global"]["pretrained_model"] = str(run.output_dir / "best_model")
    with pytest.warns(UserWarning, match=r"Global.checkpoints \(.*epoch_1\) is not read here: the weights are Global.pretrained_model's"):
        from_best = evaluate_config(read_plan(copy.deepcopy(config), registry))
    config["Global"]["pretrained_model"] = str(run.output_dir / "epoch_1")
    del config["Global"]["checkpoints"]
    expected = evaluate_config(read_plan(config, registry))
    assert from_checkpoints["loss"] == pytest.approx(expected["loss"]) and from_checkpoints["top1"] == expected["top1"]
    assert from_best["top1"] == pytest.approx(run.best_metric)


def test_eval_infer_export_predict_of_the_trained_model(trained, registry, data, tmp_path, capsys):
    config, run = trained
    config = copy.deepcopy(config)
    config["Global"]["pretrained_model"] = str(run.output_dir / "best_model")
    config["Global"]["save_inference_dir"] = str(tmp_path / "inference")
    config["Infer"]["infer_imgs"] = str(data.root / "images" / data.class_names[1])
    plan = read_plan(config, registry)

    results = evaluate_config(plan)
    assert results["top1"] == pytest.approx(run.best_metric)
    assert results["images_per_sec"] > 0 and results["loss"] > 0

    capsys.readouterr()
    inferred = infer(plan, json_path=tmp_path / "infer.jsonl")
    lines = capsys.readouterr().out.splitlines()
    assert len(inferred) == len(lines) == 12
    first = inferred[0]
    assert lines[0] == (f"{first.file.rsplit('/', 1)[1]}:\tclass id(s): {first.class_ids}, "
                        f"score(s): [{first.scores[0]:.2f}, {first.scores[1]:.2f}], "
                        f"label_name(s): {[data.class_names[i] for i in first.class_ids]}")
    assert all(sum(p.scores) <= 1.0 + 1e-6 and p.scores[0] >= p.scores[1] for p in inferred)

    folder = export(plan)
    program = "inference.json" if int(paddle.__version__.split(".")[0]) >= 3 else "inference.pdmodel"  # what the running Paddle writes
    written = {p.name for p in folder.iterdir()} - {"inference.pdiparams.info"}  # Paddle 2.6 adds the .info
    assert written == {program, "inference.pdiparams", "inference.yml", "label_list.txt"}
    predicted = predict(plan, json_path=tmp_path / "predict.jsonl")
    assert [p.file for p in predicted] == [p.file for p in inferred]
    assert [p.class_ids[0] for p in predicted] == [p.class_ids[0] for p in inferred]
    for a, b in zip(inferred, predicted):
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-4)
    assert [json.loads(l)["class_ids"] for l in (tmp_path / "predict.jsonl").read_text().splitlines()] == [p.class_ids for p in predicted]
