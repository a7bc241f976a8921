"""The README a new user reads: short, its set-up blocks run when pasted whole, its first commands are real, its
links lead somewhere, and its test command is the one CI runs."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]


def section(text: str, title: str) -> str:
    """The text of the `## title` section, up to the next `## ` heading."""
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_the_readme_is_short_and_keeps_its_sections():
    assert len(README.splitlines()) <= 350
    for title in ("Set up", "First run", "Config groups", "Outputs", "Resume", "Tests"):
        assert f"\n## {title}\n" in README, title


def test_the_readme_test_command_is_the_one_ci_runs():
    assert bash_blocks(section(README, "Tests"))[0].strip() == "python -m pytest -q"
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "python -m pytest -q"


def test_set_up_blocks_are_pasteable_one_torch_line_each():
    blocks = bash_blocks(section(README, "Set up"))
    torch_blocks = [b for b in blocks if re.search(r"pip install torch\b", b)]
    assert len(torch_blocks) >= 2 and all(len(b.strip().splitlines()) == 1 for b in torch_blocks)
    for block in blocks:
        assert not re.search(r"<[^>]*>", block), block  # no placeholder to fill in before pasting
        assert not re.search(r"(^|[;&|]\s*)sudo\b", block, flags=re.M), block  # sudo only when not root
    # the plain CPU line installs the very versions CI installs, so it works offline from the same local wheels
    ci_torch = re.search(r"(torch==\S+ torchvision==\S+)", (ROOT / ".ci" / "run").read_text()).group(1)
    assert f"pip install {ci_torch}" in [b.strip() for b in torch_blocks]


@pytest.mark.slow  # runs bash
@pytest.mark.parametrize("uid", ["0", "1000"])
def test_set_up_blocks_run_when_pasted_whole(tmp_path, uid):
    """Each set-up block, pasted into bash with errexit, against stand-ins for python, pip, apt-get, sudo and id
    that record their calls: every block runs to its end, and sudo is used exactly when not root."""
    shims, log = tmp_path / "shims", tmp_path / "calls.log"
    shims.mkdir()
    stand_ins = {
        "python": 'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && echo "VIRTUAL_ENV=$3" > "$3/bin/activate"; fi',
        "pip": "", "apt-get": "", "sudo": '"$@"', "id": f"echo {uid}",
    }
    for name, body in stand_ins.items():
        path = shims / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{body}\n')
        path.chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}:/usr/bin:/bin"}
    for block in bash_blocks(section(README, "Set up")):
        proc = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, block + proc.stderr
    calls = log.read_text().splitlines()
    assert "python -m venv .venv" in calls and "pip install -e .[test,sweep]" in calls
    assert ("sudo apt-get install -y dataset-fashion-mnist" in calls) == (uid != "0")
    assert "apt-get install -y dataset-fashion-mnist" in calls


def test_the_short_first_command_is_a_real_and_shorter_run():
    first_run = section(README, "First run")
    assert re.search(r"\d+ (to \d+ )?minutes", first_run)  # says how long the default takes on a CPU
    commands = [line for block in bash_blocks(first_run) for line in block.splitlines()
                if line.startswith("ganrun ") and "trainer.steps=" in line]
    assert commands, "no short first command"
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        default = compose("config")
        short = compose("config", overrides=commands[0].split()[1:])
    assert short.trainer.steps < default.trainer.steps


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors (lower case, punctuation dropped, spaces to hyphens), headings in code left out."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_lead_somewhere(doc):
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        path = (doc.parent / target) if target else doc
        assert path.exists(), f"{doc.name}: {link}"
        assert not anchor or anchor in anchors(path.read_text()), f"{doc.name}: {link}"
