"""The corolla command line: plugins, config, and staying fast by not importing paddle."""
from __future__ import annotations

import re

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import corolla
from corolla.cli.main import main


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "corolla", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=300,
    )


def test_help_and_plugins_do_not_import_paddle():
    probe = textwrap.dedent("""
        import sys, contextlib, io
        from corolla.cli.main import main
        for argv in (["--help"], ["plugins"]):
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    main(argv)
                except SystemExit:
                    pass
        print("paddle" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_plugins_lists_builtins_with_distribution_and_version():
    out = run_cli("plugins")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == ["KIND", "NAME", "PLUGIN", "DISTRIBUTION", "VERSION"]
    assert f"from {len(corolla.load_registry().plugins)} plugins" in out.stdout


def test_plugins_show_prints_parameters_defaults_and_docstring(fake_dist, capsys):
    fake_dist("tiny-models", {"tiny": '''
def TinyNet(class_num: int = 10, *, width: int = 4):
    """A tiny test network."""
    return None

def corolla_backbones():
    return {"TinyNet": TinyNet}
'''}, version="3.1")
    assert main(["plugins", "show", "TinyNet"]) == 0
    shown = capsys.readouterr().out
    for fragment in ("TinyNet  (backbone)", "tiny-models 3.1", "class_num = 10", "width = 4", "A tiny test network."):
        assert fragment in shown


def test_plugins_disable_flag(fake_dist, capsys):
    fake_dist("tiny-models", {"tiny": "def corolla_backbones():\n    return {'TinyNet': dict}\n"})
    assert main(["plugins", "-p", "no:tiny"]) == 0
    out = capsys.readouterr().out
    assert not re.search(r"\bTinyNet\s", out) and "disabled: tiny" in out


def test_unknown_component_in_show_is_a_clear_error_with_close_matches_in_any_case(capsys):
    assert main(["plugins", "show", "NoSuchThing"]) == 2
    assert "no component of any kind is called 'NoSuchThing'" in capsys.readouterr().err
    assert main(["plugins", "show", "celoss"]) == 2
    assert "no component of any kind is called 'celoss'. Close matches: CELoss (loss)" in capsys.readouterr().err


def test_config_prints_merged_validated_config(tmp_path, fake_dist, capsys):
    fake_dist("tiny-models", {"tiny": "def corolla_backbones():\n    def TinyNet(class_num=10):\n        return None\n    return {'TinyNet': TinyNet}\n"})
    path = tmp_path / "c.yaml"
    path.write_text("Global:\n  epochs: 2\nArch:\n  name: TinyNet\n  class_num: 5\n")
    assert main(["config", "-c", str(path), "-o", "Arch.class_num=7", "-o", "Global.epochs=9"]) == 0
    out = capsys.readouterr().out
    assert "class_num: 7" in out and "epochs: 9" in out and "print_batch_step: 10" in out
    assert main(["config", "-c", str(path), "-o", "+Arch.depth=3"]) == 2
    err = capsys.readouterr().err
    assert "Arch.depth: backbone 'TinyNet'" in err and "has no argument 'depth'" in err


def test_pip_installed_plugin_is_found_and_used_from_a_config(tmp_path):
    project = tmp_path / "corolla-tinynet"
    (project / "corolla_tinynet").mkdir(parents=True)
    (project / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=70.1"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "corolla-tinynet"
        version = "0.4.2"
        [project.entry-points."corolla.plugins"]
        tinynet = "corolla_tinynet"
    """))
    (project / "corolla_tinynet" / "__init__.py").write_text(textwrap.dedent('''
        import corolla

        def TinyNet(class_num=10, width=8):
            """A third-party backbone."""
            return {"class_num": class_num, "width": width}

        @corolla.hookimpl
        def corolla_backbones():
            return {"TinyNet": TinyNet}
    '''))
    target = tmp_path / "target"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(project)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    config = tmp_path / "c.yaml"
    config.write_text("Arch:\n  name: corolla-tinynet:TinyNet\n  class_num: 3\n")
    env = {"PYTHONPATH": str(target)}
    listed = run_cli("plugins", "--kind", "backbone", env=env)
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:5] == ["backbone", "TinyNet", "tinynet", "corolla-tinynet", "0.4.2"]
               for line in listed.stdout.splitlines())
    shown = run_cli("config", "-c", str(config), env=env)
    assert shown.returncode == 0, shown.stderr
    build = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            import corolla
            from corolla.config.specs import named_spec
            spec = named_spec(corolla.load_config({str(config)!r})["Arch"], "Arch")
            print(corolla.load_registry(strict=True).build("backbone", spec.name, spec.params, key_path="Arch"))
        """)],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=120,
    )
    assert build.stdout.strip() == "{'class_num': 3, 'width': 8}", build.stderr


@pytest.mark.parametrize("argv", [["plugins", "-p", "tiny"], ["config"]])
def test_bad_cli_usage_exits_with_usage_error(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_env_says_what_corolla_runs_on(capsys):
    import paddle

    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert f"paddle        {paddle.__version__} (" in out and "cpu threads" in out
    assert re.search(r"^optuna +\S.* +corolla search$", out, re.M)


def test_env_says_where_the_graph_cache_is_and_what_it_holds(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COROLLA_GRAPH_CACHE", str(tmp_path))
    for key in ("a" * 32, "b" * 32, ".c-staging"):
        (tmp_path / key).mkdir()
    assert main(["env"]) == 0
    assert f"graph cache   {tmp_path} (2 evaluation graphs; $COROLLA_GRAPH_CACHE moves it" in capsys.readouterr().out
    monkeypatch.setenv("COROLLA_GRAPH_CACHE", "off")
    assert main(["env"]) == 0
    assert "graph cache   off (COROLLA_GRAPH_CACHE=off)" in capsys.readouterr().out


def test_an_interrupted_search_says_that_the_same_command_resumes_it(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("corolla.cli.search.run", interrupted)
    assert main(["search", "-c", "search.yaml"]) == 130
    assert capsys.readouterr().err == ("corolla search: interrupted; run the same command again to resume the search "
                                       "(finished trials are not run again)\n")


def test_a_deprecated_name_is_warned_about_on_the_command_line(capsys, monkeypatch):
    monkeypatch.setattr(sys, "warnoptions", [])  # as a plain `corolla` run, whatever pytest was given
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("ignore", DeprecationWarning)  # Python's default outside __main__
        assert main(["plugins", "show", "GoogleNet"]) == 0
    assert "warning: backbone name 'GoogleNet' is deprecated; use 'GoogLeNet'." in capsys.readouterr().err
