"""Learning-rate schedules in generator steps: optional linear warm-up, then constant, linear or cosine decay.

A torch.optim.lr_scheduler.LambdaLR per optimizer (G and D), stepped once per generator step and saved in
checkpoints. The factor is a pure function of the step, so a resumed run that extends `trainer.steps` (which
`total_steps` follows by default) continues on the stretched schedule instead of a stale one.
"""

from __future__ import annotations

import math
from functools import partial

from torch.optim import lr_scheduler


def lr_factor(step: int, decay: str, warmup_steps: int, total_steps: int, final_factor: float,
              warmup_start_factor: float) -> float:
    """Multiplier of the base lr after `step` generator steps."""
    if step < warmup_steps:
        return warmup_start_factor + (1.0 - warmup_start_factor) * step / warmup_steps
    if decay == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(total_steps - warmup_steps, 1))
    if decay == "linear":  # linear decay as in SNGAN's and BigGAN's code
        return 1.0 + (final_factor - 1.0) * progress
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))  # SGDR's cosine


def warmup_then_decay(optimizer, decay: str = "constant", warmup_steps: int = 0, total_steps: int = 1,
                      final_factor: float = 0.0, warmup_start_factor: float = 0.01):
    """lr ramps linearly from `warmup_start_factor * lr` to lr over `warmup_steps`, then stays (constant) or
    decays to `final_factor * lr` at `total_steps` (linear, or cosine as in Loshchilov & Hutter 2017).
    The values were checked by ganrun.validate (choices and ranges in ganrun.schema)."""
    factor = partial(lr_factor, decay=decay, warmup_steps=warmup_steps, total_steps=total_steps,
                     final_factor=final_factor, warmup_start_factor=warmup_start_factor)
    return lr_scheduler.LambdaLR(optimizer, factor)


def restore(scheduler, saved: dict) -> None:
    """Load a saved scheduler state and put the optimizer's lr where the schedule is now.

    The optimizer state saved beside it holds the lr of the schedule the checkpoint was trained on; a resume
    that stretched the schedule (a longer trainer.steps) would train its first step on that stale lr (0 at the
    end of a decay) before the scheduler's next step. A LambdaLR's factor is a pure function of the step, so the
    current lr is recomputed from it, as LambdaLR.get_lr does, from the config's lr (a resume_force=true change of
    optimizer.*.lr takes effect)."""
    own = scheduler.state_dict()
    scheduler.load_state_dict({k: v for k, v in saved.items() if k in own})  # never other attributes from a file
    if not isinstance(scheduler, lr_scheduler.LambdaLR):
        return
    scheduler.base_lrs = [group["initial_lr"] for group in scheduler.optimizer.param_groups]  # the config's lr
    lrs = [base * factor(scheduler.last_epoch) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs
