"""A plain (non-editable) install finds its configs from any directory."""

import json
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a wheel and a venv

ROOT = Path(__file__).parents[1]


# pyproject's build requirement (setuptools>=69) with a bdist_wheel command, checked without the network.
CAN_BUILD_WHEELS = ("import importlib.util, setuptools; v = tuple(int(x) for x in setuptools.__version__.split('.')[:2]); "
                    "raise SystemExit(0 if v >= (70, 1) or (v >= (69, 0) and importlib.util.find_spec('wheel')) else 1)")


def wheel_builder() -> str:
    """This interpreter when its setuptools can build the wheel offline (--no-build-isolation), else the base
    interpreter's: a virtualenv made by `python -m venv` on Python 3.11 carries setuptools 65, which shadows a
    newer one of the base interpreter and has no bdist_wheel."""
    for python in dict.fromkeys([sys.executable, getattr(sys, "_base_executable", sys.executable)]):
        if subprocess.run([python, "-c", CAN_BUILD_WHEELS], capture_output=True).returncode == 0:
            return python
    pytest.skip("no interpreter here has setuptools>=70.1 (or >=69 with wheel) to build ganrun's wheel offline: "
                "pip install -U setuptools")


def make_venv_seeing_this_environment(venv: Path) -> Path:
    """A fresh venv that sees the packages of the interpreter running the tests (torch & co.), also when that
    interpreter is itself a venv: `python -m venv` starts from the base interpreter, so --system-site-packages
    alone would miss the outer venv's packages. A .pth file appends this environment's site-packages after the
    new venv's own, so the wheel installed there shadows any (editable) ganrun of the outer environment: .pth
    files inside appended folders are not processed, so the outer editable finder stays inactive."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "outer-environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def test_venv_sees_the_outer_environment(tmp_path):
    python = make_venv_seeing_this_environment(tmp_path / "venv")
    code = "import json, sys, torch; print(json.dumps([sys.prefix, torch.__file__, sys.path]))"
    prefix, torch_file, path = json.loads(subprocess.run([python, "-c", code], check=True, capture_output=True,
                                                         text=True).stdout)
    assert prefix == str(tmp_path / "venv")
    import torch
    assert torch_file == torch.__file__  # the very torch of the environment running the tests
    # every site-packages folder of this environment, the outer venv's included (which --system-site-packages
    # alone leaves out when the tests run from a venv)
    assert set(site.getsitepackages()) <= set(path)


def test_wheel_install_runs_from_an_empty_directory(tmp_path):
    wheels, venv, empty = tmp_path / "wheels", tmp_path / "venv", tmp_path / "empty"
    empty.mkdir()
    subprocess.run([wheel_builder(), "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, capture_output=True)
    python = make_venv_seeing_this_environment(venv)
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", *wheels.glob("*.whl")],
                   check=True, capture_output=True)

    where = subprocess.run([python, "-c", "import ganrun; print(ganrun.__file__)"], cwd=empty, check=True,
                           capture_output=True, text=True).stdout
    assert str(venv) in where
    for command in ([venv / "bin" / "ganrun"], [python, "-m", "ganrun"]):
        proc = subprocess.run([*command, "--cfg", "job", "loss=wgan_gp"], cwd=empty, capture_output=True,
                              text=True, check=True)
        assert "ganrun.losses.Wasserstein" in proc.stdout and "ganrun.data.sources.fashion_mnist" in proc.stdout
