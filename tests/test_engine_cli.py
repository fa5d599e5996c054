"""The engine's verbs from the command line: quickstart (the main job), then eval,
infer, export and predict on what it wrote; errors are one clear line."""
from __future__ import annotations

import json
import re

import paddle

from corolla.cli.main import main
from corolla.cli.quickstart import CONFIG, overrides

PREDICTION = re.compile(
    r"^\S+\.jpg:\tclass id\(s\): \[\d, \d\], score\(s\): \[\d\.\d\d, \d\.\d\d\], label_name\(s\): \['c\d\d_\w+', 'c\d\d_\w+'\]$"
)


def test_quickstart_trains_evaluates_exports_predicts_and_says_where(tmp_path, capsys):
    workdir = tmp_path / "qs"
    assert main(["quickstart", "--workdir", str(workdir), "-o", "Global.epochs=1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [l.split("]")[0] for l in out if re.match(r"^\[\d/5\]", l)] == ["[1/5", "[2/5", "[3/5", "[4/5", "[5/5"]
    predictions = [l.strip() for l in out if l.startswith("      c")]
    assert len(predictions) == 2 and all(PREDICTION.match(p) for p in predictions), predictions
    model = workdir / "output" / "PPLCNet_x0_25"
    for shown in (model / "curves.png", model / "metrics.jsonl", model / "manifest.json", workdir / "inference"):
        assert shown.exists() and any(str(shown) in line for line in out), shown
    assert {"inference.pdiparams", "inference.yml"} <= {p.name for p in (workdir / "inference").iterdir()}
    assert any((workdir / "inference" / f"inference{s}").is_file() for s in (".json", ".pdmodel"))  # Paddle 3 / 2.6

    # the verbs, on what quickstart wrote
    base = ["-c", str(CONFIG), *sum((["-o", o] for o in overrides(workdir)), [])]
    trained = ["-o", f"Global.pretrained_model={model / 'best_model'}",
               "-o", f"Infer.infer_imgs={workdir / 'data' / 'images' / 'c03_star'}"]
    assert main(["eval", *base, *trained]) == 0
    (evaluated,) = [l for l in capsys.readouterr().out.splitlines() if l.startswith("[Eval]")]
    top1 = float(re.search(r"top1: ([\d.]+)", evaluated).group(1))
    assert f"top1: {top1:.4f}" in "\n".join(out)  # quickstart printed the same figure
    assert main(["infer", *base, *trained, "--json", str(tmp_path / "infer.jsonl")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 100 and all(PREDICTION.match(l) for l in lines)
    assert main(["predict", *base, *trained, "--json", str(tmp_path / "predict.jsonl")]) == 0
    inferred = [json.loads(l) for l in (tmp_path / "infer.jsonl").read_text().splitlines()]
    predicted = [json.loads(l) for l in (tmp_path / "predict.jsonl").read_text().splitlines()]
    assert [p["class_ids"][0] for p in predicted] == [p["class_ids"][0] for p in inferred]
    assert max(abs(a - b) for p, q in zip(inferred, predicted) for a, b in zip(p["scores"], q["scores"])) < 1e-4


def test_errors_are_one_line_naming_the_key(tmp_path, capsys):
    base = ["-c", str(CONFIG), *sum((["-o", o] for o in overrides(tmp_path)), [])]
    assert main(["predict", *base]) == 2
    assert "Global.save_inference_dir: " in capsys.readouterr().err
    assert main(["train", *base, "-o", "Global.device=gpu"]) == 2  # no data yet
    err = capsys.readouterr().err
    assert "corolla train: error: ImageNetDataset(" in err and "image_root" in err
    if not paddle.device.is_compiled_with_cuda():  # gpu on a CPU-only Paddle: the CPU, with one warning
        assert err.count("Global.device: 'gpu', but this Paddle build has no CUDA support: running on the CPU") == 1
    assert main(["infer", *base, "-o", f"Infer.infer_imgs={tmp_path / 'none'}"]) == 2
    assert "Infer.infer_imgs: no such file or folder" in capsys.readouterr().err
