"""ADA (ganrun/ada.py): each op against its definition (StyleGAN2-ADA's training/augment.py) on asymmetric images,
p = 0 the identity, p the probability of each op, gradients through it, and the adaptive rule of p."""

import math

import pytest
import torch
import torch.nn as nn

from ganrun import ada
from ganrun.ada import ADA
from ganrun.augment import Pipeline
from ganrun.errors import ConfigError
from ganrun.host_syncs import HostSyncCounter

H, W = 6, 8  # not square: rows and columns cannot be confused
TOL = dict(atol=1e-5, rtol=1e-5)


def image(batch=2, channels=3, seed=0):
    return torch.rand(batch, channels, H, W, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def ramp(batch=2):
    """An affine image f(x, y) per channel, which bilinear resampling reproduces exactly."""
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    coef = torch.tensor([[0.3, -0.7, 0.1], [-0.2, 0.4, -0.5], [0.05, 0.1, 0.2]])
    f = coef[:, 0, None, None] * xs + coef[:, 1, None, None] * ys + coef[:, 2, None, None]
    return f.expand(batch, 3, H, W), coef


def one(op, value, batch=2):
    """`value` for `op` on every sample."""
    value = torch.as_tensor(value, dtype=torch.float32)
    return {op: value.expand(batch, *value.shape)}


def reflect(k, n):
    k = k.abs()
    return torch.where(k > n - 1, 2 * (n - 1) - k, k)


# ---- blits
def test_xflip_mirrors_the_columns():
    x = image()
    assert torch.allclose(ada.apply(x, one("xflip", 1.0)), x.flip(3), **TOL)
    assert torch.equal(ada.apply(x, one("xflip", 0.0)), x)


def test_rotate90_turns_by_quarter_turns():
    x = torch.rand(2, 3, 7, 7)  # square: a quarter turn keeps the frame
    turned = [ada.apply(x, one("rotate90", float(k))) for k in range(4)]
    assert torch.equal(turned[0], x)
    assert torch.allclose(turned[1], torch.rot90(x, 1, dims=(2, 3)), **TOL)
    assert torch.allclose(turned[2], torch.rot90(x, 2, dims=(2, 3)), **TOL)
    assert torch.allclose(turned[3], torch.rot90(x, 3, dims=(2, 3)), **TOL)


@pytest.mark.parametrize("tx,ty", [(1, 0), (0, -2), (3, 1), (-2, 2)])
def test_xint_shifts_by_the_drawn_integers_with_reflection(tx, ty):
    x = image()
    out = ada.apply(x, one("xint", [float(tx), float(ty)]))
    rows = reflect(torch.arange(H) - ty, H)
    cols = reflect(torch.arange(W) - tx, W)
    assert torch.allclose(out, x[:, :, rows][:, :, :, cols], **TOL)  # output (i, j) reads input (i - ty, j - tx)


def test_xint_draws_integers_up_to_an_eighth_of_the_size():
    torch.manual_seed(0)
    shifts = ada.draw(["xint"], 4000, 32, 64, torch.tensor(1.0))["xint"]
    assert torch.equal(shifts, shifts.round())
    assert shifts[:, 0].abs().max() == 8 and shifts[:, 1].abs().max() == 4  # 1/8 of 64 and of 32


# ---- general geometric ops: on an affine image, out(p) = f(A^-1 (p - c - t) + c) wherever that is inside
def expected_warp(A, t, batch=2):
    f, coef = ramp(batch)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    c = torch.tensor([(W - 1) / 2, (H - 1) / 2])
    out = torch.stack([xs, ys], -1) - c - torch.as_tensor(t)
    src = out @ torch.linalg.inv(torch.as_tensor(A, dtype=torch.float32)).T + c
    inside = (src[..., 0] >= 0) & (src[..., 0] <= W - 1) & (src[..., 1] >= 0) & (src[..., 1] <= H - 1)
    values = coef[:, 0, None, None] * src[..., 0] + coef[:, 1, None, None] * src[..., 1] + coef[:, 2, None, None]
    return f, values, inside


def rotation(theta):
    return [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]


@pytest.mark.parametrize("op,value,A,t", [
    ("scale", 1.7, [[1.7, 0], [0, 1.7]], [0, 0]),
    ("aniso", 1.5, [[1.5, 0], [0, 1 / 1.5]], [0, 0]),
    ("rotate", [0.4, 0.0], rotation(-0.4), [0, 0]),  # (before, after aniso); the forward map turns by -theta
    ("rotate", [0.4, -0.1], rotation(-0.3), [0, 0]),
    ("xfrac", [0.4, -1.3], [[1, 0], [0, 1]], [0.4, -1.3]),
])
def test_geometric_op_is_its_affine_map_about_the_centre(op, value, A, t):
    f, values, inside = expected_warp(A, t)
    out = ada.apply(f, one(op, value))
    assert inside.sum() >= 12
    assert torch.allclose(out[:, :, inside], values[None].expand(2, -1, -1, -1)[:, :, inside], atol=1e-4)


def test_geometric_ops_compose_in_the_references_order():
    """G = xfrac . rot_after . aniso . rot_before . scale . xint . rot90 . xflip (the reference's G_inv reversed)."""
    params = {"xflip": torch.tensor([1.0]), "rotate90": torch.tensor([0.0]), "xint": torch.tensor([[1.0, 0.0]]),
              "scale": torch.tensor([1.3]), "rotate": torch.tensor([[0.2, 0.1]]), "aniso": torch.tensor([1.2]),
              "xfrac": torch.tensor([[0.3, 0.2]])}
    flip, aniso = torch.diag(torch.tensor([-1.0, 1.0])), torch.diag(torch.tensor([1.2, 1 / 1.2]))
    rot = lambda a: torch.tensor(rotation(a))  # noqa: E731
    linear = rot(-0.1) @ aniso @ rot(-0.2) @ (1.3 * flip)
    shift = rot(-0.1) @ aniso @ rot(-0.2) @ (1.3 * torch.tensor([1.0, 0.0])) + torch.tensor([0.3, 0.2])
    matrix = ada.geometric_matrix(params, 1, "cpu")
    assert torch.allclose(matrix[0, :2, :2], linear, atol=1e-6) and torch.allclose(matrix[0, :2, 2], shift, atol=1e-6)
    f, values, inside = expected_warp(linear, shift, batch=1)
    out = ada.apply(f, params)
    assert torch.allclose(out[:, :, inside], values[None][:, :, inside], atol=1e-4)


def test_geometric_warp_pads_by_reflection():
    x = image()
    out = ada.apply(x, one("xfrac", [0.0, 3.0]))  # integer-valued: rows 0-2 read the reflected rows 3, 2, 1
    assert torch.allclose(out[:, :, :3], x[:, :, [3, 2, 1]], **TOL)


# ---- colour: the reference's 4x4 matrices, written out per pixel
def test_brightness_adds_and_contrast_scales_about_mid_grey():
    x = image()
    assert torch.allclose(ada.apply(x, one("brightness", 0.3)), x + 0.3, **TOL)
    assert torch.allclose(ada.apply(x, one("contrast", 1.8)), x * 1.8, **TOL)  # about 0: mid-grey of [-1, 1]
    both = {**one("brightness", 0.3), **one("contrast", 1.8)}
    assert torch.allclose(ada.apply(x, both), (x + 0.3) * 1.8, **TOL)  # brightness first, as C = contrast @ brightness


def test_lumaflip_reflects_about_the_luma_axis():
    x = image()
    mean = x.mean(1, keepdim=True)  # v v^T x with v = (1, 1, 1)/sqrt(3): the channel mean on every channel
    assert torch.allclose(ada.apply(x, one("lumaflip", 1.0)), x - 2 * mean, **TOL)
    grey = image(channels=1)
    assert torch.allclose(ada.apply(grey, one("lumaflip", 1.0)), -grey, **TOL)  # the reference's 1-channel rule


def test_hue_rotates_about_the_luma_axis():
    x, theta = image(), 0.9
    v = torch.full((3,), 1 / math.sqrt(3))[None, :, None, None]
    along = (v * x).sum(1, keepdim=True)
    cross = torch.cross(v.expand_as(x), x, dim=1)
    rodrigues = x * math.cos(theta) + cross * math.sin(theta) + v * along * (1 - math.cos(theta))
    out = ada.apply(x, one("hue", theta))
    assert torch.allclose(out, rodrigues, **TOL)
    assert torch.allclose(out.mean(1), x.mean(1), **TOL) and not torch.allclose(out, x, atol=0.1)


def test_saturation_scales_the_colour_off_the_luma_axis():
    x = image()
    mean = x.mean(1, keepdim=True)
    assert torch.allclose(ada.apply(x, one("saturation", 2.5)), mean + 2.5 * (x - mean), **TOL)
    grey = image(channels=1)
    assert torch.equal(ada.apply(grey, {**one("hue", 1.0), **one("saturation", 2.5)}), grey)  # as the reference


def test_colour_ops_act_in_the_references_order():
    x = image()
    params = {**one("brightness", 0.2), **one("contrast", 1.5), **one("lumaflip", 1.0), **one("saturation", 0.5)}
    y = (x + 0.2) * 1.5
    y = y - 2 * y.mean(1, keepdim=True)
    y = y.mean(1, keepdim=True) + 0.5 * (y - y.mean(1, keepdim=True))
    assert torch.allclose(ada.apply(x, params), y, **TOL)


def test_cutout_zeroes_a_square_of_half_the_size_where_drawn():
    x = torch.rand(3, 3, 16, 16) + 1
    out = ada.apply(x, {"cutout": torch.tensor([[0.5, 0.3, 0.6], [0.0, 0.3, 0.6], [0.5, 0.95, 0.0]])})
    inside = torch.zeros(3, 16, 16, dtype=torch.bool)
    inside[0, 6:14, 1:9] = True  # centre (0.3 W, 0.6 H), side 8: pixel centres (i + 0.5)/16 within 1/4 of it
    inside[2, 0:4, 11:16] = True  # near a corner: the part of the square inside the image
    assert torch.equal(out == 0, inside[:, None].expand(-1, 3, -1, -1))
    assert torch.equal(out[~(out == 0)], x[~(out == 0)])


# ---- p
def test_p_zero_is_exactly_the_identity():
    for channels in (1, 3):
        x = image(batch=32, channels=channels)
        assert torch.equal(ADA("bgc,cutout", p=0.0, target=None)(x, step=0), x)


def test_each_op_acts_with_probability_p():
    torch.manual_seed(0)
    n = 4000
    continuous = {"scale": 1.0, "aniso": 1.0, "xfrac": 0.0, "brightness": 0.0, "contrast": 1.0, "hue": 0.0,
                  "saturation": 1.0}
    for p in (1.0, 0.3):
        drawn = ada.draw(ada.OPS, n, 32, 32, torch.tensor(p))
        for op, identity in continuous.items():
            acted = (drawn[op] != identity).reshape(n, -1).any(1).float().mean().item()
            assert acted == pytest.approx(p, abs=0.03), op
        for op, choices in (("xflip", 2), ("rotate90", 4), ("lumaflip", 2)):  # acting draws one of `choices`,
            assert (drawn[op] != 0).float().mean().item() == pytest.approx(p * (choices - 1) / choices, abs=0.03)
        assert (drawn["cutout"][:, 0] == 0.5).float().mean().item() == pytest.approx(p, abs=0.03)
        rotated = (drawn["rotate"] != 0).any(1).float().mean().item()  # before or after aniso: together p
        assert rotated == pytest.approx(p, abs=0.03)
        assert (drawn["rotate"] != 0).float().mean().item() == pytest.approx(1 - math.sqrt(1 - p), abs=0.03)


def test_an_op_with_strength_s_acts_at_p_times_s():
    """The reference's AugmentPipe(brightness=0.5, ...): each op's probability is p x its strength (R3GAN's
    pipeline halves the colour ops'); the others keep p. n = 8000 draws: binomial sd <= 0.006, tolerance 0.025."""
    torch.manual_seed(0)
    n, p = 8000, 0.8
    strengths = {**ada.parse_strengths(None), "brightness": 0.5, "contrast": 0.25, "scale": 0.0, "cutout": 0.75,
                 "rotate": 0.5}
    drawn = ada.draw(ada.OPS, n, 32, 32, torch.tensor(p), strengths)
    rate = lambda op, identity: (drawn[op] != identity).reshape(n, -1).any(1).float().mean().item()  # noqa: E731
    for op, identity in (("brightness", 0.0), ("contrast", 1.0), ("scale", 1.0), ("aniso", 1.0), ("hue", 0.0)):
        assert rate(op, identity) == pytest.approx(p * strengths[op], abs=0.025), op
    assert (drawn["cutout"][:, 0] == 0.5).float().mean().item() == pytest.approx(p * 0.75, abs=0.025)
    assert (drawn["rotate"] != 0).any(1).float().mean().item() == pytest.approx(p * 0.5, abs=0.025)
    ada_half = ADA("bgc", p=p, target=None, strengths={"brightness": 0.5})  # the object passes them to draw
    assert ada_half.strengths["brightness"] == 0.5 and ada_half.strengths["contrast"] == 1.0
    x = torch.zeros(n, 1, 4, 4)  # only brightness moves a constant image off 0 (contrast: about 0)
    moved = (ADA("brightness,contrast", p=p, target=None, strengths={"brightness": 0.5})(x, step=0) != 0)
    assert moved.flatten(1).any(1).float().mean().item() == pytest.approx(p * 0.5, abs=0.025)


def test_an_unknown_op_in_strengths_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"^augment.ada.strengths.brightnes: no such op"):
        ADA(strengths={"brightnes": 0.5})


def test_p_one_changes_every_sample_and_parameters_differ_per_sample():
    torch.manual_seed(0)
    x = image(batch=1, seed=3).expand(16, -1, -1, -1)
    out = ADA("bgc", p=1.0, target=None)(x, step=0)
    flat = out.flatten(1)
    assert all(not torch.allclose(flat[i], flat[j], atol=1e-3) for i in range(16) for j in range(i))
    drawn = ada.draw(ada.OPS, 16, H, W, torch.tensor(1.0))
    for op in ("scale", "aniso", "brightness", "contrast", "hue", "saturation"):
        assert len(set(drawn[op].tolist())) == 16, op


def test_gradients_flow_through_every_op():
    torch.manual_seed(0)
    params = ada.draw(ada.OPS, 2, 5, 6, torch.tensor(1.0))
    params["xfrac"] = params["xfrac"] + 0.37  # off the pixel grid: bilinear weights inside (0, 1)
    x = (torch.rand(2, 3, 5, 6, dtype=torch.float64) * 2 - 1).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ada.apply(t, params), (x,), eps=1e-6, atol=1e-5)


# ---- the adaptive rule
def observe_steps(aug, signs_per_step, steps):
    logs = None
    for _ in range(steps):
        logs = aug.observe(torch.tensor(signs_per_step, dtype=torch.float32)[:, None])
    return logs


@pytest.mark.parametrize("signs,moved", [([2.0] * 7 + [-1.0], +0.1),  # r_t = 0.75 > 0.6: D too sure of reals
                                         ([3.0, -1.0, -0.5, 0.2, -2.0, 1.0, -1.0, -4.0], -0.1),  # r_t = -0.25
                                         ([1.0, 1.0, 1.0, 1.0, -1.0], 0.0)])  # r_t = 0.6 = target: p stays
def test_p_moves_by_the_stated_step_every_interval(signs, moved):
    # step = batch * interval / (speed_kimg * 1000) = 8 * 4 / 320 = 0.1 (5 * 4 / 320 for the batch of 5)
    aug = ADA("bgc", p=0.5, target=0.6, interval=4, speed_kimg=0.32)
    logs = observe_steps(aug, signs, 3)
    assert aug.p.item() == 0.5  # nothing before `interval` D steps
    mean = sum(math.copysign(1, s) for s in signs) / len(signs)
    assert logs["augment/r_t"].item() == pytest.approx(mean) and logs["augment/p"].item() == 0.5
    logs = observe_steps(aug, signs, 1)
    assert aug.p.item() == pytest.approx(0.5 + moved, abs=1e-6)
    assert logs["augment/p"].item() == pytest.approx(0.5 + moved, abs=1e-6)


def test_p_stays_within_zero_and_one_and_fixed_without_a_target():
    up, down = ADA(p=0.95, interval=1, speed_kimg=0.01), ADA(p=0.05, interval=1, speed_kimg=0.01)
    observe_steps(up, [1.0] * 4, 3)
    observe_steps(down, [-1.0] * 4, 3)
    assert up.p.item() == 1.0 and down.p.item() == 0.0
    fixed = ADA(p=0.2, target=None, interval=1, speed_kimg=0.01)
    observe_steps(fixed, [1.0] * 4, 5)
    assert fixed.p.item() == pytest.approx(0.2)


class Confident(nn.Module):
    """A D whose output on every input is `score` (a stand-in for one that is sure, or fooled, about reals)."""

    def __init__(self, score):
        super().__init__()
        self.score, self.weight = score, nn.Parameter(torch.zeros(()))

    def forward(self, x, y=None):
        return self.weight * x.flatten(1).sum(1, keepdim=True) + self.score


@pytest.mark.parametrize("score,direction", [(3.0, 1), (-3.0, -1)])
def test_the_objective_feeds_ds_real_outputs_to_the_rule(score, direction):
    from ganrun.losses import NonSaturating
    from ganrun.models import mlp
    from ganrun.objective import GANObjective

    torch.manual_seed(0)
    G = mlp.Generator(4, hidden=[8], shape=[3, 8, 8])
    aug = ADA("bgc", p=0.5, target=0.6, interval=2, speed_kimg=0.016)  # 8 * 2 / 16 = 1: one move reaches 0 or 1
    objective = GANObjective(G, Confident(score), NonSaturating(), {}, Pipeline({"ada": aug}), 4)
    for d_step in range(2):
        logs = objective.d_loss(torch.rand(8, 3, 8, 8) * 2 - 1, None, step=0, d_step=d_step).logs
    assert logs["augment/r_t"].item() == direction and aug.p.item() == (1.0 if direction > 0 else 0.0)
    assert objective.state_dict()["augment"]["augment"]["0"]["p"].item() == aug.p.item()


def test_the_step_makes_no_host_sync():
    aug = ADA("bgc,cutout", p=0.5, interval=1)
    x = image(batch=4)
    aug(x, 0)  # the first call puts p on the data's device
    with HostSyncCounter() as syncs:
        aug(x, 0)
        aug.observe(torch.randn(4, 1))
    # kornia's adjust_* call factor.to(image.device): the factors are drawn on that device, so nothing moves
    kornia_noop = [c for c in syncs.calls if c.call == "to(device)" and "kornia" in c.where]
    assert len(kornia_noop) == 2 and [c for c in syncs.calls if c not in kornia_noop] == []


def test_state_resumes_exactly_between_two_moves(tmp_path):
    torch.manual_seed(0)
    outputs = [torch.randn(8, 1) + 0.5 for _ in range(11)]
    straight, split = ADA(p=0.3, interval=4, speed_kimg=0.1), ADA(p=0.3, interval=4, speed_kimg=0.1)
    for out in outputs:
        straight.observe(out)
    for out in outputs[:6]:  # stopped half-way through an interval
        split.observe(out)
    torch.save(split.state_dict(), tmp_path / "ada.pt")
    resumed = ADA(p=0.0, interval=4, speed_kimg=0.1)
    resumed.load_state_dict(torch.load(tmp_path / "ada.pt", weights_only=True))
    for out in outputs[6:]:
        resumed.observe(out)
    assert resumed.p.item() == straight.p.item() and resumed.p.item() != 0.3
    assert torch.equal(resumed.state_dict()["sign_sum"], straight.state_dict()["sign_sum"])


# ---- p from outside (a schedule) and the config
def test_p_is_settable_when_fixed_and_refused_while_adaptive():
    fixed = ADA(p=0.0, target=None)
    fixed.p = 0.55
    assert fixed.p.item() == pytest.approx(0.55)
    fixed.p = torch.tensor(0.25, dtype=torch.float64)
    assert fixed.p.dtype == torch.float32 and fixed.p.item() == 0.25
    with pytest.raises(ConfigError, match=r"augment.ada.target=0.6: .*set augment.ada.target=null"):
        ADA(target=0.6).p = 0.3


def test_ops_and_presets():
    assert ada.parse_ops("bgc") == ada.GEOMETRIC + ada.COLOUR
    assert ada.parse_ops("cutout, blit") == ("xflip", "rotate90", "xint", "cutout")  # in the order they act
    assert ada.parse_ops(["hue", "xflip"]) == ("xflip", "hue")
    with pytest.raises(ConfigError, match="augment.ada.ops: unknown rot"):
        ada.parse_ops("bgc,rot")


@pytest.mark.parametrize("shape", [(2,), (4, 8, 8), (2, 8, 8)])
def test_refuses_what_is_not_a_grey_or_rgb_image(shape):
    with pytest.raises(ConfigError, match=r"augment=ada works on images of 1 or 3 channels"):
        ADA().check(shape)


# ---- in a run
def test_a_run_with_ada_logs_p_and_r_t_and_saves_p(tmp_path, data_root):
    from helpers import scalars, train_in_process

    from ganrun import checkpoint

    result = train_in_process(tmp_path, data_root, "augment=ada", "augment.ada.interval=1",
                              "augment.ada.speed_kimg=0.016", steps=3)  # batch 16: p moves by 1 per D step
    run = tmp_path / "run"
    p, r_t = scalars(run, "augment/p"), scalars(run, "augment/r_t")
    assert sorted(p) == sorted(r_t) == [1, 2, 3]
    assert all(v in (0.0, 1.0) for v in p.values()) and all(-1 <= v <= 1 for v in r_t.values())
    saved = checkpoint.load(checkpoint.checkpoint_path(run, 3))["objective"]["augment"]["augment"]["0"]
    assert saved["p"].item() == p[3] == result.scalars["augment/p"]


@pytest.mark.slow
def test_a_resumed_run_continues_p_exactly(tmp_path, data_root):
    from helpers import scalars, straight_and_split

    straight, split = straight_and_split(tmp_path, data_root, "augment=ada", "augment.ada.interval=3",
                                         "augment.ada.speed_kimg=0.1", "augment.ada.p=0.5", steps=6, split_at=4)
    assert scalars(straight, "augment/p") == scalars(split, "augment/p")
    assert scalars(straight, "augment/r_t") == scalars(split, "augment/r_t")
    assert len(set(scalars(straight, "augment/p").values())) > 1  # p moved (by 48/100 per move)


def test_transforms_without_observe_or_state_add_nothing():
    from ganrun.augment import DiffAugment, InstanceNoise

    pipeline = Pipeline({"diffaugment": DiffAugment(), "noise": InstanceNoise()})
    assert pipeline.observe(torch.randn(4, 1)) == {} and pipeline.state_dict() == {}
    mixed = Pipeline({"noise": InstanceNoise(), "ada": ADA(p=0.25, target=None)})
    assert set(mixed.observe(torch.randn(4, 1))) == {"augment/p", "augment/r_t"} and set(mixed.state_dict()) == {"1"}
    fresh = Pipeline({"noise": InstanceNoise(), "ada": ADA(p=0.0, target=None)})
    fresh.load_state_dict(mixed.state_dict())
    assert fresh.transforms[1].p.item() == 0.25


# ---- a schedule of p (R3GAN's 0 -> 0.55 cosine) and its refusal with the adaptive rule on
P_SCHEDULE = "+schedules.aug={key:augment.ada.p,kind:cosine,start:0,end:0.55,unit:kimg,length:0.064}"


def test_a_scheduled_p_reaches_the_pipeline_and_tensorboard(tmp_path, data_root):
    from helpers import scalars, train_in_process

    from ganrun.schedules import value_at

    train_in_process(tmp_path, data_root, "augment=ada", "augment.ada.target=null", P_SCHEDULE, steps=4)
    expected = [value_at(s * 16 / 1000, "cosine", 0.0, 0.55, 0.064) for s in range(4)]  # batch 16: 0.016 kimg/step
    p, logged = scalars(tmp_path / "run", "augment/p"), scalars(tmp_path / "run", "schedule/aug")
    assert [p[s] for s in (1, 2, 3, 4)] == pytest.approx(expected, abs=1e-6)  # the p each D step drew with
    assert expected[1] == pytest.approx(0.55 * (1 - math.cos(math.pi / 4)) / 2) and 0 < expected[2] < 0.55
    assert logged[3] == pytest.approx(expected[3], abs=1e-6)


@pytest.mark.parametrize("schedule", [P_SCHEDULE,
                                      "+schedules.aug={key:augment.ada.p,kind:cosine,start:0,end:0.55,unit:kimg,"
                                      "length:20000}"])
def test_a_schedule_of_an_adaptive_p_is_refused_before_training(tmp_path, data_root, schedule):
    from helpers import train_in_process

    with pytest.raises(ConfigError) as refused:
        train_in_process(tmp_path, data_root, "augment=ada", schedule)  # target 0.6 (the default): adaptive
    message = str(refused.value)
    assert message.startswith("schedules.aug.key=augment.ada.p: the adaptive rule tunes p (augment.ada.target=0.6)")
    assert "augment.ada.target=null" in message and "\n" not in message
    assert not list(tmp_path.rglob("events.out.tfevents.*"))  # before training: nothing written


# ---- the draws: the reference's distributions (AugmentPipe's defaults), on a non-square image
def test_draws_follow_the_references_distributions():
    """At p = 1, n = 20000 draws on a 32 x 64 image: xflip and lumaflip 0/1 and rotate90 0..3 equally often;
    xint integers round(U(-1, 1) x size/8) per axis; scale, aniso 2^N(0, 0.2^2); rotate (both) and hue U(-pi, pi);
    xfrac N(0, (size/8)^2) px per axis; brightness N(0, 0.2^2); contrast 2^N(0, 0.5^2); saturation 2^N(0, 1);
    cutout's side 0.5 at a U[0, 1)^2 centre; the coordinates of one op independent. Tolerances: spreads 3%
    (their relative standard error is 0.5%), means >= 5 standard errors, frequencies 0.015 (sd 0.0035)."""
    torch.manual_seed(0)
    n, height, width = 20000, 32, 64
    d = ada.draw(ada.OPS, n, height, width, torch.tensor(1.0))

    def spread(v, mean, std):
        assert v.mean().item() == pytest.approx(mean, abs=5 * std / math.sqrt(n))
        assert v.std().item() == pytest.approx(std, rel=0.03)

    def uncorrelated(a, b):
        assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 0.05

    for op, choices in (("xflip", 2), ("rotate90", 4), ("lumaflip", 2)):
        for k in range(choices):
            assert (d[op] == k).float().mean().item() == pytest.approx(1 / choices, abs=0.015), (op, k)
        assert set(d[op].unique().tolist()) == set(range(choices))
    for axis, size in ((0, width), (1, height)):
        shift = d["xint"][:, axis]
        assert set(shift.unique().tolist()) == set(range(-size // 8, size // 8 + 1))  # integers, both ends
        assert shift.mean().item() == pytest.approx(0.0, abs=5 * size / 8 / math.sqrt(3 * n))
        spread(d["xfrac"][:, axis], 0.0, size / 8)
    uncorrelated(d["xint"][:, 0], d["xint"][:, 1])
    uncorrelated(d["xfrac"][:, 0], d["xfrac"][:, 1])
    for op, std in (("scale", 0.2), ("aniso", 0.2), ("contrast", 0.5), ("saturation", 1.0)):
        spread(torch.log2(d[op]), 0.0, std)
    spread(d["brightness"], 0.0, 0.2)
    for angle in (d["rotate"][:, 0], d["rotate"][:, 1], d["hue"]):
        assert -math.pi <= angle.min() < -math.pi + 0.01 and math.pi - 0.01 < angle.max() <= math.pi
        spread(angle, 0.0, math.pi / math.sqrt(3))
    uncorrelated(d["rotate"][:, 0], d["rotate"][:, 1])
    assert d["cutout"].shape == (n, 3) and (d["cutout"][:, 0] == 0.5).all()
    for centre in (d["cutout"][:, 1], d["cutout"][:, 2]):
        assert 0 <= centre.min() < 0.005 and 0.995 < centre.max() < 1
        spread(centre, 0.5, 1 / math.sqrt(12))
    uncorrelated(d["cutout"][:, 1], d["cutout"][:, 2])


def test_ada_draws_the_translations_for_the_images_height_and_width():
    """Through ADA's call on 8 x 32 images: integer shifts of up to 1 row and 4 columns (1/8 of each side), every
    one of them drawn; each output the reflected shift of its input (tolerance 1e-3 on values up to 256)."""
    torch.manual_seed(0)
    height, width = 8, 32
    where = 1 + torch.arange(height * width, dtype=torch.float32).reshape(1, 1, height, width)
    x = where.expand(800, 1, -1, -1)
    out = ADA("xint", p=1.0, target=None)(x, step=0)
    found = set()
    for o in out:
        source = round(o[0, height // 2, width // 2].item()) - 1  # the middle pixel reads an inside one
        ty, tx = height // 2 - source // width, width // 2 - source % width
        rows, cols = reflect(torch.arange(height) - ty, height), reflect(torch.arange(width) - tx, width)
        assert torch.allclose(o[0], where[0, 0][rows][:, cols], atol=1e-3)
        found.add((ty, tx))
    assert found == {(ty, tx) for ty in range(-1, 2) for tx in range(-4, 5)}


def test_cutout_keeps_pixel_centres_at_half_the_side_from_the_centre():
    """The reference's mask: a pixel is cut when its centre lies strictly within half the side of the square's
    centre along both axes (|(j + 0.5)/W - cx| < side/2); a 4 x 8 image with the centre on a pixel centre puts
    pixel centres exactly on the square's edges (all values exact in binary)."""
    x = torch.rand(1, 2, 4, 8) + 1
    out = ada.apply(x, {"cutout": torch.tensor([[0.5, 3.5 / 8, 2.5 / 4]])})  # side 4 columns and 2 rows
    inside = torch.zeros(4, 8, dtype=torch.bool)
    inside[2, 2:5] = True  # columns 1 and 5, rows 1 and 3: on the edge, kept
    assert torch.equal(out[0] == 0, inside.expand(2, -1, -1))
    assert torch.equal(out[0][:, ~inside], x[0][:, ~inside])


# ---- the class: its defaults, presets, refusals, devices
def test_defaults_are_the_shipped_config():
    from pathlib import Path

    from omegaconf import OmegaConf

    shipped = OmegaConf.to_container(OmegaConf.load(Path(ada.__file__).parents[1] / "conf/augment/ada.yaml"))["ada"]
    default = ADA()
    assert default.ops == ada.parse_ops(shipped["ops"]) and default._p.item() == shipped["p"]
    assert (default.target, default.interval, default.speed_kimg) == (shipped["target"], shipped["interval"],
                                                                      shipped["speed_kimg"])
    assert default.strengths == ada.parse_strengths(shipped["strengths"]) == {op: 1.0 for op in ada.OPS}


def test_presets_are_the_references_groups():
    assert ada.parse_ops("blit") == ("xflip", "rotate90", "xint")
    assert ada.parse_ops("geom") == ("scale", "rotate", "aniso", "xfrac")
    assert ada.parse_ops("color") == ("brightness", "contrast", "lumaflip", "hue", "saturation")
    assert ada.parse_ops("bg") == ada.parse_ops("blit,geom")
    assert ada.parse_ops("bgc") == ada.parse_ops("color, bg") == ada.OPS[:-1]
    assert ada.parse_ops("xfrac,cutout,xflip") == ("xflip", "xfrac", "cutout")


def test_only_p_under_the_adaptive_rule_refuses_a_schedule():
    assert "the adaptive rule tunes p (augment.ada.target=0.6)" in ADA(target=0.6).refuse_schedule("p")
    assert ADA(target=None).refuse_schedule("p") is None
    assert ADA(target=0.6).refuse_schedule("speed_kimg") is None
    assert ADA(target=None).refuse_schedule("speed_kimg") is None


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 6, 10)])
def test_grey_and_rgb_images_are_accepted(shape):
    ADA().check(shape)


def test_every_parameter_is_drawn_on_ps_device_never_on_the_host():
    """The draws follow p, which lives on the data's device: on a GPU, parameters drawn on the host would cost a
    copy per op and step ('meta' stands in for a second device on any CPU machine)."""
    drawn = ada.draw(ada.OPS, 4, 8, 6, torch.tensor(0.5, device="meta"))
    assert set(drawn) == set(ada.OPS)
    assert {op: value.device.type for op, value in drawn.items()} == {op: "meta" for op in ada.OPS}


def test_p_and_the_sum_follow_the_data_to_its_device_without_a_host_sync():
    """On the first observed batch p and the accumulated signs move to its device, asynchronously ('meta': a second
    device on any CPU machine); a p set from outside from a tensor makes no host sync either."""
    aug = ADA(p=0.3, interval=2, speed_kimg=0.01)
    with HostSyncCounter() as syncs:
        logs = aug.observe(torch.ones(4, 1, device="meta"))
    assert aug.p.device.type == aug._sign_sum.device.type == "meta"
    assert logs["augment/p"].device.type == "meta" and syncs.calls == []
    fixed = ADA(p=0.0, target=None)
    with HostSyncCounter() as syncs:
        fixed.p = torch.tensor(0.25, dtype=torch.float64)
    assert syncs.calls == [] and fixed.p.item() == 0.25


def test_a_move_counts_the_images_of_every_rank(monkeypatch):
    """The reference's step is batch_size x ada_interval over all GPUs: with 2 ranks (their r_t the same) p moves
    twice as far as on one."""
    from ganrun import distributed

    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    aug = ADA("bgc", p=0.5, target=0.6, interval=4, speed_kimg=0.64)  # 2 x 8 x 4 / 640 = 0.1
    observe_steps(aug, [2.0] * 7 + [-1.0], 4)
    assert aug.p.item() == pytest.approx(0.6, abs=1e-6)
