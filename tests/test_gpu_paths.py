"""CUDA code paths a CPU can check (issue 20): RNG state of the training device only, the cuBLAS setting of
deterministic runs, the amp choice. torch.cuda is stood in for where its calls would need a GPU."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from ganrun import runtime
from ganrun.errors import ConfigError


@pytest.fixture
def fake_cuda_rng(monkeypatch):
    """torch.cuda's RNG calls recorded instead of made: {"get": [devices], "set": [(state, device)]}."""
    calls = {"get": [], "set": []}
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: calls["get"].append(device) or torch.tensor([7]))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: calls["set"].append((state, device)))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("saved every GPU's state"))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail("restored every GPU's state"))
    return calls


def test_only_the_training_devices_rng_state_is_saved_and_restored(fake_cuda_rng):
    device = torch.device("cuda", 1)
    state = runtime.rng_state(device)
    assert fake_cuda_rng["get"] == [device] and torch.equal(state["cuda"], torch.tensor([7]))
    runtime.set_rng_state(state, device)
    assert fake_cuda_rng["set"] == [(state["cuda"], device)]
    assert "cuda" not in runtime.rng_state(torch.device("cpu"))


def test_an_older_checkpoint_with_more_gpus_than_now_resumes_without_index_error(fake_cuda_rng, caplog):
    two_gpus = {"torch": torch.get_rng_state(), "cuda": [torch.tensor([1]), torch.tensor([2])]}
    runtime.set_rng_state(two_gpus, torch.device("cuda", 0))
    assert fake_cuda_rng["set"] == [(two_gpus["cuda"][0], torch.device("cuda", 0))]
    with caplog.at_level(logging.WARNING):
        runtime.set_rng_state({**two_gpus, "cuda": two_gpus["cuda"][:1]}, torch.device("cuda", 1))
    assert "no CUDA RNG state for cuda:1" in caplog.text


def test_deterministic_cuda_runs_set_the_cublas_workspace(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    try:
        runtime.configure_determinism(torch.device("cuda"), True)
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" and torch.are_deterministic_algorithms_enabled()
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own choice is kept
        runtime.configure_determinism(torch.device("cuda"), True)
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    finally:
        torch.use_deterministic_algorithms(False)


def test_amp_is_bfloat16_where_the_gpu_has_it_and_refused_where_it_does_not(monkeypatch):
    assert runtime.amp_dtype(torch.device("cuda"), False) is None
    assert runtime.amp_dtype(torch.device("cpu"), True) is None  # float32 on the CPU, logged
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    with pytest.raises(ConfigError, match="trainer.amp=true trains in bfloat16, which Tesla V100 lacks"):
        runtime.amp_dtype(torch.device("cuda"), True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert runtime.amp_dtype(torch.device("cuda"), True) is torch.bfloat16


def rank1_state():
    """A run state as rank 1 of a torchrun job sees it at a checkpoint step (only what `save` touches)."""
    from ganrun.models import mlp
    from ganrun.run_state import RunState

    G, D = mlp.Generator(z_dim=2, resolution=2, channels=1, hidden=[3]), torch.nn.Linear(4, 1)
    return RunState(G, D, None, None, [], None, None, None, torch.zeros(1, 2), {}, step=7)


def test_every_rank_stops_on_non_finite_weights_not_rank_0_alone(monkeypatch, tmp_path):
    from ganrun import distributed
    from ganrun.errors import TrainingDivergedError

    monkeypatch.setattr(distributed, "is_main", lambda: False)
    state = rank1_state()
    with torch.no_grad():
        state.D.weight[0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="discriminator's weights became non-finite by step 7"):
        state.save(tmp_path / "step.pt", tmp_path, keep=3)


def test_every_rank_raises_rank_0s_failed_checkpoint_write(monkeypatch, tmp_path):
    from ganrun import distributed
    from ganrun.errors import StorageError

    monkeypatch.setattr(distributed, "is_main", lambda: False)
    monkeypatch.setattr(distributed, "broadcast_object", lambda obj: StorageError("cannot write step.pt: disk full"))
    with pytest.raises(StorageError, match="disk full"):
        rank1_state().save(tmp_path / "step.pt", tmp_path, keep=3)
    assert not (tmp_path / "step.pt").exists()


def test_a_single_process_on_cuda_1_makes_it_the_current_device(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "GPU")
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert runtime.select_device("cuda:1") == torch.device("cuda", 1) and chosen == [torch.device("cuda", 1)]
    runtime.select_device("cuda")  # no index: the current device stays
    assert chosen == [torch.device("cuda", 1)]


def test_channels_last_runs_get_channels_last_batches(tmp_path):
    from helpers import write_mnist_like

    from ganrun.data import sources
    from ganrun.data.stream import BatchStream

    write_mnist_like(tmp_path / "FashionMNIST" / "raw", n=16)
    dataset = sources.fashion_mnist(str(tmp_path), download=False)
    plain = next(BatchStream(dataset, 28, 3, batch_size=4, seed=0, device="cpu"))[0]  # 3 channels: with 1, the
    batch = next(BatchStream(dataset, 28, 3, batch_size=4, seed=0, device="cpu",  # formats coincide
                             memory_format=torch.channels_last))[0]
    assert batch.is_contiguous(memory_format=torch.channels_last) and torch.equal(batch, plain)
    assert not plain.is_contiguous(memory_format=torch.channels_last)


def test_in_memory_auto_takes_at_most_a_quarter_of_the_gpus_free_memory(monkeypatch):
    from ganrun.data.stream import IN_MEMORY_LIMIT_BYTES, in_memory_limit

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * 1024**3, 80 * 1024**3))
    assert in_memory_limit(torch.device("cuda", 0)) == 512 * 1024**2
    assert in_memory_limit(torch.device("cpu")) == IN_MEMORY_LIMIT_BYTES == 4 * 1024**3


def test_the_fixed_classifiers_train_warn_only_in_deterministic_runs(monkeypatch):
    """AdaptiveAvgPool2d's CUDA backward has no deterministic kernel: trainer.deterministic=true on a GPU would
    otherwise die in the offline classifier's training."""
    from ganrun.metrics import classifier

    seen = []
    forward = classifier.SmallClassifier.forward
    monkeypatch.setattr(classifier.SmallClassifier, "forward", lambda self, x: seen.append(
        torch.is_deterministic_algorithms_warn_only_enabled()) or forward(self, x))
    images, labels = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8), torch.arange(8) % 2
    torch.use_deterministic_algorithms(True)
    try:
        classifier.train_classifier(images, labels, images, labels, 2, "cpu", batch_size=4)
        assert seen and all(seen)
        assert torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
