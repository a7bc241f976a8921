"""The training step makes no host-device synchronisation between log steps (issue 20): counted on CPU through
the calls that sync on CUDA (ganrun.host_syncs), during plain steps of the default and a conditional run."""

from __future__ import annotations

import pytest
import torch
from helpers import train_in_process

from ganrun.host_syncs import HostSyncCounter, per_training_step


def test_the_counter_sees_each_kind_of_syncing_call():
    x = torch.arange(3.0)
    with HostSyncCounter() as syncs:
        x.sum().item()
        bool(x[0] > 0)
        x.cpu()
        x.tolist()
        torch.nonzero(x)
        x.to("cpu")
        x.to("cpu", non_blocking=True)  # from pinned memory on CUDA: no wait
        x.float()
    assert [c.call for c in syncs.calls] == ["item", "__bool__", "cpu", "tolist", "nonzero", "to(device)"]
    assert all(c.where.endswith(".py:" + c.where.rsplit(":", 1)[1]) for c in syncs.calls)
    assert torch.Tensor.item is not None and "item" not in torch.Tensor.__dict__  # restored


def syncs_per_step(tmp_path, data_root, *overrides, steps=4) -> dict:
    """{step: [syncing calls]} of a run whose only log/checkpoint step is the last (see per_training_step)."""
    with per_training_step() as counter:
        train_in_process(tmp_path, data_root, *overrides, f"trainer.log_every={steps}", "trainer.sample_every=1000",
                         "trainer.ckpt_every=1000", "trainer.device=cpu", steps=steps)
    return {step: [f"{c.call} at {c.where}" for c in counter.at(step)] for step in range(1, steps + 1)}


@pytest.mark.parametrize("overrides", [[], ["model.conditioning=projection", "trainer.reuse_fakes=false"],
                                       ["loss=rpgan", "regularizer=[r1r2,lecam]", "augment=diffaugment"]],
                         ids=["default", "projection_fresh_fakes", "rpgan_r1r2_lecam"])
def test_plain_steps_make_no_host_sync(tmp_path, data_root, overrides):
    per_step = syncs_per_step(tmp_path, data_root, *overrides)
    assert {step: calls for step, calls in per_step.items() if step < 4 and calls} == {}


def test_ranks_agree_on_stopping_only_every_n_steps(monkeypatch):
    import torch.distributed as dist

    from ganrun import distributed

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        with HostSyncCounter() as syncs:
            assert distributed.stop_requested(True, step=3, every=50) is False  # not a step where ranks agree
            plain = list(syncs.calls)
            assert distributed.stop_requested(True, step=50, every=50) is True
        assert plain == [] and [c.call for c in syncs.calls] == ["item"]
    finally:
        dist.destroy_process_group()


def test_the_process_group_is_gloo_for_cpu_tensors_even_on_a_gpu_host(monkeypatch):
    from ganrun import distributed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert distributed.backend() == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert distributed.backend() == "cpu:gloo,cuda:nccl"  # trainer.device=cpu under torchrun on a GPU host
