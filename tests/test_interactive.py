"""Interactive commands: ganrun's own --help and --version, and no torch import on their paths."""

import os
import subprocess
import sys
from importlib import metadata

import pytest

import ganrun
from ganrun.cli import main


def run_main(monkeypatch, capsys, *args) -> str:
    monkeypatch.setattr(sys, "argv", ["ganrun", *args])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (None, 0)
    return capsys.readouterr().out


def test_help_is_ganruns_own_page(monkeypatch, capsys):
    out = run_main(monkeypatch, capsys, "--help")
    assert "powered by Hydra" not in out and out.startswith("ganrun: a config-driven runner")
    # every group with its options, from the config tree itself
    assert "loss: hinge, lsgan, minimax, ns, ragan, rahinge, ralsgan, wgan, wgan_gp" in out
    assert "dataset: cifar10, fashion_mnist, folder, grid25, mnist, ring8" in out
    assert "hydra/launcher" not in out  # Hydra's own groups stay on --hydra-help
    assert "ganrun-eval RUN_DIR" in out and "ganrun-sample RUN_DIR" in out  # companion commands
    assert "outputs/DATE/TIME/" in out and "== Examples ==" in out


def test_version_is_ganruns(monkeypatch, capsys):
    out = run_main(monkeypatch, capsys, "--version")
    assert out.startswith(f"ganrun {ganrun.__version__} (torch {metadata.version('torch')},")
    assert f"hydra-core {metadata.version('hydra-core')}" in out


COMMANDS = {
    "ganrun --help": ("ganrun.cli", ["--help"], {}),
    "ganrun --version": ("ganrun.cli", ["--version"], {}),
    "ganrun --cfg job": ("ganrun.cli", ["--cfg", "job", "loss=hinge"], {}),
    "ganrun --info": ("ganrun.cli", ["--info"], {}),
    "completion query": ("ganrun.cli", ["--shell-completion", "query=bash"], {"COMP_LINE": "ganrun loss="}),
    "ganrun-eval --help": ("ganrun.eval_cli", ["--help"], {}),
    "ganrun-sample --help": ("ganrun.sample_cli", ["--help"], {}),
}


@pytest.mark.slow  # one fresh interpreter per command: torch must not be in sys.modules afterwards
@pytest.mark.parametrize("name", COMMANDS)
def test_interactive_commands_do_not_import_torch(name, tmp_path):
    module, args, env = COMMANDS[name]
    code = (f"import sys; sys.argv = ['x', *{args!r}]\n"
            f"from {module} import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('TORCH_IMPORTED', 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})
    assert "TORCH_IMPORTED False" in proc.stdout, proc.stdout + proc.stderr
    # the command did its job
    expected = {"ganrun --help": "ganrun-eval", "ganrun --version": "ganrun 0.1", "ganrun --cfg job": "Hinge",
                "ganrun --info": "Config search path", "completion query": "loss=wgan_gp",
                "ganrun-eval --help": "--num-samples", "ganrun-sample --help": "--interpolate"}[name]
    assert expected in proc.stdout
