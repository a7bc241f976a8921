"""The golden numbers and exact resume on CUDA (marker `gpu`: skipped where no GPU is present).

Every other test pins the CPU. On a GPU, cuDNN and cuBLAS reduce in other orders than the CPU kernels the golden
numbers were recorded with, so the golden check allows 1e-3 relative (1e-5 absolute for values near 0) with TF32
off; exact resume on one machine stays bit-exact (torch.equal) with trainer.deterministic=true.
"""

from __future__ import annotations

import json

import pytest
import torch
from helpers import straight_and_split
from test_golden import CASES, GOLDEN, measure
from test_resume_matrix import assert_same_state, final_state

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
ON_CUDA = ["trainer.device=cuda", "trainer.deterministic=true"]


@pytest.fixture(autouse=True)
def no_tf32(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


@pytest.mark.parametrize("case", CASES)
def test_golden_numbers_hold_on_cuda_within_the_stated_tolerance(tmp_path, case):
    expected = json.loads(GOLDEN.read_text())[case]
    measured = measure(tmp_path, [*CASES[case], *ON_CUDA])
    assert measured.keys() == expected.keys()
    for tag, values in expected.items():
        assert measured[tag] == pytest.approx(values, rel=1e-3, abs=1e-5), tag


@pytest.mark.parametrize("options", [[], ["loss=wgan_gp"], ["model.conditioning=projection", "ema.bn=averaged"]],
                         ids=["default", "wgan_gp", "projection_ema_averaged"])
def test_a_split_cuda_run_ends_exactly_where_a_straight_one_ends(tmp_path, data_root, options):
    straight, split = straight_and_split(tmp_path, data_root, *ON_CUDA, *options)
    assert_same_state(final_state(straight), final_state(split))
