"""Golden numbers: a fixed seed and a few CPU steps must log these values, within the rounding of CPU kernels.

They pin every number the loop produces (losses, scores, penalties, gradient norms, lr, final weights) for a few
option combinations, so a refactor of the loop provably changes nothing, draw order of the RNG included.
The numbers were recorded on one x86-64 CPU; another one (AVX2 instead of AVX-512, another thread count, oneDNN
on or off) rounds its reductions differently, so values are compared with a relative tolerance (`RTOL`).
Regenerate (`python tests/test_golden.py`) only for a deliberate change of the numbers, and say so in the commit.
"""

from __future__ import annotations

import json
import math
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


# Relative tolerances, measured (max relative difference over the 6 cases, between the recording CPU (AVX-512) and
# a 2-core AVX2 Xeon, 1 vs 2 threads, oneDNN on vs off):
# - the first D step, before any optimizer update: pure functions of seed, data and initial networks, which only
#   kernel rounding changes: <= 2.4e-6 (a mean of mixed-sign outputs) -> 1e-5.
# - final weights (sums of |w| over every parameter): <= 4.9e-6 -> 1e-4.
# - every later value: an optimizer update (Adam divides by sqrt(v) + 1e-8, BatchNorm subtracts batch means)
#   amplifies rounding differences in near-zero gradient components; up to 1e-2 after 2 updates -> 5e-2.
# Every mutant of benchmarks/mutation_pass.py that changes a golden number changes one by more than these (docs/mutation.md).
RTOL = {"first D step": 1e-5, "weights": 1e-4, "after an update": 5e-2}


def tolerance(tag: str, step_index: int) -> float:
    if tag.startswith("weights/"):
        return RTOL["weights"]
    if step_index == 0 and not tag.endswith("G"):  # G's first step follows D's first update
        return RTOL["first D step"]
    return RTOL["after an update"]


def mismatches(measured: dict, expected: dict) -> list[str]:
    """Every value off by more than its tolerance (and missing or extra tags, and a changed number of steps)."""
    if measured.keys() != expected.keys():
        return [f"tags differ: {sorted(measured.keys() ^ expected.keys())}"]
    wrong = []
    for tag, want in expected.items():
        got, want = (measured[tag], want) if isinstance(want, list) else ([measured[tag]], [want])
        if len(got) != len(want):
            wrong.append(f"{tag}: {len(got)} values, expected {len(want)}")
        wrong += [f"{tag}[{i}]: {g!r} vs {w!r} (rtol {tolerance(tag, i):g})"
                  for i, (g, w) in enumerate(zip(got, want)) if not math.isclose(g, w, rel_tol=tolerance(tag, i))]
    return wrong


def test_the_comparison_catches_a_change_beyond_rounding_and_absorbs_rounding():
    expected = {"loss/D": [1.0, 2.0], "loss/G": [1.0, 2.0], "weights/G": 100.0}
    assert not mismatches({"loss/D": [1.0 + 2e-6, 2.01], "loss/G": [1.01, 2.0], "weights/G": 100.001}, expected)
    assert mismatches({"loss/D": [1.0 + 2e-5, 2.0], "loss/G": [1.0, 2.0], "weights/G": 100.0}, expected)
    assert mismatches({"loss/D": [1.0, 2.0], "loss/G": [1.0, 2.0], "weights/G": 100.02}, expected)
    assert mismatches({"loss/D": [1.0, 2.0], "loss/G": [1.0, 2.2], "weights/G": 100.0}, expected)
    assert mismatches({"loss/D": [1.0, 2.0], "loss/G": [1.0], "weights/G": 100.0}, expected)
    assert mismatches({"loss/D": [1.0, 2.0], "weights/G": 100.0}, expected)


@pytest.mark.parametrize("case", CASES)
def test_a_few_steps_log_the_golden_numbers(tmp_path, case):
    expected = json.loads(GOLDEN.read_text())[case]
    assert mismatches(measure(tmp_path, CASES[case]), expected) == []


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
