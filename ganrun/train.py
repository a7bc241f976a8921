"""The training loop, top to bottom: config -> run state -> loop (D steps, G step, advance, report, checkpoint).

The step maths live in the objective (ganrun/objective.py), everything a run is in the run state
(ganrun/run_state.py, whose state dict is the checkpoint), and everything a run tells the user in the reporter
(ganrun/reporter.py). This file only joins them, so what happens in a step can be read here in one place.
"""

from __future__ import annotations

import logging
import shlex
import signal
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ganrun import checkpoint, distributed, resume, schedules
from ganrun.data import load_dataset
from ganrun.errors import TrainingInterrupted
from ganrun.sweep.hparams import group_choices
from ganrun.metrics import report
from ganrun.objective import frozen
from ganrun.reporter import Reporter, TrainResult
from ganrun.run_state import RunState, build_run_state
from ganrun.rundir import (claim_run_dir, refuse_another_runs_dir, refuse_foreign_checkpoint, refuse_links,
                           resume_command)
from ganrun.runtime import configure_determinism, interrupt_on_signals, isolated_rng, select_device, stop_on_signals
from ganrun.validate import validate

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path, overrides: list[str] = ()) -> TrainResult:
    """Train the experiment `cfg` in `run_dir` (resuming when `cfg.resume` is set); see `TrainResult`. `overrides`
    are the command line's: on resume they say which keys of the checkpoint's experiment the user changes."""
    run_dir = Path(run_dir)
    refuse_links(run_dir)
    resumed = forced = None
    if not cfg.resume:
        schedules.apply_kimg_budget(cfg, resume.given_keys(overrides), distributed.world_size())
        validate(cfg)  # bad values are refused here, naming the key, before anything is built
        refuse_another_runs_dir(run_dir)
    else:
        resumed, resumed_from = checkpoint.load_newest(cfg.resume)
        cfg, forced = resume.resumed_config(resumed["config"], cfg, overrides, str(resumed_from))
        schedules.apply_kimg_budget(cfg, resume.given_keys(overrides), distributed.world_size())
        refuse_foreign_checkpoint(resumed, resumed_from, run_dir)
        overrides = [*resumed.get("overrides", []), *overrides]  # what the run was started with, for HParams
        validate(cfg)  # the checkpoint's values too, as if they had been typed
    overrides = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~").startswith(("resume", "hydra"))]
    source, info = load_dataset(cfg.dataset, cfg.metrics.cache_dir)  # also fixes up the dataset config
    config = OmegaConf.to_container(cfg, resolve=True)
    if resumed is not None:
        resume.refuse_changed_data(resumed.get("data_fingerprint"), info.fingerprint, cfg.resume, cfg.resume_force)

    device = distributed.device_for_rank(select_device(cfg.trainer.device))
    configure_determinism(device, cfg.trainer.deterministic)
    state = build_run_state(cfg, config, info, source, device, overrides)
    log.info(info.describe())
    if distributed.world_size() > 1:
        log.info("Distributed: %d ranks, batch %d per rank = %d effective batch size", distributed.world_size(),
                 cfg.trainer.batch_size, cfg.trainer.batch_size * distributed.world_size())
    evaluator = None
    if (cfg.metrics.every > 0 or cfg.metrics.final_num_samples > 0) and getattr(state.task, "uses_evaluator", True):
        with distributed.main_rank_first(), isolated_rng(device):  # rank 0 trains/caches the classifier
            evaluator = report.make_evaluator(cfg.metrics, cfg.dataset, device, cfg.trainer.num_workers)
    if resumed is not None:
        state.load_state_dict(resumed, distributed.rank())
        state.record_forced_changes(forced)
        log.info("Resumed from %s at step %d", resumed_from, state.step)
    if distributed.is_main():
        claim_run_dir(run_dir, state.run_id)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)

    loss_name = group_choices(overrides).get("loss", type(state.objective.loss).__name__)
    log.info("Training %s/%s with loss=%s for %d steps (n_critic=%d, batch %d) in %s", cfg.model.name, info.name,
             loss_name, cfg.trainer.steps, cfg.trainer.n_critic, cfg.trainer.batch_size, run_dir)
    reporter = Reporter(cfg, run_dir, state, info, source, evaluator, resumed=resumed is not None)
    try:
        train_steps(state, reporter, cfg.trainer, run_dir)
        with interrupt_on_signals(f"stopped during the final evaluation; the checkpoint at step {state.step} is "
                                  f"saved. Evaluate it with: ganrun-eval {shlex.quote(str(run_dir))}"):
            result = reporter.finish(overrides)
    finally:
        reporter.close()
    log.info("Finished %d steps; checkpoints in %s", state.step, run_dir / checkpoint.CHECKPOINT_DIR)
    distributed.log_final_digests(state.G, state.D)
    return result


def train_steps(state: RunState, reporter: Reporter, trainer, run_dir: Path) -> None:
    """The loop: from `state.step` to `trainer.steps`, checkpointing as configured and when a signal arrives."""
    objective, n_critic = state.objective, trainer.n_critic
    g_batch_size = trainer.g_batch_size or trainer.batch_size
    if state.step >= trainer.steps:
        log.info("The checkpoint is at step %d >= trainer.steps=%d: nothing to train (raise trainer.steps).",
                 state.step, trainer.steps)
    with stop_on_signals() as signals:
        while state.step < trainer.steps:
            # Discriminator: n_critic steps, each on a fresh real batch.
            for i in range(n_critic):
                real, labels = next(state.stream)
                d_step = objective.d_loss(real, labels, state.step, d_step=state.step * n_critic + i)
                state.opt_d.zero_grad(set_to_none=True)
                d_step.total.backward()
                distributed.average_gradients(state.D)
                if i == n_critic - 1:
                    reporter.grad_norm("D", state.D, state.step)
                state.opt_d.step()
                objective.after_d_step()
                reporter.add(d_step.logs, divide_by=n_critic)

            # Generator: one step through a frozen D (relativistic losses also see D's last real batch).
            with frozen(state.D):
                g_step = objective.g_loss(g_batch_size, state.step, d_step)
                state.opt_g.zero_grad(set_to_none=True)
                g_step.total.backward()
                distributed.average_gradients(state.G)
                reporter.grad_norm("G", state.G, state.step)
                state.opt_g.step()
            reporter.add(g_step.logs)

            # Advance: schedules, the step counter, the EMA of G.
            state.advance()

            # Report: scalars, samples, evaluation; a new best FID gets its own checkpoint.
            if reporter.report():
                state.save(run_dir / checkpoint.CHECKPOINT_DIR / checkpoint.BEST_FILE, run_dir, trainer.keep_ckpts)

            # Checkpoint: every ckpt_every steps, at the end, and when a signal asks to stop.
            interrupted = distributed.stop_requested(bool(signals), state.step, trainer.log_every)
            if state.step % trainer.ckpt_every == 0 or state.step == trainer.steps or interrupted:
                reporter.check_finite()  # never checkpoint a diverged model
                state.save(checkpoint.checkpoint_path(run_dir, state.step), run_dir, trainer.keep_ckpts)
            if interrupted:
                name = signal.Signals(signals[0]).name if signals else "SIGTERM (another rank)"
                raise TrainingInterrupted(signals[0] if signals else signal.SIGTERM,
                                          f"{name} received: stopped after step {state.step} and saved a checkpoint. "
                                          f"Resume with: {resume_command(run_dir)}")

