"""One D step and one G step of the objective on tiny networks, checked against the same maths written by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from ganrun.augment import Pipeline
from ganrun.losses import NonSaturating, RelativisticAverageBCE, Wasserstein
from ganrun.models import mlp
from ganrun.models.conditioning import conditioning_terms
from ganrun.objective import GANObjective, frozen
from ganrun.regularizers import R1, R1R2, GradientPenalty, Regularizer, WeightClipping
from ganrun.run_state import reuse_fakes

Z, SHAPE, BATCH = 3, [2], 6


def nets(conditioning="none", classes=None):
    torch.manual_seed(0)
    G = mlp.Generator(Z, hidden=[5], shape=SHAPE, conditioning=conditioning, num_classes=classes)
    D = mlp.Discriminator(hidden=[5], shape=SHAPE, conditioning=conditioning, num_classes=classes)
    return G, D


def objective(G, D, loss=None, terms=None, augment=None):
    terms = {**(terms or {}), **conditioning_terms(D, 1.0)}
    return GANObjective(G, D, loss or NonSaturating(), terms, augment or Pipeline(None), Z)


def batch(classes=None):
    real = torch.randn(BATCH, *SHAPE)
    labels = torch.arange(BATCH) % classes if classes else torch.zeros(BATCH, dtype=torch.long)
    return real, labels


def test_d_step_scores_real_and_fresh_fakes_and_never_reaches_g():
    G, D = nets()
    real, labels = batch()
    torch.manual_seed(1)
    step = objective(G, D).d_loss(real, labels, step=0, d_step=0)
    torch.manual_seed(1)
    fake = G(torch.randn(BATCH, Z))  # the objective draws the same noise first
    expected = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
    assert step.total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert step.logs["loss/D_adversarial"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert step.logs["scores/D(x)"].item() == pytest.approx(torch.sigmoid(D(real)).mean().item(), rel=1e-6)
    step.total.backward()
    assert all(p.grad is None for p in G.parameters())  # fakes are detached in D's step
    assert all(p.grad is not None for p in D.parameters())


def test_g_step_through_frozen_d_trains_g_only():
    G, D = nets()
    obj = objective(G, D)
    d_step = obj.d_loss(*batch(), step=0, d_step=0)
    torch.manual_seed(2)
    with frozen(D):
        g_step = obj.g_loss(4, step=0, d_step=d_step)
        g_step.total.backward()
    assert all(p.requires_grad for p in D.parameters())  # unfrozen again after the block
    torch.manual_seed(2)
    expected = F.softplus(-D(G(torch.randn(4, Z)))).mean()
    assert g_step.total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert all(p.grad is None for p in D.parameters()) and all(p.grad is not None for p in G.parameters())


def test_relativistic_g_loss_compares_with_the_real_batch_d_step_handed_over():
    G, D = nets()
    obj = objective(G, D, RelativisticAverageBCE())
    d_step = obj.d_loss(*batch(), step=0, d_step=0)
    torch.manual_seed(3)
    g_value = obj.g_loss(BATCH, step=0, d_step=d_step).total.item()
    torch.manual_seed(3)
    fake_out, real_out = D(G(torch.randn(BATCH, Z))), D(d_step.real)
    expected = F.softplus(-(fake_out - real_out.mean())).mean() + F.softplus(real_out - fake_out.mean()).mean()
    assert g_value == pytest.approx(expected.item(), rel=1e-6)
    d_step.real = d_step.real + 1.0  # another real batch: another G loss
    torch.manual_seed(3)
    assert obj.g_loss(BATCH, step=0, d_step=d_step).total.item() != pytest.approx(g_value, rel=1e-6)


def test_penalty_is_weighted_logged_and_lazy_ones_scaled_by_their_interval():
    G, D = nets()
    obj = objective(G, D, Wasserstein(), {"r1": R1(weight=3.0, every=2)})
    real, labels = batch()
    due = obj.d_loss(real, labels, step=0, d_step=4)
    skipped = obj.d_loss(real, labels, step=0, d_step=5)
    x = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x)
    r1 = 0.5 * grad.flatten(1).norm(dim=1).pow(2).mean()
    assert due.logs["penalty/r1"].item() == pytest.approx(3.0 * 2 * r1.item(), rel=1e-5)
    assert due.total.item() == pytest.approx((due.logs["loss/D_adversarial"] + 6.0 * r1).item(), rel=1e-5)
    assert "penalty/r1" not in skipped.logs and skipped.total.item() == skipped.logs["loss/D_adversarial"].item()


def test_gradient_penalty_sees_the_augmented_batches():
    G, D = nets()
    seen = []

    class Spy(Regularizer):
        def penalty(self, critic, real, fake, discriminator):
            seen.append((real, fake))
            return real.sum() * 0

    shift = type("Shift", (), {"check": lambda self, s: None, "__call__": lambda self, x, step: x + 100.0})()
    obj = objective(G, D, terms={"spy": Spy(), "gp": GradientPenalty()}, augment=Pipeline({"shift": shift}))
    real, labels = batch()
    d_step = obj.d_loss(real, labels, step=0, d_step=0)
    assert torch.equal(seen[0][0], real + 100.0) and (seen[0][1].abs() > 90).all()  # both augmented alike
    assert torch.equal(d_step.real, real + 100.0) and "penalty/gp" in d_step.logs


@pytest.mark.parametrize("mode", ["concat", "projection"])
def test_conditional_fakes_share_the_real_labels_in_d_and_draw_uniform_labels_in_g(mode):
    G, D = nets(mode, classes=3)
    calls = []
    D.register_forward_pre_hook(lambda module, args: calls.append(args[1].clone()))
    real, labels = batch(classes=3)
    obj = objective(G, D)
    d_step = obj.d_loss(real, labels, step=0, d_step=0)
    assert all(torch.equal(y, labels) for y in calls) and torch.equal(d_step.labels, labels)
    calls.clear()
    torch.manual_seed(4)
    obj.g_loss(300, step=0, d_step=d_step)
    counts = torch.bincount(calls[0], minlength=3)
    assert counts.sum() == 300 and counts.min() > 70  # uniform over the 3 classes


def test_acgan_class_terms_enter_both_players_losses():
    G, D = nets("acgan", classes=3)
    obj = objective(G, D)
    real, labels = batch(classes=3)
    torch.manual_seed(5)
    d_step = obj.d_loss(real, labels, step=0, d_step=0)
    torch.manual_seed(5)
    fake = G(torch.randn(BATCH, Z), labels)
    (real_out, real_cls), (fake_out, fake_cls) = D(real, labels), D(fake, labels)
    class_term = F.cross_entropy(real_cls, labels) + F.cross_entropy(fake_cls, labels)  # fake-class term included
    assert d_step.logs["penalty/acgan_class"].item() == pytest.approx(class_term.item(), rel=1e-6)
    adversarial = F.softplus(-real_out).mean() + F.softplus(fake_out).mean()
    assert d_step.total.item() == pytest.approx((adversarial + class_term).item(), rel=1e-6)
    torch.manual_seed(6)
    g_value = obj.g_loss(BATCH, step=0, d_step=d_step).total.item()
    torch.manual_seed(6)
    z, y = torch.randn(BATCH, Z), torch.randint(3, (BATCH,))
    out, cls = D(G(z, y), y)
    assert g_value == pytest.approx((F.softplus(-out).mean() + F.cross_entropy(cls, y)).item(), rel=1e-6)


def test_after_d_step_applies_weight_clipping():
    G, D = nets()
    obj = objective(G, D, Wasserstein(), {"clip": WeightClipping(0.01)})
    obj.after_d_step()
    assert max(p.abs().max().item() for p in D.parameters()) <= 0.01


def test_losses_are_float32_under_bfloat16_autocast():
    G, D = nets()
    obj = GANObjective(G, D, NonSaturating(), {}, Pipeline(None), Z, torch.autocast("cpu", dtype=torch.bfloat16))
    d_step = obj.d_loss(*batch(), step=0, d_step=0)
    assert d_step.total.dtype == torch.float32
    assert obj.g_loss(BATCH, step=0, d_step=d_step).total.dtype == torch.float32


def test_stateful_terms_travel_in_the_objective_state():
    class Counter(Regularizer):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def d_term(self, ctx):
            self.calls += 1
            return None

        def state_dict(self):
            return {"calls": self.calls}

        def load_state_dict(self, state):
            self.calls = state["calls"]

    G, D = nets()
    obj = objective(G, D, terms={"counter": Counter()})
    obj.d_loss(*batch(), step=0, d_step=0)
    saved = obj.state_dict()
    assert saved["terms"] == {"counter": {"calls": 1}}
    fresh = objective(G, D, terms={"counter": Counter()})
    fresh.load_state_dict(saved)
    assert fresh.terms["counter"].calls == 1


def test_reused_fakes_g_step_backpropagates_through_the_d_steps_forward_of_g():
    """reuse_fakes: G runs once per step; D's step never reaches G, G's step is the loss on those very fakes
    (fresh augmentation, the labels G generated them for) through D after its update."""
    G, D = nets("acgan", 3)
    real, labels = batch(3)
    calls = []
    G.register_forward_hook(lambda *_: calls.append(1))
    obj = GANObjective(G, D, RelativisticAverageBCE(), conditioning_terms(D, 1.0), Pipeline(None), Z, reuse_fakes=True)
    torch.manual_seed(1)
    d_step = obj.d_loss(real, labels, step=0, d_step=0)
    d_step.total.backward()
    assert all(p.grad is None for p in G.parameters())  # D's step saw the fakes detached
    with torch.no_grad():
        for p in D.parameters():  # D's optimizer step: G's loss must use D as it is now
            p.sub_(0.1 * p.grad)
    with frozen(D):
        g_step = obj.g_loss(BATCH, step=0, d_step=d_step)
        g_step.total.backward()
    assert len(calls) == 1
    torch.manual_seed(1)
    fake = G(torch.randn(BATCH, Z), labels)  # the noise the D step drew, the real labels
    ref = objective(G, D, RelativisticAverageBCE())
    fake_out, fake_cls = D(fake, labels)
    real_out, _ = D(real, labels)
    expected = RelativisticAverageBCE().g_loss(fake_out, real_out) + F.cross_entropy(fake_cls, labels)
    assert g_step.total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert all(p.grad is not None for p in G.parameters()) and ref.reuse_fakes is False


def test_reused_fakes_are_not_used_for_a_g_batch_of_another_size():
    G, D = nets()
    obj = GANObjective(G, D, NonSaturating(), {}, Pipeline(None), Z, reuse_fakes=True)
    d_step = obj.d_loss(*batch(), step=0, d_step=0)
    with frozen(D):
        fake, _ = obj.generate_for_g(2 * BATCH, d_step)
    assert fake.shape[0] == 2 * BATCH and fake is not d_step.fake


@pytest.mark.parametrize("n_critic, g_batch_size, reused", [(1, None, True), (1, BATCH, True), (2, None, False),
                                                            (1, 2 * BATCH, False)])
def test_fakes_are_reused_only_when_each_g_step_follows_one_d_step_on_as_many_fakes(n_critic, g_batch_size, reused):
    trainer = SimpleNamespace(reuse_fakes=True, n_critic=n_critic, g_batch_size=g_batch_size, batch_size=BATCH)
    assert reuse_fakes(trainer) is reused
    assert reuse_fakes(SimpleNamespace(**{**vars(trainer), "reuse_fakes": False})) is False


def test_rpgan_g_step_pairs_its_fakes_with_a_fresh_real_batch():
    """R3GAN's G step reads its own real batch: g_loss draws the next one from the stream, not D's last one."""
    from ganrun.losses import RelativisticPairing

    G, D = nets()
    d_real, labels = batch()
    fresh = [(d_real + 5.0 + i, labels) for i in range(3)]
    stream = iter(fresh)
    seen = []
    D.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    obj = GANObjective(G, D, RelativisticPairing(), {}, Pipeline(None), Z, real_batches=stream)
    d_step = obj.d_loss(d_real, labels, step=0, d_step=0)
    seen.clear()
    torch.manual_seed(3)
    g_value = obj.g_loss(BATCH, step=0, d_step=d_step).total.item()
    assert next(stream)[0] is fresh[1][0]  # exactly one batch drawn
    assert any(torch.equal(x, fresh[0][0]) for x in seen) and not any(torch.equal(x, d_real) for x in seen)
    torch.manual_seed(3)
    fake_out, real_out = D(G(torch.randn(BATCH, Z))), D(fresh[0][0])
    assert g_value == pytest.approx(F.softplus(real_out - fake_out).mean().item(), rel=1e-6)
    on_d_batch = F.softplus(D(d_real) - fake_out).mean().item()
    assert g_value != pytest.approx(on_d_batch, rel=1e-3)


@pytest.mark.parametrize("loss", [NonSaturating(), RelativisticAverageBCE()])
def test_other_losses_never_draw_from_the_stream_in_g_step(loss):
    G, D = nets()
    stream = iter([batch()])
    obj = GANObjective(G, D, loss, {}, Pipeline(None), Z, real_batches=stream)
    obj.g_loss(BATCH, step=0, d_step=obj.d_loss(*batch(), step=0, d_step=0))
    assert next(stream, None) is not None  # the data order of every other loss is unchanged


def context_spy():
    """A term that records the TermContext of each D step: (term, list of contexts)."""
    seen = []

    class Spy(Regularizer):
        def d_term(self, ctx):
            seen.append(ctx)

    return Spy(), seen


DOUBLE = type("Double", (), {"check": lambda self, s: None, "__call__": lambda self, x, step: 2 * x})()


def test_d_step_hands_penalties_the_unaugmented_batches_the_augmentation_and_ds_outputs():
    from ganrun.regularizers import R1

    G, D = nets()
    spy, seen = context_spy()
    obj = objective(G, D, terms={"spy": spy, "r1": R1(weight=2.0)}, augment=Pipeline({"double": DOUBLE}))
    real, labels = batch()
    d_step = obj.d_loss(real, labels, step=0, d_step=0)
    ctx = seen[0]
    assert torch.equal(ctx.unaugmented_real, real) and torch.equal(ctx.real, 2 * real)
    assert torch.equal(ctx.augment(real), 2 * real) and torch.equal(2 * ctx.unaugmented_fake, ctx.fake)
    assert torch.allclose(ctx.real_out, D(2 * real)) and torch.allclose(ctx.fake_out, D(ctx.fake))
    x = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(2 * x).sum(), x)  # d/dx D(2x) = 2 D'(2x)
    assert d_step.logs["penalty/r1"].item() == pytest.approx(2.0 * 0.5 * grad.pow(2).sum(1).mean().item(), rel=1e-5)


def test_lecam_averages_travel_in_the_objective_state():
    from ganrun.regularizers import LeCam

    G, D = nets()
    obj = objective(G, D, terms={"lecam": LeCam()})
    real, labels = batch()
    first = obj.d_loss(real, labels, step=0, d_step=0)
    assert "penalty/lecam" in first.logs
    saved = obj.state_dict()["terms"]["lecam"]
    assert saved["debias"].item() == pytest.approx(0.01) and saved["averages"].abs().sum() > 0
    fresh = objective(G, D, terms={"lecam": LeCam()})
    fresh.load_state_dict(obj.state_dict())
    torch.manual_seed(7)
    expected = obj.d_loss(real, labels, step=0, d_step=1).logs["penalty/lecam"].item()
    torch.manual_seed(7)
    assert fresh.d_loss(real, labels, step=0, d_step=1).logs["penalty/lecam"].item() == pytest.approx(expected)


# ---- zero-centred penalties share the D step's forward (stylegan2-ada Dmain+Dreg, R3GAN's trainer)
def d_forwards(D):
    """A list that counts D's forward calls (a forward hook)."""
    calls = []
    D.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    return calls


@pytest.mark.parametrize("make, forwards", [(lambda: R1R2(), 2),
                                            (lambda: R1(), 2), (lambda: GradientPenalty(), 3)],
                         ids=["r1r2", "r1", "gp"])
def test_zero_centred_penalties_reuse_the_d_steps_forward_and_gp_runs_its_own(make, forwards):
    G, D = nets()
    calls = d_forwards(D)
    objective(G, D, terms={"reg": make()}).d_loss(*batch(), step=0, d_step=0)
    assert len(calls) == forwards  # real, fake (+ GP's interpolates); a separate R1+R2 pass would make 4


def test_a_compiled_d_gets_a_penalty_pass_of_its_own():
    """aot_autograd cannot differentiate a compiled graph twice: with D compiled, R1+R2 runs D eagerly again.
    (Compiled is simulated by what GANObjective.eager reads, `_compiled_call_impl`, set to the eager call.)"""
    G, D = nets()
    calls = d_forwards(D)
    D._compiled_call_impl = D._call_impl
    step = objective(G, D, terms={"r1r2": R1R2(weight=2.0)}).d_loss(*batch(), step=0, d_step=0)
    assert len(calls) == 4 and "penalty/r1r2" in step.logs


@pytest.mark.parametrize("conditioning, classes", [("none", None), ("projection", 3)])
def test_shared_penalty_equals_the_separate_pass_without_augmentation(conditioning, classes):
    """augment=none: the shared forward's R1+R2 equals the penalty's own pass (split_output keeps a conditional D's
    adversarial output); float32 on CPU, relative tolerance 1e-6."""
    import dataclasses

    G, D = nets(conditioning, classes)
    spy, seen = context_spy()
    r1r2 = R1R2(weight=3.0)
    step = objective(G, D, terms={"r1r2": r1r2, "spy": spy}).d_loss(*batch(classes), step=0, d_step=0)
    ctx = seen[0]
    assert set(ctx.grad_inputs) == {("real", True), ("fake", True)}
    separate = r1r2.d_term(dataclasses.replace(ctx, grad_inputs={}))
    assert step.logs["penalty/r1r2"].item() == pytest.approx(separate.item(), rel=1e-6)
    assert separate.item() > 0


def test_shared_penalties_through_and_not_through_a_doubling_augmentation_match_their_closed_forms():
    """x -> 2x: R1 through it is 1/2 E||2 D'(2x)||^2, R2 at D's own input 1/2 E||D'(2 G(z))||^2, in one step."""
    from ganrun.regularizers import R2

    G, D = nets()
    spy, seen = context_spy()
    obj = objective(G, D, terms={"r1": R1(weight=2.0), "r2": R2(weight=5.0, through_augment=False), "spy": spy},
                    augment=Pipeline({"double": DOUBLE}))
    calls = d_forwards(D)
    real, labels = batch()
    step = obj.d_loss(real, labels, step=0, d_step=0)
    assert len(calls) == 2
    fake = seen[0].fake.detach().clone().requires_grad_(True)  # 2 G(z), D's own input
    (grad_fake,) = torch.autograd.grad(D(fake).sum(), fake)
    x = real.clone().requires_grad_(True)
    (grad_real,) = torch.autograd.grad(D(2 * x).sum(), x)
    assert step.logs["penalty/r1"].item() == pytest.approx(2.0 * 0.5 * grad_real.pow(2).sum(1).mean().item(), rel=1e-5)
    assert step.logs["penalty/r2"].item() == pytest.approx(5.0 * 0.5 * grad_fake.pow(2).sum(1).mean().item(), rel=1e-5)
    assert not step.real.requires_grad  # the batch handed to G's step carries no graph of the penalty's inputs


# ---- the bare contracts: terms, losses and nets that are not ganrun's own classes
class BareTerm:
    """A term written against the bare contract (no Regularizer base): d_term, g_term, after_d_step only."""

    def __init__(self, d_value, g_value):
        self.d_value, self.g_value, self.after = d_value, g_value, 0

    def d_term(self, ctx):
        return ctx.real_out.sum() * 0 + self.d_value

    def g_term(self, ctx):
        assert ctx.real is None and ctx.discriminator is not None  # G's step: its fakes only
        return ctx.fake.sum() * 0 + self.g_value

    def after_d_step(self, D):
        self.after += 1


def test_terms_written_against_the_bare_contract_enter_both_steps_and_have_no_state():
    G, D = nets()
    bare = BareTerm(0.75, -0.4)
    obj = objective(G, D, terms={"bare": bare, "r1": R1(weight=2.0)})
    real, labels = batch()
    d_step = obj.d_loss(real, labels, step=0, d_step=0)
    assert d_step.logs["penalty/bare"].item() == pytest.approx(0.75)
    assert d_step.total.item() == pytest.approx((d_step.logs["loss/D_adversarial"] + 0.75
                                                 + d_step.logs["penalty/r1"]).item(), rel=1e-6)
    torch.manual_seed(2)
    g_value = obj.g_loss(BATCH, step=0, d_step=d_step).total.item()
    torch.manual_seed(2)
    assert g_value == pytest.approx(F.softplus(-D(G(torch.randn(BATCH, Z)))).mean().item() - 0.4, rel=1e-6)
    obj.after_d_step()
    assert bare.after == 1 and obj.state_dict()["terms"] == {}


class BareLoss:
    """A relativistic loss written against the bare contract: no `fresh_real_in_g` attribute."""

    needs_real_in_g = True

    def d_loss(self, real_out, fake_out):
        return (fake_out.mean() - real_out.mean()).abs()

    def g_loss(self, fake_out, real_out):
        return (real_out.mean() - fake_out.mean()) ** 2

    def score(self, out):
        return out


def test_a_loss_without_fresh_real_in_g_compares_with_ds_last_real_batch():
    G, D = nets()
    stream = iter([batch()])
    obj = GANObjective(G, D, BareLoss(), {}, Pipeline(None), Z, real_batches=stream)
    d_step = obj.d_loss(*batch(), step=0, d_step=0)
    torch.manual_seed(3)
    g_value = obj.g_loss(BATCH, step=0, d_step=d_step).total.item()
    torch.manual_seed(3)
    expected = (D(d_step.real).mean() - D(G(torch.randn(BATCH, Z))).mean()) ** 2
    assert g_value == pytest.approx(expected.item(), rel=1e-5) and next(stream, None) is not None


class BareG(torch.nn.Module):
    """G(z, y) with no `num_classes`: unconditional by the contract."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(Z, SHAPE[0])

    def forward(self, z, y=None):
        assert y is None
        return self.body(z)


def test_a_generator_without_num_classes_is_unconditional():
    _, D = nets()
    seen = []
    D.register_forward_pre_hook(lambda module, args: seen.append(args[1] if len(args) > 1 else None))
    obj = GANObjective(BareG(), D, NonSaturating(), {}, Pipeline(None), Z)
    d_step = obj.d_loss(*batch(classes=3), step=0, d_step=0)
    obj.g_loss(BATCH, step=0, d_step=d_step)
    assert seen and all(y is None for y in seen) and d_step.labels is None


def test_fresh_fakes_for_g_are_drawn_on_the_device_of_ds_step():
    """G's noise is drawn on the device the D step ran on (no host-to-device copy). "meta" stands in for an
    accelerator on any CPU: G and the D step's loss live there."""
    G, D = nets()
    G.to("meta")
    obj = GANObjective(G, D, NonSaturating(), {}, Pipeline(None), Z)
    d_step = SimpleNamespace(fake=None, labels=None, total=torch.zeros((), device="meta"))
    fake, y = obj.generate_for_g(4, d_step)
    assert fake.device.type == "meta" and fake.shape == (4, *SHAPE) and y is None


def test_one_kind_penalised_both_through_and_not_through_the_augmentation_in_one_forward():
    """R1 through x -> 2x (1/2 E||2 D'(2x)||^2) and R1 at D's own input (1/2 E||D'(2x)||^2) on the same reals:
    D's input 2x keeps its graph from x and serves both, still two D forwards in all."""
    G, D = nets()
    obj = objective(G, D, terms={"through": R1(weight=2.0), "own": R1(weight=5.0, through_augment=False)},
                    augment=Pipeline({"double": DOUBLE}))
    calls = d_forwards(D)
    real, labels = batch()
    step = obj.d_loss(real, labels, step=0, d_step=0)
    assert len(calls) == 2
    x = (2 * real).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x)
    assert step.logs["penalty/through"].item() == pytest.approx(2.0 * 0.5 * (2 * grad).pow(2).sum(1).mean().item(),
                                                                rel=1e-5)
    assert step.logs["penalty/own"].item() == pytest.approx(5.0 * 0.5 * grad.pow(2).sum(1).mean().item(), rel=1e-5)
    # no augmentation: D's input is the batch itself, a leaf that both kinds share
    plain = objective(G, D, terms={"through": R1(weight=2.0), "own": R1(weight=5.0, through_augment=False)})
    step = plain.d_loss(real, labels, step=0, d_step=0)
    y = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(y).sum(), y)
    assert step.logs["penalty/through"].item() == pytest.approx(2.0 * 0.5 * grad.pow(2).sum(1).mean().item(), rel=1e-5)
    assert step.logs["penalty/own"].item() == pytest.approx(5.0 * 0.5 * grad.pow(2).sum(1).mean().item(), rel=1e-5)


# ---- PairedObjective (pix2pix, Isola et al. 2017, eq. 4): D scores (input, image) pairs
class PairG(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(3, 3)
        self.calls = 0

    def forward(self, condition):
        self.calls += 1
        return self.body(condition)


class PairD(torch.nn.Module):
    """D(x, c) = <w_x, x> + <w_c, c>: its gradient in the image x is w_x whatever the input c."""

    def __init__(self):
        super().__init__()
        self.w_x, self.w_c = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5])), torch.nn.Parameter(torch.ones(3) * 3)

    def forward(self, x, condition):
        return x @ self.w_x + condition @ self.w_c


def paired(loss=None, terms=None, reuse_fakes=False, adversarial_weight=0.7):
    from ganrun.objective import PairedObjective

    torch.manual_seed(0)
    task = SimpleNamespace(adversarial_weight=adversarial_weight, generator_terms=lambda out, target, condition: {
        "l1": (100.0, (out - target).abs().mean()), "l2": (3.0, (out - target).pow(2).mean())})
    G, D = PairG(), PairD()
    obj = PairedObjective(G, D, loss or NonSaturating(), terms or {}, Pipeline(None), 0, task=task,
                          reuse_fakes=reuse_fakes)
    return obj, G, D


def test_paired_d_step_scores_input_target_against_input_output_and_r1_takes_the_image_gradient():
    obj, G, D = paired(terms={"r1": R1(weight=2.0)})
    target, condition = torch.randn(5, 3), torch.randn(5, 3) + 1.0
    step = obj.d_loss(target, condition, step=0, d_step=0)
    expected = F.softplus(-D(target, condition)).mean() + F.softplus(D(G(condition), condition)).mean()
    assert step.logs["loss/D_adversarial"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert step.logs["penalty/r1"].item() == pytest.approx(2.0 * 0.5 * 5.25, rel=1e-6)  # ||w_x||^2, the input held
    assert step.total.item() == pytest.approx(expected.item() + 5.25, rel=1e-6)
    assert torch.equal(step.real, target) and torch.equal(step.labels, condition) and step.fake is None
    step.total.backward()
    assert G.body.weight.grad is None and D.w_x.grad is not None


@pytest.mark.parametrize("reuse", [False, True])
def test_paired_g_step_weights_the_adversarial_term_and_adds_the_tasks_terms(reuse):
    obj, G, D = paired(terms={"bare": BareTerm(0.0, 0.25)}, reuse_fakes=reuse)
    target, condition = torch.randn(5, 3), torch.randn(5, 3) + 1.0
    d_step = obj.d_loss(target, condition, step=0, d_step=0)
    assert (d_step.fake is not None) is reuse
    with frozen(D):
        g_step = obj.g_loss(5, step=0, d_step=d_step)
        g_step.total.backward()
    assert G.calls == (1 if reuse else 2)  # reuse_fakes: G's step backpropagates through the D step's forward
    out = G.body(condition)
    adversarial = F.softplus(-D(out, condition)).mean()
    l1, l2 = (out - target).abs().mean(), (out - target).pow(2).mean()
    assert g_step.total.item() == pytest.approx((0.7 * adversarial + 100 * l1 + 3 * l2 + 0.25).item(), rel=1e-6)
    assert g_step.logs["loss/G_adversarial"].item() == pytest.approx(adversarial.item(), rel=1e-6)
    assert g_step.logs["loss/G_l1"].item() == pytest.approx(l1.item(), rel=1e-6)
    assert g_step.logs["loss/G_l2"].item() == pytest.approx(l2.item(), rel=1e-6)
    assert G.body.weight.grad is not None and D.w_x.grad is None


def test_paired_relativistic_g_step_compares_with_the_input_target_pairs():
    obj, G, D = paired(RelativisticAverageBCE(), adversarial_weight=1.0)
    obj.task.generator_terms = lambda out, target, condition: {}
    target, condition = torch.randn(5, 3), torch.randn(5, 3) + 1.0
    g_value = obj.g_loss(5, step=0, d_step=obj.d_loss(target, condition, step=0, d_step=0)).total.item()
    expected = RelativisticAverageBCE().g_loss(D(G(condition), condition), D(target, condition))
    assert g_value == pytest.approx(expected.item(), rel=1e-6)
