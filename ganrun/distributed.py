"""Data-parallel training over torch.distributed, for `torchrun --nproc_per_node=N -m ganrun ...`.

Every rank holds full copies of G and D, trains on its own shard of each global batch, and averages the
gradients of each backward pass with one all-reduce per network before the optimizer step (as
StyleGAN2-ADA does), which keeps ranks bit-identical. The DistributedDataParallel wrapper is not used: its
reducer fires once per backward, while a D step here may run several D forwards (real, fakes, penalty points)
and lazy penalties change the graph from step to step; averaging by hand after each backward is simpler and
exact. Rank 0 alone logs and writes checkpoints. Outside torchrun, every helper is a no-op, so single-process
runs carry no distributed overhead.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import logging
import os

import torch
import torch.distributed as dist

from ganrun.errors import ConfigError

log = logging.getLogger(__name__)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def enabled() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if enabled() else 0


def world_size() -> int:
    return dist.get_world_size() if enabled() else 1


def is_main() -> bool:
    return rank() == 0


def backend() -> str:
    """gloo for CPU tensors always (a trainer.device=cpu run on a GPU host), NCCL for CUDA ones when present."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def init_from_env() -> None:
    """Join the process group torchrun describes in the environment; leave it when the process exits."""
    if enabled() or not launched_by_torchrun():
        return
    device_id = None
    if torch.cuda.is_available():
        device_id = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device_id)
    dist.init_process_group(backend(), timeout=datetime.timedelta(minutes=30), device_id=device_id)
    atexit.register(lambda: dist.destroy_process_group() if enabled() else None)


def device_for_rank(device: torch.device) -> torch.device:
    if enabled() and device.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _comm_device() -> torch.device:
    """NCCL moves CUDA tensors only; gloo CPU ones."""
    if dist.get_backend() == "nccl":  # a group set up elsewhere with NCCL alone
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@contextlib.contextmanager
def main_rank_first():
    """Rank 0 runs the block first (e.g. filling a cache), the others after it, reading what it wrote."""
    if enabled() and not is_main():
        dist.barrier()
    yield
    if enabled() and is_main():
        dist.barrier()


class NullWriter:
    """Stands in for the SummaryWriter on ranks other than 0: they log nothing."""

    file_writer = property(lambda self: self)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def broadcast_object(obj):
    if not enabled():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_objects(obj) -> list:
    if not enabled():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def prepare_models(G, D, sync_bn: bool, device: torch.device):
    """Optional SyncBatchNorm, then rank 0's initial weights on every rank."""
    if sync_bn:
        if device.type != "cuda":
            raise ConfigError("trainer.sync_bn=true needs CUDA (torch's SyncBatchNorm runs on GPUs only).")
        G, D = (torch.nn.SyncBatchNorm.convert_sync_batchnorm(m) for m in (G, D))
    sync_module(G)
    sync_module(D)
    return G, D


def average_gradients(module: torch.nn.Module) -> None:
    """Mean of each parameter's gradient over ranks, in one flat all-reduce."""
    if not enabled():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def sync_module(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers (e.g. BatchNorm running statistics) on every rank."""
    if not enabled():
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor, src=0)


def stop_requested(flag: bool, step: int, every: int) -> bool:
    """Whether to stop after `step`, given this rank's `flag` (a signal arrived). One process answers at once;
    under torchrun the ranks agree only once every `every` steps (an all-reduce the host waits for), so the step
    between stays free of host syncs and a signal takes effect at the next such step."""
    if not enabled():
        return flag
    return any_rank(flag) if step % every == 0 else False


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on one (stop decisions must be taken together)."""
    if not enabled():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=_comm_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if not enabled() or not values:
        return values
    names = sorted(values)
    stacked = torch.stack([values[n].detach().float().reshape(()) for n in names])
    dist.all_reduce(stacked)
    stacked /= world_size()
    return dict(zip(names, stacked.unbind()))


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equally sized per-rank tensors along dim 0, on every rank."""
    if not enabled():
        return tensor
    local = tensor.contiguous().to(_comm_device())
    parts = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(parts, local)
    return torch.cat(parts).to(tensor.device)


def weights_digest(module: torch.nn.Module) -> str:
    import hashlib

    digest = hashlib.sha1()
    for tensor in module.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def log_final_digests(G: torch.nn.Module, D: torch.nn.Module) -> None:
    """Under torchrun, each rank logs a digest of its final weights and whether all ranks agree."""
    if world_size() <= 1:
        return
    digests = gather_objects((weights_digest(G), weights_digest(D)))
    log.info("rank %d/%d final weights: G %s D %s (%s on all ranks)", rank(), world_size(), *digests[rank()],
             "identical" if len(set(digests)) == 1 else "DIFFERENT")
