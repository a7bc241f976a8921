"""Interactive commands: ganrun's own --help and --version, and no torch import on their paths."""

import os
import subprocess
import sys
from importlib import metadata

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import ganrun
import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
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
    assert "loss: hinge, lsgan, minimax, ns, ragan, rahinge, ralsgan, rpgan, wgan, wgan_gp" in out
    assert "dataset: cifar10, fashion_mnist, folder, grid25, mnist, ring8" in out
    assert "hydra/launcher" not in out  # Hydra's own groups stay on --hydra-help
    assert "ganrun-eval RUN_DIR" in out and "ganrun-sample RUN_DIR" in out  # companion commands
    assert "outputs/DATE/TIME/" in out and "== Examples ==" in out


def help_settings(out: str) -> dict:
    """`key=value` pairs the help page states as defaults: its Defaults line and its Top-level keys section."""
    defaults = next(line for line in out.splitlines() if line.startswith("Defaults:"))
    keys = out.split("== Top-level keys", 1)[1].split("==", 2)[1]  # up to the next section
    return dict(token.split("=", 1) for token in (defaults + " " + keys).split() if "=" in token)


def test_help_states_todays_defaults_and_every_command(monkeypatch, capsys):
    out = run_main(monkeypatch, capsys, "--help")
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    choices = cfg.hydra.runtime.choices
    stated = help_settings(out)
    assert {"ema.enabled", "trainer.steps", "metrics.final_num_samples", "loss", "model"} <= set(stated)
    for key, value in stated.items():
        default = choices[key] if key in choices else OmegaConf.select(cfg, key)
        assert yaml.safe_load(value.split("|")[0]) == default, f"--help says {key}={value}, the config has {default}"
    commands = {e.name for e in metadata.distribution("ganrun").entry_points if e.group == "console_scripts"}
    assert len(commands) == 6 and all(f"\n  {name} " in out for name in commands - {"ganrun"}), commands


def option_help(help_text: str, option: str) -> str:
    """The options-section entry of `option` in an argparse help page (up to the next option)."""
    entry = help_text.split("\n  " + option, 1)[1]
    return entry.split("\n  -", 1)[0]


def test_eval_help_shows_its_sample_default(capsys):
    from ganrun import eval_cli

    with pytest.raises(SystemExit):
        eval_cli.parse_args(["--help"])
    default = eval_cli.parse_args(["run"]).num_samples
    assert default == 50000 and f"default: {default}" in option_help(capsys.readouterr().out, "--num-samples")


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
    "ganrun-translate --help": ("ganrun.translate_cli", ["--help"], {}),
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
                "ganrun-eval --help": "--num-samples", "ganrun-sample --help": "--interpolate",
                "ganrun-translate --help": "--degrade"}[name]
    assert expected in proc.stdout
