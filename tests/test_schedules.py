"""Learning-rate schedules against their definitions: warm-up, the decay's closed form, its final value and what
happens past the end (it stays at the final value), and the lr a resumed, stretched schedule restarts from."""

import math

import pytest
import torch

from ganrun.schedules import lr_factor, restore, warmup_then_decay

W, T = 4, 24  # warm-up steps, total steps


def factor(step, decay, final=0.1, start=0.01, warmup=W, total=T):
    return lr_factor(step, decay, warmup, total, final, start)


def linear(step, final=0.1):  # 1 at the end of warm-up, `final` at T, a straight line between
    return 1.0 + (final - 1.0) * (step - W) / (T - W)


def cosine(step, final=0.1):  # SGDR (Loshchilov & Hutter 2017), eq. 5 with eta_max = 1, eta_min = final
    return final + 0.5 * (1.0 - final) * (1.0 + math.cos(math.pi * (step - W) / (T - W)))


@pytest.mark.parametrize("decay", ["constant", "linear", "cosine"])
def test_warmup_rises_linearly_from_the_start_factor_to_one(decay):
    assert [factor(s, decay, start=0.2) for s in range(W + 1)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


@pytest.mark.parametrize("decay,closed_form", [("constant", lambda s: 1.0), ("linear", linear), ("cosine", cosine)])
def test_decay_follows_its_closed_form_and_ends_at_the_final_factor(decay, closed_form):
    assert [factor(s, decay) for s in range(W, T + 1)] == pytest.approx([closed_form(s) for s in range(W, T + 1)])
    assert factor(T, decay) == pytest.approx(1.0 if decay == "constant" else 0.1)


@pytest.mark.parametrize("decay", ["constant", "linear", "cosine"])
def test_past_the_end_the_factor_stays_at_its_final_value(decay):
    final = factor(T, decay)
    assert [factor(s, decay) for s in (T + 1, T + 7, 10 * T)] == pytest.approx([final] * 3)


def test_cosine_is_halfway_at_the_midpoint_and_linear_decays_at_a_constant_rate():
    mid = W + (T - W) // 2
    assert factor(mid, "cosine", final=0.2) == pytest.approx(0.6)
    steps = [factor(s, "linear", final=0.0) - factor(s + 1, "linear", final=0.0) for s in range(W, T)]
    assert steps == pytest.approx([1.0 / (T - W)] * (T - W))


def test_without_warmup_the_first_step_trains_at_the_full_rate():
    assert factor(0, "linear", warmup=0) == 1.0 and factor(0, "cosine", warmup=0) == 1.0
    assert factor(T, "linear", warmup=0, final=0.0) == 0.0


@pytest.mark.parametrize("decay", ["linear", "cosine"])
def test_a_decay_of_one_step_ends_at_its_final_value_after_that_step(decay):
    assert factor(W, decay, total=W + 1, final=0.25) == 1.0
    assert factor(W + 1, decay, total=W + 1, final=0.25) == pytest.approx(0.25)


def _optimizer(lr=2.0):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def test_the_optimizers_lr_follows_the_factor_step_by_step():
    optimizer = _optimizer()
    scheduler = warmup_then_decay(optimizer, "linear", warmup_steps=W, total_steps=T, final_factor=0.1,
                                  warmup_start_factor=0.05)
    seen = []
    for _ in range(T + 3):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([2.0 * factor(s, "linear", start=0.05) for s in range(T + 3)])


def test_a_resumed_stretched_schedule_restarts_from_the_new_schedules_lr():
    optimizer = _optimizer()
    scheduler = warmup_then_decay(optimizer, "linear", total_steps=10, final_factor=0.0)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0.0  # the end of the short schedule
    saved = scheduler.state_dict()
    stretched_optimizer = _optimizer()
    stretched = warmup_then_decay(stretched_optimizer, "linear", total_steps=20, final_factor=0.0)
    stretched_optimizer.param_groups[0]["lr"] = 0.0  # as the restored optimizer state holds it
    restore(stretched, saved)
    assert stretched_optimizer.param_groups[0]["lr"] == pytest.approx(2.0 * 0.5)  # step 10 of 20
    assert stretched.get_last_lr() == pytest.approx([1.0])


def test_warmup_starts_at_one_percent_of_the_lr_by_default():
    """warmup_start_factor is not in the YAML: its default, 0.01, is the documented ramp start."""
    optimizer = _optimizer()
    warmup_then_decay(optimizer, "linear", warmup_steps=W, total_steps=T)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2.0 * 0.01)
