"""Everything a run is at one moment, built from the config; its state dict is the checkpoint.

`RunState` holds the networks, optimizers, schedules, EMA, data stream, objective (with any stateful terms),
step, best FID, fixed sampling noise, log window and failure-mode detector. `state_dict()` plus the RNG states of every rank is exactly what a
checkpoint stores, and `load_state_dict` puts a run back where the checkpoint left it, so resume is exact.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch

import ganrun
from ganrun import checkpoint, distributed, schedules
from ganrun.augment import Pipeline
from ganrun.config import build, build_optimizer, reuse_fakes
from ganrun.data import DatasetInfo, make_stream
from ganrun.diagnostics import TrainingDiagnostics
from ganrun.ema import GeneratorEMA
from ganrun.errors import ConfigError, StorageError, TrainingDivergedError
from ganrun.models.conditioning import conditioning_terms
from ganrun.regularizers import check_data, combine, refuse_cuda_graphs_with_penalties, warn_penalty_on_batchnorm
from ganrun.runtime import amp_dtype, rng_state, set_rng_state
from ganrun.tasks import Generate
from ganrun.window import LogWindow

log = logging.getLogger(__name__)


@dataclass
class RunState:
    G: torch.nn.Module
    D: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    schedules: schedules.Schedules  # every scheduled scalar (the lr group's too): values from step and images
    ema: GeneratorEMA | None
    stream: object  # BatchStream or a toy stream: next() -> (batch, labels), state_dict()
    objective: GANObjective
    fixed_noise: torch.Tensor  # the noise of the sample grids, the same for the whole run
    config: dict  # the resolved config as a plain dict (what the checkpoint stores)
    overrides: list[str] = field(default_factory=list)
    run_id: str = ""  # which run a checkpoint belongs to (random, the same on every rank)
    data_fingerprint: str = ""  # content hash of the training data: a resume on changed data is refused
    step: int = 0  # generator steps done
    best: dict = field(default_factory=lambda: {"FID": None, "step": None})
    window: LogWindow = field(default_factory=LogWindow)  # logged values summed since the last log step
    last_scalars: dict = field(default_factory=dict)  # the last logged means (metrics.json of a finished run)
    diagnostics: TrainingDiagnostics = field(default_factory=TrainingDiagnostics)  # reads the logged curves
    forced_changes: list = field(default_factory=list)  # "step N: key: old -> new" of each resume_force=true
    images: int = 0  # real images shown to D so far, over all ranks (the unit of kimg)
    images_per_step: int = 1  # trainer.batch_size * n_critic * ranks

    @property
    def kimg(self) -> float:
        return self.images / 1000
    task: object = field(default_factory=Generate)  # what the run makes (ganrun.tasks): noise-to-image or pairs

    def record_forced_changes(self, changes: list[str] | None) -> None:
        """Keep, in the run's checkpoints, what a resume with resume_force=true changed and at which step."""
        self.forced_changes += [f"step {self.step}: {change}" for change in changes or ()]

    def advance(self) -> None:
        """After G's optimizer step: the step counter moves on, the EMA follows G (on the half-life this step ran
        with), the images shown to D are counted, and every schedule takes its value for the next step."""
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.G, self.step, self.images)
        self.images += self.images_per_step
        self.schedules.apply(self.step, self.kimg)

    def improves_best(self, fid: float | None) -> bool:
        """Record `fid` as the best so far when it is lower than every earlier one."""
        if fid is None or (self.best["FID"] is not None and fid >= self.best["FID"]):
            return False
        self.best = {"FID": fid, "step": self.step}
        return True

    def state_dict(self, rng_per_rank: list) -> dict:
        return {
            "format": checkpoint.CHECKPOINT_FORMAT, "ganrun_version": ganrun.__version__, "torch_version": str(torch.__version__),
            "run_id": self.run_id, "data_fingerprint": self.data_fingerprint, "step": self.step, "config": self.config, "overrides": list(self.overrides),
            "generator": self.G.state_dict(), "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "images": self.images,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "objective": self.objective.state_dict(),
            "data": self.stream.state_dict(), "rng": rng_per_rank, "fixed_noise": self.fixed_noise.cpu(),
            "best": self.best, "log_window": self.window.state_dict(), "last_scalars": self.last_scalars,
            "diagnostics": self.diagnostics.state_dict(), "forced_changes": list(self.forced_changes),
        }

    def load_state_dict(self, state: dict, rank: int = 0) -> None:
        for name, model in (("generator", self.G), ("discriminator", self.D)):
            try:
                model.load_state_dict(state[name])
            except RuntimeError as exc:  # another architecture (resume_force=true after a width change)
                raise ConfigError(f"the checkpoint's {name} does not fit the configured network "
                                  f"({str(exc).splitlines()[0]} ...): a run cannot continue into another "
                                  "architecture, even with resume_force=true; start a new run.") from None
        for name, optimizer in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
            restore_optimizer(optimizer, state.get(name), name)
        self.stream.load_state_dict(state["data"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.objective.load_state_dict(state.get("objective", {}))
        set_rng_state(state["rng"][rank], self.fixed_noise.device)
        device = self.fixed_noise.device
        self.fixed_noise, self.step = state["fixed_noise"].to(device), int(state["step"])
        self.images = int(state.get("images", self.step * self.images_per_step))  # older checkpoints: by steps
        self.schedules.apply(self.step, self.kimg)  # after the optimizers: their saved lr and betas are stale
        self.best = state.get("best", self.best)
        self.run_id = state.get("run_id", self.run_id)
        if "log_window" in state:
            self.window.load_state_dict(state["log_window"], device)
        self.last_scalars = state.get("last_scalars", {})
        self.forced_changes = list(state.get("forced_changes", []))
        if "diagnostics" in state:  # older checkpoints: the detector starts afresh from the resume point
            try:
                self.diagnostics.load_state_dict(state["diagnostics"])
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                log.warning("The checkpoint's failure-mode detector state is unreadable (%s: %s); the detector "
                            "starts afresh from step %d.", type(exc).__name__, exc, self.step)

    def save(self, path: Path, run_dir: Path, keep: int) -> None:
        """Write the checkpoint atomically (rank 0) and keep the newest `keep` step checkpoints. Refuses to save
        non-finite weights, so the last checkpoint on disk is always a good one. Under torchrun every rank raises
        what stops the run (the weights are the same on all; a failed write is rank 0's, shared), instead of the
        others waiting for rank 0 until the timeout."""
        distributed.sync_module(self.G)  # BatchNorm statistics differ per rank: keep rank 0's everywhere
        distributed.sync_module(self.D)
        rng_per_rank = distributed.gather_objects(rng_state(self.fixed_noise.device))
        for name, model in (("generator", self.G), ("discriminator", self.D)):
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise TrainingDivergedError(
                    f"the {name}'s weights became non-finite by step {self.step}. Training stopped; "
                    + checkpoint.last_good_note(run_dir)
                )
        error = None
        if distributed.is_main():
            try:
                checkpoint.save_atomic(self.state_dict(rng_per_rank), path)
                checkpoint.prune(run_dir, keep)
            except StorageError as exc:
                error = exc
        error = distributed.broadcast_object(error)
        if error is not None:
            raise error


LAMBDA_LR_KEYS = {"initial_lr"}  # what torch's LambdaLR added to the param groups of checkpoints before schedules.py


def restore_optimizer(optimizer: torch.optim.Optimizer, saved: dict | None, name: str) -> None:
    """Load a saved optimizer state, unless it belongs to another kind of optimizer (resume_force=true after
    optimizer=...): its per-parameter state would crash the first step, so the optimizer starts fresh."""
    same_kind = saved is not None and all(set(saved_group) - LAMBDA_LR_KEYS == set(group) - LAMBDA_LR_KEYS for
                                          saved_group, group in zip(saved["param_groups"],
                                                                    optimizer.state_dict()["param_groups"]))
    own = [{k: v for k, v in group.items() if k not in ("params", "lr")} for group in optimizer.param_groups]
    try:
        if same_kind:
            optimizer.load_state_dict(saved)
            for group, hyper in zip(optimizer.param_groups, own):  # the config's betas, initial lr...: never the
                group.update(hyper)                                # file's (a forced change, a crafted state)
            return
    except ValueError as exc:  # another number or size of parameters
        log.warning("Optimizer state %s not restored (%s): starting it fresh.", name, exc)
        return
    log.warning("Optimizer state %s not restored: the checkpoint's is of another optimizer; starting it fresh.", name)


def build_run_state(cfg, config: dict, info: DatasetInfo, source, device: torch.device,
                    overrides: list[str]) -> RunState:
    """config -> objects, in the order that fixes the RNG draws: networks, loss and terms, optimizers,
    schedulers, augmentation, EMA, data stream, fixed noise. `config` is `cfg` resolved to a plain dict."""
    trainer, z_dim = cfg.trainer, cfg.model.z_dim
    rank, world = distributed.rank(), distributed.world_size()
    task = build(cfg.task) if cfg.get("task") is not None else Generate()  # checkpoints from before tasks: generate
    torch.manual_seed(cfg.seed)
    G = build(cfg.model.generator).to(device)
    D = build(cfg.model.discriminator).to(device)
    task.check_shapes(G, D, info, z_dim, device)
    if trainer.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    if world > 1:
        G, D = distributed.prepare_models(G, D, trainer.sync_bn, device)
        torch.manual_seed(cfg.seed + 7919 * rank)  # each rank draws its own noise
    loss = build(cfg.loss)
    regularizers = combine(loss.regularizers, build(cfg.regularizer) or {})  # one of each kind
    check_data(regularizers, info.sample_shape)
    warn_penalty_on_batchnorm(regularizers, D)
    refuse_cuda_graphs_with_penalties(regularizers, trainer)
    terms = {**regularizers, **conditioning_terms(D, cfg.model.get("acgan_weight", 1.0))}
    opt_g = build_optimizer(cfg.optimizer.g, G.parameters(), "optimizer.g")
    opt_d = build_optimizer(cfg.optimizer.d, D.parameters(), "optimizer.d")
    lr_schedules = [build(cfg.scheduler)(opt) for opt in (opt_g, opt_d)]
    augment = Pipeline(build(cfg.augment))
    images_per_step = trainer.batch_size * trainer.n_critic * world
    ema = GeneratorEMA.from_config(G, cfg, images_per_step) if cfg.ema.enabled else None
    objects = {"optimizer.g": opt_g, "optimizer.d": opt_d, "loss": loss, "regularizers": regularizers,
               "augment": augment.named, "ema": ema}
    budget_kimg = trainer.kimg if trainer.get("kimg") is not None else trainer.steps * images_per_step / 1000
    scheduled = schedules.build_schedules(cfg, objects, lr_schedules, trainer.steps, budget_kimg)
    scheduled.apply(0, 0.0)
    augment.check(info.sample_shape)
    stream = task.pairs(make_stream(source, info, cfg, device, rank, world))
    num_fixed = max(trainer.num_samples, 2000) if info.points else trainer.num_samples  # scatter plots need more
    fixed_noise = torch.randn(num_fixed, z_dim, generator=torch.Generator().manual_seed(cfg.seed)).to(device)
    dtype = amp_dtype(device, trainer.amp)
    autocast = torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
    objective = task.objective(G, D, loss, terms, augment, z_dim, autocast, reuse_fakes(trainer), stream)
    if trainer.compile:  # in place: parameter names (and so checkpoints) stay those of the plain modules
        G.compile(mode=trainer.compile_mode)
        D.compile(mode=trainer.compile_mode)
    run_id = distributed.broadcast_object(uuid.uuid4().hex)  # one id for all ranks of the run
    return RunState(G, D, opt_g, opt_d, scheduled, ema, stream, objective, fixed_noise, config, list(overrides),
                    run_id, info.fingerprint,
                    diagnostics=TrainingDiagnostics.for_loss(loss, num_classes=info.num_classes),
                    images_per_step=images_per_step, task=task)
