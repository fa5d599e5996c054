"""Plugin packages used as a user would: the example distribution and a `corolla new-plugin`
scaffold are pip-installed (built from their folders, offline) into a fresh virtual environment,
their own tests run there, and corolla trains with their components from the command line."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from corolla.cli.main import main
from corolla.testing.datasets import make_list_dataset

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "corolla-example-plugin"


class VirtualEnv:
    """A fresh virtual environment that also sees this one's packages (corolla, Paddle, pip,
    setuptools), as ``--system-site-packages`` would if they were installed system-wide."""

    def __init__(self, root: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
        self.python = str(root / "bin" / "python")
        site = subprocess.run([self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        parent = sysconfig.get_paths()["purelib"]
        Path(site, "_parent_environment.pth").write_text(f"import site; site.addsitedir({parent!r})\n")

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
        return subprocess.run([self.python, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)

    def pip_install(self, folder: Path) -> None:
        """``pip install FOLDER``: built from the folder, offline, without fetching build tools."""
        done = self.run("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", str(folder))
        assert done.returncode == 0, done.stderr


def _ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{done.args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_example_plugin_installs_trains_and_uninstalls(tmp_path):
    source = shutil.copytree(EXAMPLE, tmp_path / "corolla-example-plugin")  # building writes into the folder
    venv = VirtualEnv(tmp_path / "venv")
    venv.pip_install(source)
    listed = _ok(venv.run("-m", "corolla", "plugins", "--kind", "backbone")).stdout
    assert any(line.split()[:5] == ["backbone", "TinyConvNet", "example", "corolla-example-plugin", "0.1.0"]
               for line in listed.splitlines())
    _ok(venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(source / "tests")))

    data = make_list_dataset(tmp_path / "data", num_classes=6, images_per_class=4, image_size=40)
    csv = data.root / "train.csv"
    csv.write_text("path,label\n" + "".join(line.replace(" ", ",") + "\n" for line in data.train_list.read_text().splitlines()))
    paths = {
        "DataLoader.Train.dataset.image_root": data.root, "DataLoader.Train.dataset.csv_file": csv,
        "DataLoader.Eval.dataset.image_root": data.root, "DataLoader.Eval.dataset.cls_label_path": data.val_list,
        "Global.output_dir": tmp_path / "out", "Global.epochs": 1,
    }
    train = ["-m", "corolla", "train", "-c", str(source / "example.yaml"), *(a for k, v in paths.items() for a in ("-o", f"{k}={v}"))]
    _ok(venv.run(*train))
    assert (tmp_path / "out" / "TinyConvNet" / "epochs.csv").read_text().splitlines()[1].startswith("1,")
    assert "corolla-example-plugin" in (tmp_path / "out" / "TinyConvNet" / "manifest.json").read_text()

    _ok(venv.run("-m", "pip", "uninstall", "--yes", "corolla-example-plugin"))
    required = venv.run(*train, "--overwrite")
    assert required.returncode == 2
    assert ("Global.plugins.require: corolla-example-plugin is not installed. Install them with: "
            "pip install 'corolla-example-plugin>=0.1'") in required.stderr
    unknown = venv.run(*train, "--overwrite", "-o", "Global.plugins.require=[]")
    assert unknown.returncode == 2
    assert "Arch: unknown backbone 'TinyConvNet'." in unknown.stderr
    assert "Run 'corolla plugins' to list what is installed." in unknown.stderr


def test_new_plugin_scaffold_installs_passes_its_tests_and_trains(tmp_path, capsys):
    assert main(["new-plugin", "acme-vision", "--dir", str(tmp_path)]) == 0
    # the printed next step installs pytest with the package: its test extra
    assert f"next:  pip install -e '{tmp_path / 'acme-vision'}[test]'  &&  pytest" in capsys.readouterr().out
    assert 'test = ["pytest' in (tmp_path / "acme-vision" / "pyproject.toml").read_text()
    venv = VirtualEnv(tmp_path / "venv")
    venv.pip_install(tmp_path / "acme-vision")
    tested = _ok(venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "acme-vision" / "tests")))
    assert "7 passed" in tested.stdout
    make_list_dataset(tmp_path / "corolla_quickstart" / "data", num_classes=6, images_per_class=3, image_size=48)
    _ok(venv.run("-m", "corolla", "train", "-c", "acme-vision/example.yaml", "-o", "Global.epochs=1", cwd=tmp_path))
    log = tmp_path / "corolla_quickstart" / "acme-vision_output" / "AcmeVisionNet" / "epochs.log"
    assert log.read_text().startswith("epoch 1: {")


@pytest.mark.parametrize("argv, message", [
    (["new-plugin", "9lives"], "expected a name of letters"),
    (["new-plugin", "ok", "--kind", "backbone,optimizer"], "optimizer; expected some of backbone,transform"),
])
def test_new_plugin_refuses_bad_names_and_kinds(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_new_plugin_gives_only_the_kinds_asked_for(tmp_path):
    assert main(["new-plugin", "solo", "--kind", "transform", "--dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in (tmp_path / "solo" / "solo").iterdir()) == ["__init__.py", "transforms.py"]
    assert main(["new-plugin", "solo", "--dir", str(tmp_path)]) == 2  # never writes over a package
