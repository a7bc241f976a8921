"""A plain (non-editable) install finds its configs from any directory."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a wheel and a venv

ROOT = Path(__file__).parents[1]


def test_wheel_install_runs_from_an_empty_directory(tmp_path):
    wheels, venv, empty = tmp_path / "wheels", tmp_path / "venv", tmp_path / "empty"
    empty.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, capture_output=True)
    # System site packages provide torch & co.; the venv's own ganrun (the wheel) shadows any editable one.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", *wheels.glob("*.whl")],
                   check=True, capture_output=True)

    where = subprocess.run([python, "-c", "import ganrun; print(ganrun.__file__)"], cwd=empty, check=True,
                           capture_output=True, text=True).stdout
    assert str(venv) in where
    for command in ([venv / "bin" / "ganrun"], [python, "-m", "ganrun"]):
        proc = subprocess.run([*command, "--cfg", "job", "loss=wgan_gp"], cwd=empty, capture_output=True,
                              text=True, check=True)
        assert "ganrun.losses.Wasserstein" in proc.stdout and "ganrun.datasets.fashion_mnist" in proc.stdout
