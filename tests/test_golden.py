"""Golden numbers: a fixed seed and a few CPU steps must log exactly these values.

They pin every number the loop produces (losses, scores, penalties, gradient norms, lr, final weights) for a few
option combinations, so a refactor of the loop provably changes nothing, draw order of the RNG included.
Regenerate (`python tests/test_golden.py`) only for a deliberate change of the numbers, and say so in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import events, train_in_process, write_mnist_like

GOLDEN = Path(__file__).with_name("golden_numbers.json")
LOGGED = ("loss", "scores", "penalty", "grad_norm", "lr")
CASES = {
    "default": [],
    "default_fresh_fakes": ["trainer.reuse_fakes=false"],  # the G step draws its own fakes
    "conditional_relativistic": ["model.conditioning=acgan", "loss=ragan", "regularizer=r1", "regularizer.r1.every=2",
                                 "augment=diffaugment", "ema.enabled=true", "ema.bn_batches=1", "scheduler=linear",
                                 "trainer.n_critic=2"],
    "projection_hinge_noise": ["model.conditioning=projection", "loss=hinge", "augment=instance_noise",
                               "regularizer=[l2,bcr]"],
    "wgan_gp_toy": ["dataset=ring8", "model=mlp", "loss=wgan_gp", "trainer.n_critic=2"],
    "wgan_clip": ["loss=wgan", "optimizer=rmsprop", "trainer.n_critic=3"],
}


THREADS = 2  # CPU reductions split work by thread: the numbers were recorded with 2 intra-op threads


@pytest.fixture(autouse=True)
def recorded_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(threads)


def _abs_sum(state: dict) -> float:
    return float(sum(v.double().abs().sum() for v in state.values() if torch.is_tensor(v) and v.is_floating_point()))


def measure(tmp_path: Path, overrides: list[str]) -> dict:
    """Every logged scalar of a 3-step run (one value per step) and checksums of the final weights."""
    data_root = write_mnist_like(tmp_path / "data" / "FashionMNIST" / "raw").parent.parent
    train_in_process(tmp_path, data_root, *overrides, steps=3)
    acc = events(tmp_path / "run")
    values = {tag: [e.value for e in acc.Scalars(tag)]
              for tag in sorted(acc.Tags()["scalars"]) if tag.split("/")[0] in LOGGED}
    state = torch.load(sorted((tmp_path / "run" / "checkpoints").glob("step_*.pt"))[-1], weights_only=True)
    values["weights/G"], values["weights/D"] = _abs_sum(state["generator"]), _abs_sum(state["discriminator"])
    if state.get("ema") is not None:
        values["weights/G_ema"] = _abs_sum(state["ema"])
    return values


@pytest.mark.parametrize("case", CASES)
def test_a_few_steps_log_exactly_the_golden_numbers(tmp_path, case):
    expected = json.loads(GOLDEN.read_text())[case]
    assert measure(tmp_path, CASES[case]) == expected


if __name__ == "__main__":  # regenerate: only for a deliberate change of the numbers
    import tempfile

    from hydra.core.global_hydra import GlobalHydra

    golden = {}
    torch.set_num_threads(THREADS)
    for name, overrides in CASES.items():
        GlobalHydra.instance().clear()
        with tempfile.TemporaryDirectory() as tmp:
            golden[name] = measure(Path(tmp), overrides)
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN}", file=sys.stderr)
