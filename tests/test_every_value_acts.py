"""Every configurable value is shown to act: for each key of each shipped group option (conf/GROUP/*.yaml), a
change of its value changes what is built as the key's definition says (`EFFECTS`, one entry per key).

A key in the YAML without an entry fails `test_every_shipped_key_has_an_expected_effect`: a new knob comes with
the test of what it does. Interpolated keys (`${..z_dim}`, `${dataset.resolution}`) are the knob they point to.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from helpers import every_shipped_config, train_in_process, write_png
from omegaconf import OmegaConf

import ganrun.conf
from ganrun.config import build, build_optimizer
from ganrun.data import decode_all, load_dataset
from ganrun.data.stream import BatchStream
from ganrun.errors import ConfigError
from ganrun.models import unet
from ganrun.models.conditioning import conditioning_terms
from ganrun.objective import GANObjective
from ganrun.regularizers import TermContext
from ganrun.validate import validate

GROUPS = ("dataset", "model", "loss", "regularizer", "optimizer", "scheduler", "augment", "task")
# Keys that interpolate the run length (their value is a knob of its own)
INTERPOLATED_KNOBS = {"augment.instance_noise.anneal_steps": "augment=instance_noise",
                      "scheduler.total_steps": "scheduler=linear"}


def shipped_keys() -> dict[str, str]:
    """Every leaf key a group option sets (not `_target_`, not interpolations) -> the first option setting it."""
    keys: dict[str, str] = {}

    def walk(node, prefix, choice):
        for k, v in node.items():
            if k in ("defaults", "_target_", "_partial_"):
                continue
            key = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict) and v:
                walk(v, key, choice)
            elif not (isinstance(v, str) and "${" in v):
                keys.setdefault(key, choice)

    conf = Path(ganrun.conf.__path__[0])
    for group in GROUPS:
        for path in sorted(conf.joinpath(group).glob("*.yaml")):
            raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
            walk(raw, "" if "@package _global_" in path.read_text() else group, f"{group}={path.stem}")
    return {**keys, **INTERPOLATED_KNOBS}


def at(choice: str, **values):
    """A copy of the shipped config of `choice` with dotted keys (`__` for `.`) set to values."""
    cfg = copy.deepcopy(dict(every_shipped_config())[choice])
    for key, value in values.items():
        OmegaConf.update(cfg, key.replace("__", "."), value, merge=False)
    return cfg


# ---- regularizers: d_term on a fixed critic
def _ctx(critic, d_step=0, real=None, fake=None):
    g = torch.Generator().manual_seed(0)
    real = torch.rand(6, 3, 8, 8, generator=g) * 2 - 1 if real is None else real
    fake = torch.rand(6, 3, 8, 8, generator=g) * 2 - 1 if fake is None else fake
    discriminator = critic if isinstance(critic, nn.Module) else nn.Linear(1, 1)
    return TermContext(critic=critic, discriminator=discriminator, real=real, fake=fake, d_step=d_step,
                       real_out=critic(real), fake_out=critic(fake))  # D's outputs: LeCam reads them


def _linear_critic(seed=1):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1), nn.Flatten(0))


def _term(node, critic=None, d_step=0):
    reg = build(node)
    torch.manual_seed(0)  # GP, DRAGAN and bCR draw their points
    out = reg.d_term(_ctx(critic or _linear_critic(), d_step))
    return None if out is None else float(out.detach())


def reg_path(choice, key):
    return key.rsplit(".", 1)[0]


def weight_scales_the_term(choice, key):
    one, three = (_term(OmegaConf.select(at(choice, **{key: w}), reg_path(choice, key))) for w in (1.0, 3.0))
    assert one and three == pytest.approx(3 * one)
    assert _term(OmegaConf.select(at(choice, **{key: 0.0}), reg_path(choice, key))) is None  # weight 0: off


def every_applies_one_step_in_n_scaled_by_n(choice, key):
    node = lambda n: OmegaConf.select(at(choice, **{key: n}), reg_path(choice, key))  # noqa: E731
    assert _term(node(3), d_step=3) == pytest.approx(3 * _term(node(1), d_step=3))
    assert _term(node(3), d_step=4) is None and _term(node(1), d_step=4) is not None


def gp_center_is_the_target_norm(choice, key):
    critic = _linear_critic()
    norm = critic[1].weight.norm().item()  # a linear critic's input gradient norm, at every point
    for center in (0.0, 1.0, 2.5):
        node = OmegaConf.select(at(choice, **{key: center}), reg_path(choice, key))
        assert _term(node, critic) == pytest.approx(node.weight * (norm - center) ** 2, rel=1e-5)


def gp_one_sided_penalises_only_norms_above_the_center(choice, key):
    critic = _linear_critic()
    center = critic[1].weight.norm().item() + 1.0  # every norm is below the center
    two = OmegaConf.select(at(choice, **{key: False, "regularizer.gp.center": center}), reg_path(choice, key))
    one = OmegaConf.select(at(choice, **{key: True, "regularizer.gp.center": center}), reg_path(choice, key))
    assert _term(two, critic) == pytest.approx(two.weight * 1.0, rel=1e-5) and _term(one, critic) == 0.0


def dragan_spread_scales_the_perturbation(choice, key):
    def quadratic(x):  # gradient 2x: the penalty reads the perturbed points themselves
        return x.pow(2).flatten(1).sum(1)

    real = _ctx(quadratic).real
    at_real = (2 * real.flatten(1).norm(dim=1) - 1).pow(2).mean().item()
    for spread, same in ((0.0, True), (0.5, False)):
        node = OmegaConf.select(at(choice, **{key: spread}), reg_path(choice, key))
        value = _term(node, quadratic) / node.weight
        assert (value == pytest.approx(at_real, rel=1e-5)) is same


def bcr_side_weight_scales_its_side(choice, key):
    other = "fake_weight" if key.endswith("real_weight") else "real_weight"
    node = lambda w: OmegaConf.select(at(choice, **{key: w, f"regularizer.bcr.{other}": 0.0}),  # noqa: E731
                                      reg_path(choice, key))
    assert _term(node(1.0)) > 0 and _term(node(4.0)) == pytest.approx(4 * _term(node(1.0)), rel=1e-5)
    assert _term(node(0.0)) == 0.0


def bcr_flip_prob_is_the_flip_probability(choice, key):
    critic = _linear_critic()
    ctx = _ctx(critic)
    flipped = [(critic(x) - critic(x.flip(3))).pow(2).mean().item() for x in (ctx.real, ctx.fake)]
    for p, expected in ((0.0, 0.0), (1.0, 10 * flipped[0] + 10 * flipped[1])):
        node = OmegaConf.select(at(choice, **{key: p, "regularizer.bcr.translation": 0.0}), reg_path(choice, key))
        assert _term(node, critic) == pytest.approx(node.weight * expected, rel=1e-4, abs=1e-9)


def bcr_translation_moves_the_images(choice, key):
    node = lambda t: OmegaConf.select(at(choice, **{key: t, "regularizer.bcr.flip_prob": 0.0}),  # noqa: E731
                                      reg_path(choice, key))
    assert _term(node(0.0)) == 0.0 and _term(node(0.25)) > 0.0


def through_augment_is_the_gradient_of_d_after_the_augmentation(choice, key):
    """true: the penalty of x -> D(augment(x)) at the un-augmented batches; false: of D at the augmented ones."""
    critic = _linear_critic()
    raw = _ctx(critic)
    ctx = TermContext(critic=critic, discriminator=critic, real=2 * raw.real, fake=2 * raw.fake,
                      augment=lambda x: 2 * x, unaugmented_real=raw.real, unaugmented_fake=raw.fake)
    composed = _ctx(lambda x: critic(2 * x), real=raw.real, fake=raw.fake)  # D after x -> 2x, by hand

    def term(value, context):
        reg = build(OmegaConf.select(at(choice, **{key: value}), reg_path(choice, key)))
        torch.manual_seed(0)  # GP and DRAGAN draw their points
        return float(reg.d_term(context).detach())

    assert term(True, ctx) == pytest.approx(term(True, composed), rel=1e-5)
    assert term(False, ctx) == pytest.approx(term(True, _ctx(critic, real=ctx.real, fake=ctx.fake)), rel=1e-5)
    assert term(True, ctx) != pytest.approx(term(False, ctx), rel=1e-2)


def lecam_decay_is_the_memory_of_the_averages(choice, key):
    outputs = [(torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])),
               (torch.tensor([0.0, 0.5]), torch.tensor([1.0, 2.0]))]
    for decay in (0.0, 0.5, 0.99):
        reg = build(OmegaConf.select(at(choice, **{key: decay}), reg_path(choice, key)))
        for real, fake in outputs:
            alpha = reg.update(real, fake)
        weights = torch.tensor([decay * (1 - decay), 1 - decay]) / (1 - decay ** 2)  # debiased: sum to 1
        expected = [weights @ torch.stack([first.mean(), second.mean()]) for first, second in zip(*outputs)]  # R, F
        assert alpha.tolist() == pytest.approx([e.item() for e in expected], rel=1e-5)


def clip_value_bounds_every_weight(choice, key):
    for c in (0.01, 0.003):
        cfg = at(choice, **{key: c})
        node = OmegaConf.select(cfg, reg_path(choice, key))
        critic = _linear_critic()
        build(node).after_d_step(critic)
        assert max(p.abs().max().item() for p in critic.parameters()) == pytest.approx(c)


# ---- losses
def sigmoid_target(choice, key):
    loss = build(at(choice, **{key: 0.3, **({"loss.real_label": 0.7} if key.endswith("flip_prob") else {})}).loss)
    logits = torch.linspace(-2, 2, 4000)
    if key.endswith("flip_prob"):  # each real target swapped for the fake one with this probability
        targets = loss.d_targets(logits, real=True)
        assert targets.unique().tolist() == pytest.approx([0.0, 0.7])
        assert (targets == loss.fake_label).float().mean().item() == pytest.approx(0.3, abs=0.03)
        return
    real = key.endswith("real_label")
    assert torch.all(loss.d_targets(logits, real=real) == 0.3)
    fixed = torch.full_like(logits, loss.fake_label if real else loss.real_label)
    expected = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 0.3)) + \
        F.binary_cross_entropy_with_logits(logits, fixed)
    assert float(loss.d_loss(logits, logits)) == pytest.approx(float(expected), rel=1e-5)


def carried_regularizers_are_the_losss(choice, key):
    added = {"r1": {"_target_": "ganrun.regularizers.R1", "weight": 2.0, "every": 1}}
    assert build(at(choice).loss).regularizers == {}
    assert list(build(at(choice, **{key: added}).loss).regularizers) == ["r1"]


def carried_penalty_weight(choice, key):
    node = OmegaConf.select(at(choice), key.rsplit(".", 1)[0])
    assert node is not None
    weight_scales_the_term(choice, key)


def n_critic_and_labels_act_in_a_run(choice, key, tmp_path, data_root, monkeypatch):
    calls = []
    d_loss = GANObjective.d_loss
    monkeypatch.setattr(GANObjective, "d_loss", lambda self, *a, **k: calls.append(1) or d_loss(self, *a, **k))
    train_in_process(tmp_path, data_root, "trainer.n_critic=3", "model.name=mine", "dataset.name=theirs", steps=2)
    assert len(calls) == 6
    log = next((tmp_path / "run").rglob("*.log"), None)
    assert log is None or "mine/theirs" in log.read_text()


def discriminator_norm_from_the_loss(choice, key):
    assert any(isinstance(m, nn.GroupNorm) for m in build(at(choice).model.discriminator).modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in build(at(choice, **{key: "batch"}).model.discriminator).modules())


# ---- models
NORM_LAYERS = {"batch": (nn.BatchNorm2d, nn.BatchNorm1d), "instance": (nn.InstanceNorm2d,),
               "layer": (nn.GroupNorm, nn.LayerNorm)}


def _net(choice, key, value):
    part = "discriminator" if ".discriminator." in key else "generator"
    return build(OmegaConf.select(at(choice, **{key: value}), f"model.{part}"))


def norm_is_the_layer(choice, key):
    choices = ("batch", "layer", "none") if "mlp" in choice else ("batch", "instance", "layer", "none")
    for norm in choices:
        found = {kind for kind, types in NORM_LAYERS.items() for m in _net(choice, key, norm).modules()
                 if isinstance(m, types)}
        assert found == (set() if norm == "none" else {norm}), norm


def weight_param_is_the_parametrization(choice, key):
    for kind, name in (("spectral", "_SpectralNorm"), ("weight", "_WeightNorm"), ("none", None)):
        found = {type(p).__name__ for m in _net(choice, key, kind).modules() if hasattr(m, "parametrizations")
                 for p in m.parametrizations.weight}
        assert found == (set() if name is None else {name}), kind


def width_is_the_channel_count(choice, key):
    width = 24 if "r3gan" in choice else 12  # R3GAN: a multiple of group_size 16 / expansion 2
    net = _net(choice, key, width)
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert width in {c.out_channels for c in convs} | {c.in_channels for c in convs}
    if "r3gan" in choice:  # every stage: the 1x1 convs out of the blocks have `width` channels
        assert {c.out_channels for c in convs if c.kernel_size == (1, 1) and c.in_channels == 2 * width} == {width}
    if "dcgan" in choice:  # G's last hidden map and D's first conv have `width` channels
        assert (convs[-1].in_channels if "generator" in key else convs[0].out_channels) == 12
    if "resnet" in choice:  # null: the paper's widths at 32 px, G 256 and D 128
        paper = _net(choice, key, None)
        widths = {m.out_channels for m in paper.modules() if isinstance(m, nn.Conv2d)}
        assert (256 if "generator" in key else 128) in widths


def hidden_are_the_layer_sizes(choice, key):
    sizes = [m.out_features for m in _net(choice, key, [7, 5]).modules() if isinstance(m, nn.Linear)]
    assert sizes[:2] == [7, 5] and len(sizes) == 3


def depth_is_the_unet_levels(choice, key):
    """pix2pix's U-Net: `depth` encoder levels (null: down to 1x1, 5 at 32 px), each halving the size."""
    assert len(_net(choice, key, None).downs) == 5
    G = _net(choice, key, 3)
    assert len(G.downs) == len(G.ups) == 3 and G(torch.randn(2, 1, 32, 32)).shape == (2, 1, 32, 32)


def dropout_is_the_decoder_dropout(choice, key):
    rates = [m.p for m in _net(choice, key, 0.3).modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.3] * 3
    assert not any(isinstance(m, nn.Dropout) for m in _net(choice, key, 0.0).modules())


def n_layers_is_the_patch_size(choice, key):
    """The PatchGAN's stride-2 layers: 3 of them (70x70 patches) score 2x2 patches of a 32 px image, 1 (16x16) 14x14."""
    from ganrun.models.patchgan import receptive_field

    for n_layers, patches, field in ((3, 4, 70), (1, 196, 16)):
        D = _net(choice, key, n_layers).eval()
        strided = [m for m in D.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
        assert len(strided) == n_layers and receptive_field(n_layers) == field
        assert D(torch.randn(2, 1, 32, 32)).shape == (2, patches)


def num_residual_is_the_block_count(choice, key):
    """Johnson et al.'s transformation network: `num_residual` residual blocks at a quarter of the resolution."""
    from ganrun.models.transformer_net import ResidualBlock

    for count in (0, 3):
        G = _net(choice, key, count)
        assert sum(isinstance(m, ResidualBlock) for m in G.modules()) == count
        assert G(torch.randn(2, 1, 28, 28)).shape == (2, 1, 28, 28)


def z_dim_is_gs_input(choice, key):
    G = build(at(choice, **{key: 13}).model.generator)
    assert G(torch.randn(2, 13)).shape[0] == 2
    with pytest.raises(RuntimeError):
        G(torch.randn(2, 14))


def conditioning_needs_labels(choice, key):
    assert build(at(choice).model.generator).num_classes == 0
    G = build(at(choice, **{key: "concat"}).model.generator)
    assert G.num_classes == 10 and G(torch.randn(2, G.z_dim), torch.tensor([1, 2])).shape[0] == 2


def acgan_weight_scales_the_class_terms(choice, key):
    D = build(at(choice, **{key: 2.5, "model.conditioning": "acgan"}).model.discriminator)
    term = conditioning_terms(D, at(choice, **{key: 2.5}).model.acgan_weight)["acgan_class"]
    logits, labels = torch.randn(4, 10), torch.tensor([0, 3, 9, 1])
    ctx = TermContext(critic=None, discriminator=D, real=None, fake=torch.zeros(1), labels=labels,
                      real_classes=logits, fake_classes=logits.flip(0))
    assert float(term.g_term(ctx)) == pytest.approx(2.5 * float(F.cross_entropy(logits.flip(0), labels)))


def model_name_is_a_label(choice, key):  # shown in the run log: n_critic_and_labels_act_in_a_run
    assert at(choice, **{key: "mine"}).model.name == "mine"


# ---- tasks (ganrun/tasks.py; their definitions are tested in tests/test_tasks.py)
def _task(choice, key, value):
    return build(at(choice, **{key: value}).task)


def _pix2pix(choice, **values):
    """The config of `choice` (a task) with model=pix2pix, `values` set."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("ganrun.conf", version_base="1.3"):
        cfg = compose("config", overrides=[choice, "model=pix2pix", "model.generator.width=4",
                                           "model.discriminator.width=4"])
    for key, value in values.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return cfg


def task_name_is_a_label(choice, key):
    if "generate" in choice:  # its refusal names it
        with pytest.raises(ConfigError, match="task=mine: ganrun.models.unet.Generator maps images"):
            build(at(choice, **{key: "mine"}).task).check_shapes(unet.Generator(32, 1, width=4), None, None, 1, "cpu")
        return
    with pytest.raises(ConfigError, match="^task=mine: model.conditioning=concat"):
        validate(at(choice, **{key: "mine", "model.conditioning": "concat"}))


def paired_is_what_d_sees(choice, key):
    """paired: D scores (input, output) pairs, its first conv taking both; a paired task cannot be unpaired."""
    from ganrun.models.patchgan import Discriminator

    D = build(_pix2pix(choice).model.discriminator)
    assert isinstance(D, Discriminator) and D.paired == (choice != "task=generate")
    assert D.net[0].in_channels == (1 if choice == "task=generate" else 2)
    if choice != "task=generate":
        with pytest.raises(ConfigError, match="task.paired=False is not one of true"):
            validate(at(choice, **{key: False}))


def extra_channels_are_gs_extra_inputs(choice, key):
    """inpaint's 1 is the mask channel: G's and D's first convs take it; a count its degradation does not make is
    refused."""
    G = build(_pix2pix(choice).model.generator)
    assert G.downs[0][0].in_channels == 1 + (choice == "task=inpaint")
    with pytest.raises(ConfigError, match="extra input channel"):
        _task(choice, key, 2)


def factor_is_the_shrink(choice, key):
    x = torch.randn(1, 1, 32, 32)
    for factor in (2, 4):
        assert _task(choice, key, factor).degradation.low(x).shape == (1, 1, 32 // factor, 32 // factor)


def reconstruction_is_the_norm(choice, key):
    output, target = torch.tensor([[0.5, -0.5]]), torch.tensor([[0.0, 0.5]])
    assert _task(choice, key, "l1").reconstruction_loss(output, target).item() == pytest.approx(0.75)
    assert _task(choice, key, "l2").reconstruction_loss(output, target).item() == pytest.approx(0.625)


def reconstruction_weight_scales_the_term(choice, key):
    torch.manual_seed(0)
    cfg = _pix2pix(choice, **{key: 0.0})
    G, D = build(cfg.model.generator), build(cfg.model.discriminator)
    totals, target = [], torch.rand(2, 1, 32, 32) * 2 - 1
    for weight in (0.0, 10.0):
        task = build(_pix2pix(choice, **{key: weight}).task)
        objective = task.objective(G, D, build(cfg.loss), {}, None, 1, None, True)
        torch.manual_seed(1)  # the same dropout draws
        d_step = objective.d_loss(target, task.degradation(target, torch.Generator().manual_seed(0)), 0, 0)
        g_step = objective.g_loss(2, 0, d_step)
        totals.append((g_step.total.item(), g_step.logs["loss/G_reconstruction"].item()))
    assert totals[1][0] == pytest.approx(totals[0][0] + 10 * totals[1][1], rel=1e-4)


def eval_samples_is_the_evaluation_set(choice, key, tmp_path, data_root):
    from ganrun.data import load_dataset
    from ganrun.task_report import EvalPairs

    cfg = at(choice, **{key: 5, "dataset.source.root": str(data_root), "dataset.source.download": False})
    source, _ = load_dataset(cfg.dataset)
    pairs = EvalPairs(build(cfg.task), cfg.dataset, source, "cpu", 0, 4)
    assert len(pairs.targets) == len(pairs.inputs) == 5


def shape_is_the_hole_kind(choice, key):
    torch.manual_seed(0)
    rect = _task(choice, key, "rectangle").degradation.mask(50, 32, 32, "cpu")[:, 0]
    assert torch.all(rect.sum((1, 2)) == rect.amax(2).sum(1) * rect.amax(1).sum(1))  # solid boxes
    free = _task(choice, key, "freeform").degradation.mask(50, 32, 32, "cpu")[:, 0]
    assert torch.any(free.sum((1, 2)) != free.amax(2).sum(1) * free.amax(1).sum(1))  # strokes are not


def size_bounds_the_holes(choice, key):
    torch.manual_seed(0)
    value = 0.125 if key.endswith("max_size") else 0.75
    other = {"task.degradation.min_size": 0.125} if key.endswith("max_size") else {"task.degradation.max_size": 0.75}
    degradation = build(at(choice, **{key: value, **other}).task).degradation
    heights = degradation.mask(200, 32, 32, "cpu")[:, 0].amax(2).sum(1)
    assert torch.all(heights == (4 if key.endswith("max_size") else 24))


def fill_is_the_hole_value(choice, key):
    torch.manual_seed(0)
    out = _task(choice, key, -0.25).degradation(torch.ones(4, 1, 16, 16))
    assert torch.all(out[:, 0][out[:, 1] == 1] == -0.25)


def sigma_is_the_noise_std(choice, key):
    torch.manual_seed(0)
    x = torch.zeros(50, 1, 64, 64)
    assert _task(choice, key, 0.15).degradation(x).std().item() == pytest.approx(0.3, rel=0.02)


# ---- optimizers: one step on a known gradient
def _stepped(choice, key, value, steps=1):
    p = nn.Parameter(torch.zeros(3))
    opt = build_optimizer(OmegaConf.select(at(choice, **{key: value}), key.rsplit(".", 1)[0]), [p], "optimizer")
    for _ in range(steps):
        opt.zero_grad()
        (p * torch.tensor([1.0, -2.0, 0.5])).sum().backward()
        opt.step()
    return p.detach(), opt


def lr_is_the_step_size(choice, key):
    one, _ = _stepped(choice, key, 1e-3)
    two, _ = _stepped(choice, key, 2e-3)
    assert torch.allclose(two, 2 * one) and one.abs().sum() > 0


def betas_are_the_moment_decays(choice, key):
    _, opt = _stepped(choice, key, [0.25, 0.5])
    state = next(iter(opt.state.values()))
    grad = torch.tensor([1.0, -2.0, 0.5])
    assert torch.allclose(state["exp_avg"], 0.75 * grad) and torch.allclose(state["exp_avg_sq"], 0.5 * grad ** 2)


def momentum_is_the_velocity_decay(choice, key):
    _, opt = _stepped(choice, key, 0.25, steps=2)
    grad = torch.tensor([1.0, -2.0, 0.5])
    assert torch.allclose(next(iter(opt.state.values()))["momentum_buffer"], 0.25 * grad + grad)


# ---- scheduler
def _factor(choice, **values):
    sched = build(at(choice, trainer__steps=20, **values).scheduler)(
        torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0))
    return lambda step: sched.apply(step)  # the lr set for that step, of a base lr of 1


def decay_is_the_curve(choice, key):
    for decay, at_middle in (("constant", 1.0), ("linear", 0.5), ("cosine", 0.5)):
        f = _factor(choice, **{key: decay, "scheduler.final_factor": 0.0})
        assert (f(10), f(20)) == pytest.approx((at_middle, 1.0 if decay == "constant" else 0.0))
    assert _factor(choice, **{key: "cosine"})(5) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def final_factor_is_the_end(choice, key):
    f = _factor(choice, **{key: 0.3, "scheduler.decay": "linear"})
    assert f(20) == pytest.approx(0.3) and f(10) == pytest.approx(0.65)


def warmup_steps_ramp_up(choice, key):
    f = _factor(choice, **{key: 4})
    assert [f(s) for s in (0, 2, 4)] == pytest.approx([0.01, 0.505, 1.0])
    assert _factor(choice, **{key: 0})(0) == 1.0


def total_steps_is_where_the_decay_ends(choice, key):
    f = _factor(choice, **{key: 10, "scheduler.final_factor": 0.0})
    assert f(5) == pytest.approx(0.5) and f(10) == 0.0


# ---- augmentations
def _augmented(choice, key, value, step=0):
    transforms = build(at(choice, **{key: value}).augment)
    torch.manual_seed(0)
    x = torch.rand(16, 3, 16, 16) * 2 - 1
    return x, list(transforms.values())[0](x, step)


def policy_is_the_ops(choice, key):
    x, same = _augmented(choice, key, "")
    assert torch.equal(same, x)
    x, cut = _augmented(choice, key, "cutout")  # zeroes a square, keeps every other pixel
    kept = cut != 0
    assert torch.equal(cut[kept], x[kept]) and 0.05 < (~kept).float().mean().item() <= 0.25  # <= half the side
    x, colour = _augmented(choice, key, "color")
    assert not torch.allclose(colour.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3)), torch.zeros(16), atol=1e-3)


def noise_std_is_the_noise_std(choice, key):
    x, noisy = _augmented(choice, key, 0.3)
    assert (noisy - x).std().item() == pytest.approx(0.3, rel=0.05)


def anneal_steps_reach_zero(choice, key):
    transforms = build(at(choice, **{key: 10}).augment)
    noise = transforms["instance_noise"]
    assert [noise.sigma(s) for s in (0, 5, 10, 20)] == pytest.approx([0.1, 0.05, 0.0, 0.0])
    assert build(at(choice, **{key: 0}).augment)["instance_noise"].sigma(20) == pytest.approx(0.1)



def _ada(choice, **values):
    return build(at(choice, **{k.replace(".", "__"): v for k, v in values.items()}).augment)["ada"]


def ada_ops_are_the_ops(choice, key):
    torch.manual_seed(0)
    x = torch.rand(64, 3, 8, 8) * 2 - 1
    flipped = _ada(choice, **{key: "xflip", "augment.ada.p": 1.0})(x, 0)  # each sample as is or mirrored, half each
    mirrored = torch.isclose(flipped, x.flip(3), atol=1e-5).flatten(1).all(1)
    assert (mirrored | flipped.flatten(1).eq(x.flatten(1)).all(1)).all() and 16 < mirrored.sum() < 48
    brighter = _ada(choice, **{key: "brightness", "augment.ada.p": 1.0})(x, 0) - x  # one shift per sample
    assert torch.allclose(brighter, brighter.mean((1, 2, 3), keepdim=True).expand_as(x), atol=1e-5)
    assert brighter.flatten(1)[:, 0].std() > 0.1


def ada_p_is_each_ops_probability(choice, key):
    torch.manual_seed(0)
    x = torch.rand(400, 3, 8, 8) * 2 - 1
    assert torch.equal(_ada(choice, **{key: 0.0})(x, 0), x)
    changed = ~torch.isclose(_ada(choice, **{key: 0.3, "augment.ada.ops": "brightness"})(x, 0), x).flatten(1).all(1)
    assert changed.float().mean().item() == pytest.approx(0.3, abs=0.07)


def _observed(ada, signs, times):
    for _ in range(times):
        ada.observe(torch.tensor(signs, dtype=torch.float32)[:, None])
    return ada.p.item()


def ada_target_is_where_r_t_settles(choice, key):
    r_half = [1.0, 1.0, 1.0, -1.0]  # E[sign] = 0.5
    values = {"augment.ada.p": 0.5, "augment.ada.interval": 1}
    assert _observed(_ada(choice, **{key: 0.4}, **values), r_half, 1) > 0.5  # r_t above the target: p rises
    assert _observed(_ada(choice, **{key: 0.6}, **values), r_half, 1) < 0.5
    assert _observed(_ada(choice, **{key: None}, **values), r_half, 1) == 0.5  # null: p fixed


def ada_interval_is_d_steps_per_move(choice, key):
    for interval in (2, 3):
        ada = _ada(choice, **{key: interval, "augment.ada.p": 0.5})
        assert _observed(ada, [1.0] * 4, interval - 1) == 0.5 and _observed(ada, [1.0] * 4, 1) > 0.5


def ada_speed_is_kimg_from_0_to_1(choice, key):
    for kimg in (0.1, 0.4):  # 4 images x interval 4 = 16 images a move
        ada = _ada(choice, **{key: kimg, "augment.ada.p": 0.0, "augment.ada.interval": 4})
        assert _observed(ada, [1.0] * 4, 4) == pytest.approx(16 / (kimg * 1000))



IDENTITY = {"scale": 1.0, "aniso": 1.0, "contrast": 1.0, "saturation": 1.0}  # the other ops' identity: 0


def ada_strength_scales_its_ops_probability(choice, key):
    """augment.ada.strengths.OP: OP acts at p x strength (R3GAN: 0.5 for the colour ops). The rate at strength 0.5
    is half the rate at 1 (n = 8000 draws at p = 0.8: tolerance 0.08 on the ratio, about 4 sd)."""
    from ganrun import ada as ada_module

    op, n = key.rsplit(".", 1)[1], 8000

    def rate(strength):
        torch.manual_seed(0)
        built = _ada(choice, **{key: strength, "augment.ada.ops": op})
        params = ada_module.draw(built.ops, n, 32, 32, torch.tensor(0.8), built.strengths)[op]
        params = params[:, :1] if op == "cutout" else params  # its side; the centre is drawn always
        return (params != IDENTITY.get(op, 0.0)).reshape(n, -1).any(1).float().mean().item()

    assert rate(0.5) / rate(1.0) == pytest.approx(0.5, abs=0.08) and rate(0.0) == 0.0


# ---- datasets (tiny files written by the tests)
def _info(cfg):
    source, info = load_dataset(cfg.dataset, cfg.metrics.cache_dir)
    return source, info


def image_dataset(choice, key, tmp_path, data_root):
    def cfg(**values):
        return at(choice, dataset__source__root=str(data_root), **values)

    if key == "dataset.channels":
        assert _info(cfg(**{key: 3}))[1].sample_shape == (3, 32, 32)
        assert _info(cfg(**{key: 1}))[1].sample_shape == (1, 32, 32)
    elif key == "dataset.resolution":
        assert _info(cfg(**{key: 28}))[1].sample_shape == (1, 28, 28)
    elif key == "dataset.resize":
        padded = decode_all(_info(cfg(**{key: "pad"}))[0], 32, 1, 0)[0]
        resized = decode_all(_info(cfg(**{key: "resize"}))[0], 32, 1, 0)[0]
        assert padded[:, :, :2].abs().sum() == 0 and resized[:, :, :2].abs().sum() > 0  # a zero border: pad
    elif key == "dataset.num_classes":  # the classes a conditional model takes; the labels (0..9) must fit
        conditional = cfg(**{key: 12, "model.conditioning": "concat"})
        assert _info(conditional)[1].num_classes == 12 and build(conditional.model.generator).num_classes == 12
        with pytest.raises(ConfigError, match=r"outside 0..6 \(dataset.num_classes=7\)"):
            _info(cfg(**{key: 7}))
    elif key == "dataset.in_memory":
        source = _info(cfg())[0]
        for value in (True, False):
            stream = BatchStream(source, 32, 1, 8, 0, torch.device("cpu"), value, 0)
            assert stream.in_memory is value
    elif key == "dataset.source.train":
        train, test = (decode_all(_info(cfg(**{key: v}))[0], 32, 1, 0)[0] for v in (True, False))
        assert not torch.equal(train, test)  # t10k-* files: the test split
    elif key == "dataset.source.download":
        with pytest.raises(ConfigError, match="skipped: dataset.source.download=false"):
            _info(at(choice, dataset__source__root=str(tmp_path / "nothing"), **{key: False}))
        offline = RuntimeError("offline (test)")  # never the network: the download is replaced by a refusal
        with mock.patch.object(torchvision.datasets.MNIST, "download", side_effect=offline) as download, \
                pytest.raises(ConfigError, match=r"downloading with torchvision .* \(failed: offline \(test\)\)"):
            _info(at(choice, dataset__source__root=str(tmp_path / "nothing"), **{key: True}))
        assert download.called
    elif key == "dataset.name":  # a label: shown in the run log (n_critic_and_labels_act_in_a_run)
        assert _info(cfg(**{key: "theirs"}))[1].name == "theirs"


def folder_dataset(choice, key, tmp_path, data_root):
    for i in range(3):
        write_png(tmp_path / "images" / f"{i}.png", size=(16, 16), mode="RGB", seed=i)
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png")
    if key == "dataset.path":
        with pytest.raises(ConfigError, match="broken.png"):
            _info(at(choice, **{key: str(tmp_path / "images")}))
        (tmp_path / "images" / "broken.png").unlink()
        assert len(_info(at(choice, **{key: str(tmp_path / "images")}))[0]) == 3
    elif key == "dataset.in_memory_gb":  # past it, a prepared file (memory-mapped) instead of a tensor in memory
        (tmp_path / "images" / "broken.png").unlink()
        values = {"dataset.path": str(tmp_path / "images"), "dataset.resolution": 8, "metrics.cache_dir": str(tmp_path)}
        assert _info(at(choice, **values, **{key: 4}))[0].prepared is None
        prepared = _info(at(choice, **values, **{key: 1e-7}))[0].prepared  # 3 x 3 x 8 x 8 bytes > 1e-7 GiB
        assert prepared is not None and prepared.startswith(str(tmp_path / "prepared"))
    else:  # skip_unreadable
        with pytest.raises(ConfigError, match="broken.png"):
            _info(at(choice, dataset__path=str(tmp_path / "images"), **{key: False}))
        assert len(_info(at(choice, dataset__path=str(tmp_path / "images"), **{key: True}))[0]) == 3


def toy_dataset(choice, key, tmp_path, data_root):
    def mixture(**values):
        return build(at(choice, **values).dataset.source)

    if key == "dataset.source.layout":
        ring, grid = mixture(**{key: "ring", "dataset.source.num_modes": 9}), mixture(**{key: "grid",
                                                                                          "dataset.source.num_modes": 9})
        assert torch.allclose(ring.modes.norm(dim=1), torch.full((9,), ring.modes.norm(dim=1)[0].item()))
        assert sorted(set(grid.modes[:, 0].tolist())) == pytest.approx([-grid.modes.max().item(), 0.0,
                                                                        grid.modes.max().item()])
    elif key == "dataset.source.num_modes":
        assert len(mixture(**{key: 16}).modes) == 16
    elif key == "dataset.source.scale":  # ring radius, grid spacing
        m = mixture(**{key: 3.0}).modes
        assert (m.norm(dim=1).max().item() if "ring" in choice else (m[1] - m[0]).norm().item()) == pytest.approx(3.0)
    elif key == "dataset.source.std":
        points, _ = mixture(**{key: 0.1}).sample(20000)
        modes = mixture().modes
        assert (points - modes[torch.cdist(points, modes).argmin(1)]).std().item() == pytest.approx(0.1, rel=0.05)
    elif key == "dataset.source.num_eval_samples":
        report = mixture(**{key: 123}).evaluate(lambda n: torch.zeros(n, 2), 0)
        assert report["protocol"]["n_generated"] == 123
    elif key == "dataset.source.min_per_mode":
        on_one_mode = mixture().modes[:1].repeat(3, 1)
        assert mixture(**{key: 3}).score(on_one_mode)["modes_covered"] == 1
        assert mixture(**{key: 4}).score(on_one_mode)["modes_covered"] == 0
    elif key == "dataset.shape":
        assert _info(at(choice))[1].sample_shape == (2,)
    elif key == "dataset.generator_output":
        for output, squashed in (("linear", False), ("tanh", True)):
            G = build(at(choice, **{key: output}, model=at("model=mlp").model).model.generator)
            out = G(torch.randn(64, G.z_dim) * 100)
            assert (out.abs().max().item() <= 1.0) is squashed


# ---- the feature-network losses: SRGAN's perceptual term (paired tasks) and task=style (ganrun/perceptual.py)
def _style_root(tmp_path, count=2):
    from PIL import Image

    folder = tmp_path / f"styles{count}"
    folder.mkdir(exist_ok=True)
    for i in range(count):
        Image.fromarray((torch.rand(40, 40) * 255).byte().numpy()).save(folder / f"s{i}.png")
    return str(folder)


def _offline(**values):
    return {"task.features.download": False, **values}


def adversarial_weight_scales_the_term(choice, key):
    torch.manual_seed(0)
    cfg = _pix2pix(choice)
    G, D = build(cfg.model.generator), build(cfg.model.discriminator)
    target, totals = torch.rand(2, 1, 32, 32) * 2 - 1, []
    for weight in (0.0, 3.0):
        task = build(_pix2pix(choice, **{key: weight}).task)
        objective = task.objective(G, D, build(cfg.loss), {}, None, 1, None, True)
        torch.manual_seed(1)
        d_step = objective.d_loss(target, task.degradation(target, torch.Generator().manual_seed(0)), 0, 0)
        g_step = objective.g_loss(2, 0, d_step)
        totals.append((g_step.total.item(), g_step.logs["loss/G_adversarial"].item()))
    assert totals[1][0] == pytest.approx(totals[0][0] + 3 * totals[1][1], rel=1e-4)


def perceptual_weight_adds_the_vgg_term(choice, key):
    assert _task(choice, key, 0.0).features is None  # off: no network built
    task = build(at(choice, **_offline(**{key: 0.5})).task)
    x, y = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    weight, value = task.generator_terms(x, y, y)["perceptual"]
    assert weight == 0.5 and value > 0 and task.generator_terms(y, y, y)["perceptual"][1] == 0


def perceptual_layers_are_the_layers_read(choice, key):
    task = build(at(choice, **_offline(**{key: ["relu2_2"], "task.perceptual_weight": 1.0})).task)
    assert task.features.layers == {"relu2_2": 8} and len(task.features.net) == 9


def features_network_is_the_vgg(choice, key):
    for network, last in (("vgg16", 22), ("vgg19", 26)):  # relu4_3 of VGG16, relu4_4 of VGG19
        layer = "relu4_3" if network == "vgg16" else "relu4_4"
        task = build(at(choice, **_offline(**{key: network, "task.perceptual_weight": 1.0,
                                               "task.perceptual_layers": [layer]})).task)
        assert task.features.protocol["network"].startswith(network) and len(task.features.net) == last + 1


def features_weights_is_the_verified_file(choice, key, tmp_path, data_root):
    wrong = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ConfigError, match=f"{wrong}: SHA-256"):
        build(at(choice, **_offline(**{key: str(wrong), "task.perceptual_weight": 1.0})).task)


def features_download_tries_torchvisions_url(choice, key, tmp_path, data_root):
    from ganrun.metrics import extractors

    tried = []
    with mock.patch.object(torch.hub, "get_dir", lambda: str(tmp_path / "hub")), \
            mock.patch.object(extractors, "download", lambda url, destination, timeout=15.0: tried.append(url)):
        for allowed in (False, True):  # the fake download writes no file: the offline fallback either way
            build(at(choice, **{key: allowed, "task.perceptual_weight": 1.0}).task)
    assert tried == ["https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"]


def features_offline_is_the_fallback(choice, key, tmp_path, data_root):
    with mock.patch.object(torch.hub, "get_dir", lambda: str(tmp_path / "hub")):
        random = build(at(choice, **_offline(**{key: "random", "task.perceptual_weight": 1.0})).task)
        assert random.features.protocol["comparable_with_papers"] is False
        with pytest.raises(ConfigError, match="ImageNet weights are unavailable"):
            build(at(choice, **_offline(**{key: "error", "task.perceptual_weight": 1.0})).task)


def style_root_is_the_style_images(choice, key, tmp_path, data_root):
    for count in (1, 3):
        task = build(at(choice, **_offline(**{key: _style_root(tmp_path, count)})).task)
        assert task.styles.shape == (count, 1, 32, 32)


def style_layers_are_the_layers_read(choice, key, tmp_path, data_root):
    task = build(at(choice, **_offline(**{key: ["relu1_1"], "task.style.root": _style_root(tmp_path)})).task)
    assert "relu1_1" in task.features.layers
    assert (task.content_layers if key.endswith("content_layers") else task.style_layers) == ["relu1_1"]


def style_weights_scale_their_terms(choice, key, tmp_path, data_root):
    name = key.rsplit(".", 1)[1].removesuffix("_weight")
    task = build(at(choice, **_offline(**{key: 2.5, "task.style.root": _style_root(tmp_path)})).task)
    x, s, c = (torch.rand(2, 1, 32, 32) * 2 - 1 for _ in range(3))
    weight, value = task.generator_terms(x, s, c)[name]
    assert weight == 2.5 and value > 0


EFFECTS = {
    **dict.fromkeys([f"regularizer.{r}.weight" for r in ("r1", "r2", "gp", "dragan", "l2", "bcr", "r1r2", "lecam")],
                    weight_scales_the_term),
    **dict.fromkeys([f"regularizer.{r}.every" for r in ("r1", "r2", "gp", "dragan", "l2", "bcr", "r1r2", "lecam")],
                    every_applies_one_step_in_n_scaled_by_n),
    **dict.fromkeys([f"regularizer.{r}.through_augment" for r in ("r1", "r2", "gp", "dragan", "r1r2")],
                    through_augment_is_the_gradient_of_d_after_the_augmentation),
    "regularizer.lecam.decay": lecam_decay_is_the_memory_of_the_averages,
    "regularizer.gp.center": gp_center_is_the_target_norm,
    "regularizer.gp.one_sided": gp_one_sided_penalises_only_norms_above_the_center,
    "regularizer.dragan.spread": dragan_spread_scales_the_perturbation,
    "regularizer.bcr.real_weight": bcr_side_weight_scales_its_side,
    "regularizer.bcr.fake_weight": bcr_side_weight_scales_its_side,
    "regularizer.bcr.flip_prob": bcr_flip_prob_is_the_flip_probability,
    "regularizer.bcr.translation": bcr_translation_moves_the_images,
    "regularizer.clip.clip_value": clip_value_bounds_every_weight,
    "loss.regularizers.clip.clip_value": clip_value_bounds_every_weight,
    "loss.regularizers.gp.weight": carried_penalty_weight,
    "loss.regularizers": carried_regularizers_are_the_losss,
    "loss.real_label": sigmoid_target,
    "loss.fake_label": sigmoid_target,
    "loss.flip_prob": sigmoid_target,
    "trainer.n_critic": n_critic_and_labels_act_in_a_run,
    "model.discriminator.norm": discriminator_norm_from_the_loss,
    "model.generator.norm": norm_is_the_layer,
    "model.generator.weight_param": weight_param_is_the_parametrization,
    "model.discriminator.weight_param": weight_param_is_the_parametrization,
    "model.generator.width": width_is_the_channel_count,
    "model.discriminator.width": width_is_the_channel_count,
    "model.generator.hidden": hidden_are_the_layer_sizes,
    "model.discriminator.hidden": hidden_are_the_layer_sizes,
    "model.z_dim": z_dim_is_gs_input,
    "task.name": task_name_is_a_label,
    "task.paired": paired_is_what_d_sees,
    "task.extra_channels": extra_channels_are_gs_extra_inputs,
    "task.degradation.factor": factor_is_the_shrink,
    "task.reconstruction": reconstruction_is_the_norm,
    "task.reconstruction_weight": reconstruction_weight_scales_the_term,
    "task.eval_samples": eval_samples_is_the_evaluation_set,
    "task.degradation.shape": shape_is_the_hole_kind,
    "task.degradation.min_size": size_bounds_the_holes,
    "task.degradation.max_size": size_bounds_the_holes,
    "task.degradation.fill": fill_is_the_hole_value,
    "task.degradation.sigma": sigma_is_the_noise_std,
    "task.adversarial_weight": adversarial_weight_scales_the_term,
    "task.perceptual_weight": perceptual_weight_adds_the_vgg_term,
    "task.perceptual_layers": perceptual_layers_are_the_layers_read,
    "task.features.network": features_network_is_the_vgg,
    "task.features.weights": features_weights_is_the_verified_file,
    "task.features.download": features_download_tries_torchvisions_url,
    "task.features.offline": features_offline_is_the_fallback,
    "task.style.root": style_root_is_the_style_images,
    **dict.fromkeys(["task.content_layers", "task.style_layers"], style_layers_are_the_layers_read),
    **dict.fromkeys(["task.content_weight", "task.style_weight", "task.tv_weight"], style_weights_scale_their_terms),
    "model.generator.depth": depth_is_the_unet_levels,
    "model.generator.dropout": dropout_is_the_decoder_dropout,
    "model.generator.num_residual": num_residual_is_the_block_count,
    "model.discriminator.n_layers": n_layers_is_the_patch_size,
    "model.conditioning": conditioning_needs_labels,
    "model.acgan_weight": acgan_weight_scales_the_class_terms,
    "model.name": model_name_is_a_label,
    "optimizer.g.lr": lr_is_the_step_size,
    "optimizer.d.lr": lr_is_the_step_size,
    "optimizer.g.betas": betas_are_the_moment_decays,
    "optimizer.d.betas": betas_are_the_moment_decays,
    "optimizer.g.momentum": momentum_is_the_velocity_decay,
    "optimizer.d.momentum": momentum_is_the_velocity_decay,
    "scheduler.decay": decay_is_the_curve,
    "scheduler.final_factor": final_factor_is_the_end,
    "scheduler.warmup_steps": warmup_steps_ramp_up,
    "scheduler.total_steps": total_steps_is_where_the_decay_ends,
    "augment.diffaugment.policy": policy_is_the_ops,
    "augment.instance_noise.std": noise_std_is_the_noise_std,
    "augment.instance_noise.anneal_steps": anneal_steps_reach_zero,
    "augment.ada.ops": ada_ops_are_the_ops,
    "augment.ada.p": ada_p_is_each_ops_probability,
    "augment.ada.target": ada_target_is_where_r_t_settles,
    "augment.ada.interval": ada_interval_is_d_steps_per_move,
    "augment.ada.speed_kimg": ada_speed_is_kimg_from_0_to_1,
    **{f"augment.ada.strengths.{op}": ada_strength_scales_its_ops_probability for op in (
        "xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast", "lumaflip", "hue",
        "saturation", "cutout")},
    **dict.fromkeys(["dataset.channels", "dataset.resolution", "dataset.resize", "dataset.num_classes",
                     "dataset.in_memory", "dataset.source.train", "dataset.source.download", "dataset.name"],
                    image_dataset),
    **dict.fromkeys(["dataset.path", "dataset.source.skip_unreadable", "dataset.in_memory_gb"], folder_dataset),
    **dict.fromkeys(["dataset.source.layout", "dataset.source.num_modes", "dataset.source.scale",
                     "dataset.source.std", "dataset.source.num_eval_samples", "dataset.source.min_per_mode",
                     "dataset.shape", "dataset.generator_output"], toy_dataset),
}
# The option each key is tested on, where the first option setting it is not the one to use
OPTION = {"model.generator.norm": ["model=dcgan", "model=mlp", "model=resnet", "model=pix2pix",
                                   "model=transformer_net"],
          "model.discriminator.norm": ["loss=wgan_gp"],
          "model.generator.width": ["model=dcgan", "model=resnet", "model=pix2pix", "model=transformer_net"],
          "model.discriminator.width": ["model=dcgan", "model=resnet", "model=pix2pix"],
          "optimizer.g.betas": ["optimizer=adam"], "optimizer.d.betas": ["optimizer=adam"],
          "optimizer.g.lr": ["optimizer=adam", "optimizer=rmsprop", "optimizer=sgd"],
          "optimizer.d.lr": ["optimizer=sgd"],
          "dataset.channels": ["dataset=fashion_mnist"], "dataset.resolution": ["dataset=fashion_mnist"],
          "dataset.num_classes": ["dataset=fashion_mnist"], "dataset.in_memory": ["dataset=fashion_mnist"],
          "dataset.source.train": ["dataset=fashion_mnist"], "dataset.source.download": ["dataset=mnist"],
          "dataset.name": ["dataset=fashion_mnist"], "dataset.source.scale": ["dataset=grid25", "dataset=ring8"],
          "scheduler.decay": ["scheduler=linear"], "scheduler.final_factor": ["scheduler=linear"],
          "scheduler.warmup_steps": ["scheduler=linear"],
          "task.name": ["task=generate", "task=superres"], "task.paired": ["task=generate", "task=denoise"],
          "task.extra_channels": ["task=denoise", "task=inpaint"]}
# ---- issue 21: widths per stage, minibatch std, R3GAN's blocks
def _small(choice, key, value):
    """The network `key` belongs to, with `value` set, R3GAN's at width 16 (the paper's 768 is slow to build)."""
    part = "discriminator" if ".discriminator." in key else "generator"
    small = {f"model__{part}__width": 16} if "r3gan" in choice else {}
    return build(OmegaConf.select(at(choice, **{key: value}, **small), f"model.{part}"))


def widths_are_the_stage_channels(choice, key):
    widths = [24, 40, 56, 72][:3 if "dcgan" in choice else 4]  # stages at 32 px: dcgan 3, resnet/r3gan 4
    convs = [m for m in _net(choice, key, widths).modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    seen = [c for conv in convs for c in (conv.in_channels, conv.out_channels) if c in widths]
    assert list(dict.fromkeys(seen)) == widths  # first seen in the order the data flows
    with pytest.raises(ConfigError, match=f"{key}=.* has 5 entries"):
        _net(choice, key, widths + [8] * (5 - len(widths)))


def mbstd_group_appends_the_batch_std_map(choice, key):
    from ganrun.models.layers import MinibatchStd

    x = torch.randn(8, 1, 32, 32)
    changed = x.clone()
    changed[4] *= 3  # sample 4 shares a group with 0, 2 and 6 (sample i joins group i mod 8/4), not with 1, 3, 5, 7
    for group in (0, 4):
        D = _small(choice, key, group).eval()
        assert [m.group_size for m in D.modules() if isinstance(m, MinibatchStd)] == ([4] if group else [])
        moved = (D(changed) - D(x)).abs().detach()
        assert (moved[[0, 2, 6]] > 1e-6).all() == bool(group)
        assert (moved[[1, 3, 5, 7]] < 1e-6).all()


def _inner_convs(net):
    return [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def blocks_per_stage(choice, key):
    from ganrun.models.r3gan import ResidualBlock

    for blocks in (1, 3):
        assert sum(isinstance(m, ResidualBlock) for m in _small(choice, key, blocks).modules()) == 4 * blocks


def group_size_is_the_channels_per_group(choice, key):
    for size in (4, 32):  # width 16 x expansion 2 = 32 inner channels
        assert {c.groups for c in _inner_convs(_small(choice, key, size))} == {32 // size}
    with pytest.raises(ConfigError, match=f"{key}=5 must divide"):
        _small(choice, key, 5)


def expansion_is_the_inner_width(choice, key):
    assert {c.in_channels for c in _inner_convs(_small(choice, key, 4))} == {64}


EFFECTS.update({
    **dict.fromkeys(["model.generator.widths", "model.discriminator.widths"], widths_are_the_stage_channels),
    "model.discriminator.mbstd_group": mbstd_group_appends_the_batch_std_map,
    **dict.fromkeys(["model.generator.blocks", "model.discriminator.blocks"], blocks_per_stage),
    **dict.fromkeys(["model.generator.group_size", "model.discriminator.group_size"],
                    group_size_is_the_channels_per_group),
    **dict.fromkeys(["model.generator.expansion", "model.discriminator.expansion"], expansion_is_the_inner_width),
})
OPTION.update({key: ["model=dcgan", "model=r3gan", "model=resnet"] for key in
               ("model.generator.widths", "model.discriminator.widths", "model.discriminator.mbstd_group")})
OPTION["model.generator.width"] = OPTION["model.discriminator.width"] = ["model=dcgan", "model=r3gan", "model=resnet"]
CASES = [(key, choice) for key, first in shipped_keys().items() for choice in OPTION.get(key, [first])]
NEEDS_FILES = (n_critic_and_labels_act_in_a_run, image_dataset, folder_dataset, toy_dataset,
               eval_samples_is_the_evaluation_set, features_weights_is_the_verified_file,
               features_download_tries_torchvisions_url, features_offline_is_the_fallback, style_root_is_the_style_images,
               style_layers_are_the_layers_read, style_weights_scale_their_terms)


def test_every_shipped_key_has_an_expected_effect():
    assert sorted(set(shipped_keys()) - set(EFFECTS)) == []
    assert sorted(set(EFFECTS) - set(shipped_keys())) == []  # no entry for a key that is gone


@pytest.mark.parametrize("key,choice", CASES, ids=[f"{k}@{c.split('=')[1]}" for k, c in CASES])
def test_the_value_acts_as_defined(key, choice, request):
    effect = EFFECTS[key]
    if effect is n_critic_and_labels_act_in_a_run:
        effect(choice, key, request.getfixturevalue("tmp_path"), request.getfixturevalue("data_root"),
               request.getfixturevalue("monkeypatch"))
    elif effect in NEEDS_FILES:
        effect(choice, key, request.getfixturevalue("tmp_path"), request.getfixturevalue("data_root"))
    else:
        effect(choice, key)
