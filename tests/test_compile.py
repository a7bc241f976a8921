"""trainer.compile=true with input-gradient penalties (issue 20): the penalties differentiate D's eager forward,
since aot_autograd cannot differentiate a compiled graph twice; inductor on CPU, tiny networks."""

from __future__ import annotations

import pytest
from helpers import train_in_process

from ganrun.errors import ConfigError

TINY_TOY = ("dataset=ring8", "model=mlp", "trainer.device=cpu", "trainer.ckpt_every=2", "ema.enabled=false")


@pytest.mark.slow  # inductor compiles G, D and their backwards on CPU first
@pytest.mark.parametrize("penalty", [["loss=wgan_gp", "trainer.n_critic=1"], ["regularizer=r1"]],
                         ids=["wgan_gp", "r1"])
def test_compiled_networks_train_with_input_gradient_penalties_like_plain_ones(tmp_path, data_root, penalty):
    plain = train_in_process(tmp_path, data_root, *TINY_TOY, *penalty, run_dir=tmp_path / "plain")
    compiled = train_in_process(tmp_path, data_root, *TINY_TOY, *penalty, "trainer.compile=true",
                                run_dir=tmp_path / "compiled")
    tags = [t for t in plain.scalars if t.startswith(("loss/", "penalty/"))]
    assert any(t.startswith("penalty/") for t in tags)
    for tag in tags:
        assert compiled.scalars[tag] == pytest.approx(plain.scalars[tag], rel=1e-4, abs=1e-6), tag


def test_cuda_graph_compile_modes_are_refused_with_input_gradient_penalties(tmp_path, data_root):
    with pytest.raises(ConfigError, match="trainer.compile_mode=reduce-overhead replays CUDA graphs.*r1"):
        train_in_process(tmp_path, data_root, *TINY_TOY, "regularizer=r1", "trainer.compile=true",
                         "trainer.compile_mode=reduce-overhead")
