"""Each experiment preset against its paper: every number below is written as the paper (or its released code)
gives it, with the section cited, and compared with what the composed config and the built objects use.

Also: `loss=wgan_gp` alone is the WGAN-GP method, gradient penalties on BatchNorm critics warn, and one name per
regularizer (a chosen regularizer of the kind the loss carries replaces it instead of running twice).
"""

import logging
import math

import pytest
import torch
import torch.nn as nn
from hydra import compose, initialize_config_module

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun import losses, regularizers
from ganrun.config import build, build_optimizer
from ganrun.models import resnet, transformer_net
from ganrun.schedules import warmup_then_decay
from ganrun.validate import validate


def compose_config(*overrides):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def optimizers(cfg):
    """The built (G, D) optimizers: the values torch will use, not only the YAML."""
    return [build_optimizer(cfg.optimizer[n], [nn.Parameter(torch.zeros(1))], n) for n in ("g", "d")]


def built_models(cfg):
    return build(cfg.model.generator), build(cfg.model.discriminator)


def has(module, kind):
    return any(isinstance(m, kind) for m in module.modules())


# -- DCGAN: Radford et al. 2015 (arXiv:1511.06434) ------------------------------------------------------------
def test_dcgan_preset_is_radford_et_al():
    cfg = compose_config("experiment=dcgan")
    assert cfg.trainer.batch_size == 128 and cfg.trainer.get("g_batch_size") is None  # sec. 4: batch 128
    assert cfg.trainer.n_critic == 1
    assert isinstance(build(cfg.loss), losses.NonSaturating) and build(cfg.regularizer) == {}
    for opt in optimizers(cfg):  # sec. 4: Adam, lr 0.0002, beta1 0.5
        assert isinstance(opt, torch.optim.Adam)
        assert opt.defaults["lr"] == 0.0002 and opt.defaults["betas"] == (0.5, 0.999)
    assert cfg.scheduler.decay == "constant"
    assert cfg.model.z_dim == 100  # sec. 4 / fig. 1: 100-d z
    G, D = built_models(cfg)
    torch.manual_seed(0)
    convs = [m.weight for m in list(G.modules()) + list(D.modules())
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.weight.numel() > 5000]
    for w in convs:  # sec. 4: "initialized from a zero-centered Normal distribution with standard deviation 0.02"
        assert abs(w.mean().item()) < 0.002 and w.std().item() == pytest.approx(0.02, rel=0.05)
    slopes = {m.negative_slope for m in D.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}  # sec. 4: "the slope of the leak was set to 0.2"
    assert has(G, nn.BatchNorm2d) and has(D, nn.BatchNorm2d)  # sec. 3: batchnorm in both networks
    assert not isinstance(D.net[1], nn.BatchNorm2d)  # ... but not on D's input layer


# -- WGAN: Arjovsky et al. 2017 (arXiv:1701.07875) ------------------------------------------------------------
def test_wgan_preset_is_arjovsky_et_al():
    cfg = compose_config("experiment=wgan")
    loss = build(cfg.loss)
    assert isinstance(loss, losses.Wasserstein)
    carried = regularizers.combine(loss.regularizers, build(cfg.regularizer) or {})
    assert [type(r) for r in carried.values()] == [regularizers.WeightClipping]
    assert carried["clip"].clip_value == 0.01  # Algorithm 1: c = 0.01
    assert cfg.trainer.n_critic == 5  # Algorithm 1: n_critic = 5
    assert cfg.trainer.batch_size == 64  # Algorithm 1: m = 64
    for opt in optimizers(cfg):  # Algorithm 1: RMSProp, alpha = 0.00005
        assert isinstance(opt, torch.optim.RMSprop) and opt.defaults["lr"] == 0.00005
        assert opt.defaults["momentum"] == 0
    G, D = built_models(cfg)  # sec. 4: the DCGAN architecture, BatchNorm included
    assert has(D, nn.BatchNorm2d) and cfg.model.name == "dcgan"


# -- WGAN-GP: Gulrajani et al. 2017 (arXiv:1704.00028) --------------------------------------------------------
WGAN_GP = {"lambda": 10.0, "n_critic": 5, "lr": 1e-4, "betas": (0.0, 0.9)}  # Algorithm 1's defaults


def assert_wgan_gp_method(cfg):
    loss = build(cfg.loss)
    assert isinstance(loss, losses.Wasserstein)
    regs = regularizers.combine(loss.regularizers, build(cfg.regularizer) or {})
    (gp,) = [r for r in regs.values() if isinstance(r, regularizers.GradientPenalty)]
    assert (gp.weight, gp.center, gp.one_sided, gp.every) == (WGAN_GP["lambda"], 1.0, False, 1)
    assert len(regs) == 1
    assert cfg.trainer.n_critic == WGAN_GP["n_critic"]
    for opt in optimizers(cfg):
        assert isinstance(opt, torch.optim.Adam)
        assert opt.defaults["lr"] == WGAN_GP["lr"] and opt.defaults["betas"] == WGAN_GP["betas"]
    _, D = built_models(cfg)  # sec. 4: no batch normalisation in the critic; layer normalisation instead
    assert not has(D, nn.modules.batchnorm._BatchNorm) and (has(D, nn.GroupNorm) or has(D, nn.LayerNorm))
    assert regularizers.warn_penalty_on_batchnorm(regs, D) == []


def test_wgan_gp_preset_is_gulrajani_et_al():
    cfg = compose_config("experiment=wgan_gp")
    assert_wgan_gp_method(cfg)
    assert cfg.trainer.batch_size == 64  # Algorithm 1: m = 64
    assert cfg.trainer.steps == 200000  # released gan_cifar.py: ITERS = 200000 generator iterations
    assert cfg.model.z_dim == 128  # gan_cifar.py: 128-d noise


@pytest.mark.parametrize("model", ["dcgan", "mlp"])
def test_loss_wgan_gp_alone_is_the_whole_method(model):
    assert_wgan_gp_method(compose_config("loss=wgan_gp", f"model={model}"))


def test_shell_overrides_win_over_what_loss_wgan_gp_brings():
    cfg = compose_config("loss=wgan_gp", "trainer.n_critic=2", "optimizer.d.lr=3e-4", "loss.regularizers.gp.weight=1",
                         "model.discriminator.norm=none")
    assert cfg.trainer.n_critic == 2 and cfg.optimizer.d.lr == 3e-4 and cfg.optimizer.g.lr == 1e-4
    assert build(cfg.loss).regularizers["gp"].weight == 1.0 and cfg.model.discriminator.norm == "none"
    rms = compose_config("loss=wgan_gp", "optimizer=rmsprop")  # another optimizer group replaces Adam cleanly
    assert all(isinstance(o, torch.optim.RMSprop) and o.defaults["lr"] == 5e-5 for o in optimizers(rms))
    assert compose_config().trainer.n_critic == 1  # other losses keep the plain defaults


# -- SNGAN: Miyato et al. 2018 (arXiv:1802.05957) and the released chainer code --------------------------------
def test_sngan_preset_is_miyato_et_al():
    cfg = compose_config("experiment=sngan")
    assert isinstance(build(cfg.loss), losses.Hinge) and build(cfg.regularizer) == {}  # sec. 4: hinge loss
    assert cfg.trainer.steps == 50000  # sn_cifar10_unconditional.yml: iteration 50000 (G updates)
    assert cfg.trainer.n_critic == 5  # table 3 setting C / updater n_dis: 5
    assert cfg.trainer.batch_size == 64  # batchsize: 64 (D's real and fake batch)
    assert cfg.trainer.g_batch_size == 128  # updater n_gen_samples: 128 (G's batch is twice D's)
    for opt in optimizers(cfg):  # table 3 setting C: alpha 0.0002, beta1 0, beta2 0.9
        assert isinstance(opt, torch.optim.Adam)
        assert opt.defaults["lr"] == 0.0002 and opt.defaults["betas"] == (0.0, 0.9)
    # The released code decays lr linearly from iteration 0 to 0 at iteration 50000 (LinearShift).
    lr = build(cfg.scheduler)(torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=0.0002))
    lrs = [lr.apply(step) for step in range(50000)]
    assert lrs[0] == 0.0002 and lrs[25000] == pytest.approx(0.0001) and lrs[-1] == pytest.approx(0.0002 / 50000)
    assert cfg.model.z_dim == 128  # resnet_32.py: dim_z 128
    G, D = build(compose_config("experiment=sngan", "dataset=cifar10").model.generator), None
    D = build(compose_config("experiment=sngan", "dataset=cifar10").model.discriminator)
    assert G.linear.out_features == 4 * 4 * 256  # resnet_32.py: ch 256, bottom_width 4
    assert D.adversarial.in_features == 128  # snresnet_32.py: ch 128
    assert len(D.blocks) == 4 and has(G, nn.BatchNorm2d) and not has(D, nn.modules.batchnorm._BatchNorm)
    assert all(hasattr(m, "parametrizations") for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def _uniform_bound(layer, gain):
    fan_out, fan_in = layer.weight.shape[0], layer.weight[0].numel()
    if isinstance(layer, nn.Conv2d):
        fan_out = layer.weight.shape[0] * layer.weight[0, 0].numel()
    return gain * math.sqrt(6.0 / (fan_in + fan_out))


def _weight(layer):
    return layer.parametrizations.weight.original if hasattr(layer, "parametrizations") else layer.weight


def test_sngan_resnet_init_follows_the_reference_code():
    """pfnet-research/sngan_projection: GlorotUniform(sqrt(2)) in the residual branches' 3x3 convs, GlorotUniform()
    (gain 1) in the shortcut 1x1 convs, G's input linear and output conv, D's head; D's head has no bias."""
    torch.manual_seed(0)
    G = resnet.Generator(resolution=32, channels=3)
    D = resnet.Discriminator(resolution=32, channels=3, weight_param="spectral",
                             conditioning="projection", num_classes=10)

    def check(layer, gain):
        w = _weight(layer)
        bound = gain * math.sqrt(6.0 / (w.shape[1] * w[0, 0].numel() + w.shape[0] * w[0, 0].numel()))
        if w.ndim == 2:
            bound = gain * math.sqrt(6.0 / (w.shape[0] + w.shape[1]))
        assert w.abs().max().item() <= bound + 1e-7
        assert w.abs().max().item() > 0.95 * bound  # drawn from the whole interval, not a narrower one
        assert w.var().item() == pytest.approx(bound ** 2 / 3, rel=0.2)  # U[-b, b] has variance b^2 / 3

    for block in list(G.blocks) + list(D.blocks):
        residual = [m for m in block.main if isinstance(m, nn.Conv2d)]
        assert len(residual) == 2
        for conv in residual:
            check(conv, math.sqrt(2))
            assert conv.bias.abs().sum() == 0
        for conv in (m for m in block.shortcut.modules() if isinstance(m, nn.Conv2d)):
            check(conv, 1.0)
    check(G.linear, 1.0)
    check(G.out[2], 1.0)
    check(D.adversarial, 1.0)
    check(D.embed, 1.0)
    assert D.adversarial.bias is None  # snresnet_32.py / snresnet_64.py: l5 = SNLinear(ch, 1, nobias=True)
    assert hasattr(D.embed, "parametrizations")  # SNEmbedID: spectral norm on the projection embedding


# -- LSGAN: Mao et al. 2017 (arXiv:1611.04076) and the released code ------------------------------------------
def test_lsgan_preset_is_mao_et_al():
    cfg = compose_config("experiment=lsgan")
    loss = build(cfg.loss)
    assert isinstance(loss, losses.LeastSquares)
    real, fake = torch.tensor([0.3, 1.7]), torch.tensor([-0.4, 0.9])
    a, b, c = 0.0, 1.0, 1.0  # eq. 9: a = 0 (fake), b = 1 (real), c = 1 (what G wants D to believe)
    assert loss.d_loss(real, fake).item() == pytest.approx(
        0.5 * ((real - b) ** 2).mean() + 0.5 * ((fake - a) ** 2).mean())
    assert loss.g_loss(fake).item() == pytest.approx(0.5 * ((fake - c) ** 2).mean())
    assert cfg.trainer.batch_size == 64 and cfg.trainer.n_critic == 1  # train_lsun.py: batch_size 64, D then G
    for opt in optimizers(cfg):  # train_lsun.py: learning_rate 0.001, beta1 0.5 (TF's beta2 0.999)
        assert isinstance(opt, torch.optim.Adam)
        assert opt.defaults["lr"] == 0.001 and opt.defaults["betas"] == (0.5, 0.999)
    assert cfg.model.z_dim == 1024  # train_lsun.py: z_dim 1024
    G, D = built_models(cfg)
    assert has(G, nn.BatchNorm2d) and has(D, nn.BatchNorm2d)  # vgg.py: batch norm in G and in D's layers 2-4


# -- pix2pix: Isola et al. 2017 (arXiv:1611.07004) ------------------------------------------------------------
@pytest.mark.parametrize("task", ["superres", "inpaint", "denoise"])
def test_pix2pix_preset_is_isola_et_al(task):
    from ganrun.models import patchgan, unet
    from ganrun.objective import PairedObjective

    cfg = compose_config("experiment=pix2pix", f"task={task}", "dataset=cifar10", "dataset.resolution=256")
    assert cfg.task.name == task  # the task stays the user's choice
    assert cfg.task.reconstruction == "l1" and cfg.task.reconstruction_weight == 100.0  # eq. 4: lambda L1, lambda=100
    assert isinstance(build(cfg.loss), losses.NonSaturating)  # sec. 3: G maximises log D(x, G(x, z))
    assert build(cfg.regularizer) == {} and not build(cfg.augment)  # no regularizer, no augmentation
    assert cfg.trainer.batch_size == 1 and cfg.trainer.n_critic == 1  # sec. 3.3 / 6.2: batch 1, alternating steps
    for opt in optimizers(cfg):  # sec. 3.3: Adam, lr 0.0002, beta1 0.5, beta2 0.999
        assert isinstance(opt, torch.optim.Adam)
        assert opt.defaults["lr"] == 0.0002 and opt.defaults["betas"] == (0.5, 0.999)
    assert cfg.scheduler.decay == "constant" and cfg.ema.enabled is False  # neither is part of the method
    G, D = built_models(cfg)
    assert isinstance(G, unet.Generator) and isinstance(D, patchgan.Discriminator)
    # sec. 6.1.1: the 256 px U-Net encoder C64-C128-C256-C512-C512-C512-C512-C512, dropout 0.5 in 3 decoder layers
    assert [d[-1].out_channels if isinstance(d[-1], nn.Conv2d) else d[-2].out_channels for d in G.downs] == \
        [64, 128, 256, 512, 512, 512, 512, 512]
    assert [m.p for m in G.modules() if isinstance(m, nn.Dropout)] == [0.5] * 3
    # sec. 4.4 / 6.1.2: the 70x70 PatchGAN C64-C128-C256-C512, BatchNorm but not on C64, one score per patch
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1] and patchgan.receptive_field(3) == 70
    assert has(D, nn.BatchNorm2d) and D.paired and convs[0].in_channels == 3 + 3 + (task == "inpaint")
    for module in (G, D):  # sec. 6.2: weights from N(0, 0.02)
        weights = torch.cat([m.weight.flatten() for m in module.modules() if isinstance(m, nn.Conv2d)])
        assert weights.mean().abs() < 1e-3 and weights.std().item() == pytest.approx(0.02, rel=0.02)
    task_obj = build(cfg.task)
    assert isinstance(task_obj.objective(G, D, build(cfg.loss), {}, None, 100), PairedObjective)


def test_every_preset_is_tested_here():
    from pathlib import Path

    presets = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))
    source = Path(__file__).read_text()
    assert all(f'"experiment={name}"' in source for name in presets)
    assert all("arXiv" in (Path(__file__).parents[1] / "conf" / "experiment" / f"{n}.yaml").read_text() for n in presets)


# -- one name per regularizer, penalties on BatchNorm critics --------------------------------------------------
def test_a_chosen_regularizer_of_the_carried_kind_replaces_it():
    cfg = compose_config("loss=wgan_gp", "regularizer=[gp,r1]", "regularizer.gp.one_sided=true")
    regs = regularizers.combine(build(cfg.loss).regularizers, build(cfg.regularizer))
    assert sorted(regs) == ["gp", "r1"]  # one gradient penalty, not two
    assert regs["gp"].one_sided  # the user's override acts on it
    cfg = compose_config("loss=wgan", "regularizer=clip", "regularizer.clip.clip_value=0.05")
    regs = regularizers.combine(build(cfg.loss).regularizers, build(cfg.regularizer))
    assert list(regs) == ["clip"] and regs["clip"].clip_value == 0.05
    # by kind, not only by name: a loss config that names its penalty differently still gets one
    combined = regularizers.combine({"gradient_penalty": regularizers.GradientPenalty()},
                                    {"gp": regularizers.GradientPenalty(one_sided=True)})
    assert list(combined) == ["gp"] and combined["gp"].one_sided
    cfg = compose_config("loss=wgan_gp", "regularizer=dragan")  # another kind adds to the carried one
    assert sorted(regularizers.combine(build(cfg.loss).regularizers, build(cfg.regularizer))) == ["dragan", "gp"]


@pytest.mark.parametrize("name", ["gp", "dragan", "r1", "r2"])
def test_a_gradient_penalty_on_a_batchnorm_critic_warns_naming_the_fix(name, caplog):
    cfg = compose_config(f"regularizer={name}")  # the default D has BatchNorm
    regs = build(cfg.regularizer)
    _, D = built_models(cfg)
    with caplog.at_level(logging.WARNING, logger="ganrun.regularizers"):
        assert regularizers.warn_penalty_on_batchnorm(regs, D) == [name]
    assert "model.discriminator.norm=layer" in caplog.text and name in caplog.text
    caplog.clear()
    _, D = built_models(compose_config(f"regularizer={name}", "model.discriminator.norm=layer"))
    assert regularizers.warn_penalty_on_batchnorm(regs, D) == [] and not caplog.text
    for other in ("l2", "clip", "bcr"):  # no input gradient: nothing to warn about
        assert regularizers.warn_penalty_on_batchnorm(build(compose_config(f"regularizer={other}").regularizer),
                                                      built_models(cfg)[1]) == []


# -- image-to-image presets (task=superres, task=style) ------------------------------------------------------
def offline(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # no weights; no download tried below


# -- SRGAN: Ledig et al. 2017 (arXiv:1609.04802) ---------------------------------------------------------------
def test_srgan_preset_is_ledig_et_al(monkeypatch, tmp_path):
    offline(monkeypatch, tmp_path)
    cfg = compose_config("experiment=srgan", "task.features.download=false")
    validate(cfg)
    assert cfg.task.name == "superres" and cfg.task.degradation.factor == 4  # "upscaling factor of 4x"
    assert cfg.trainer.batch_size == 16  # sec. 3.2: "16 random 96 x 96 HR sub images"
    for opt in optimizers(cfg):  # sec. 3.2: Adam, beta1 = 0.9, learning rate 1e-4 (first 1e5 updates)
        assert isinstance(opt, torch.optim.Adam) and opt.defaults["lr"] == 1e-4 and opt.defaults["betas"][0] == 0.9
    assert cfg.trainer.steps == 100_000 and cfg.scheduler.decay == "constant"
    task = build(cfg.task)
    # eq. 3: l_SR = l_X + 1e-3 l_Gen; sec. 2.2.1: the VGG54 loss (phi_5,4 of VGG19, after activation), the feature
    # maps rescaled by 1/12.75: (1/12.75)^2 on their squared distance; SRGAN-VGG54 has no pixel (MSE) term
    assert task.adversarial_weight == 1e-3 and task.reconstruction_weight == 0.0
    assert abs(task.perceptual_weight - 1 / 12.75**2) < 1e-6
    assert task.perceptual_layers == ["relu5_4"] and list(task.features.layers) == ["relu5_4"]
    assert task.features.layers["relu5_4"] == 35 and task.features.protocol["network"].startswith("vgg19")
    assert isinstance(build(cfg.loss), losses.NonSaturating)  # eq. 6: -log D(G(I_LR))
    G, D = build(cfg.model.generator), build(cfg.model.discriminator)
    assert isinstance(G, transformer_net.Generator)
    blocks = [m for m in G.modules() if isinstance(m, transformer_net.ResidualBlock)]
    assert len(blocks) == 16  # fig. 4: B = 16 residual blocks ...
    assert all(m.out_channels == 64 for b in blocks for m in b.modules() if isinstance(m, nn.Conv2d))  # ... k3n64s1
    assert any(isinstance(m, nn.BatchNorm2d) for m in blocks[0].modules())  # ... with batch norm
    assert not D.paired  # D classifies an image, not an (input, output) pair
    images = torch.randn(2, 1, 28, 28)
    assert D(images, None).shape[0] == 2


# -- fast style transfer: Johnson et al. 2016 (arXiv:1603.08155) -----------------------------------------------
def test_style_preset_is_johnson_et_al(monkeypatch, tmp_path):
    offline(monkeypatch, tmp_path)
    cfg = compose_config("experiment=style", "task.features.download=false")
    validate(cfg)
    assert cfg.task.name == "style" and cfg.task.features.network == "vgg16"  # sec. 3: VGG-16 loss network
    assert list(cfg.task.content_layers) == ["relu2_2"]  # sec. 4.1: "feature reconstruction loss at relu2_2"
    assert list(cfg.task.style_layers) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]  # "... style at relu1_2, ..."
    # weights not in the paper: the defaults of the authors' train.lua (content 1, style 5, TV 1e-6; sec. 4.1: TV
    # "between 1e-6 and 1e-4, chosen via cross-validation per style target")
    assert (cfg.task.content_weight, cfg.task.style_weight, cfg.task.tv_weight) == (1.0, 5.0, 1e-6)
    assert cfg.trainer.batch_size == 4 and cfg.trainer.steps == 40_000  # sec. 4.1: batch 4, 40,000 iterations
    for opt in optimizers(cfg):  # sec. 4.1: Adam, learning rate 1e-3
        assert isinstance(opt, torch.optim.Adam) and opt.defaults["lr"] == 1e-3
    G = build(cfg.model.generator)
    # supplementary table 1: 9x9x32, 3x3x64 /2, 3x3x128 /2, 5 residual blocks of 128, ..., 9x9 to the image
    assert isinstance(G, transformer_net.Generator)
    assert sum(isinstance(m, transformer_net.ResidualBlock) for m in G.modules()) == 5
    widths = [m.out_channels for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert widths[:3] == [32, 64, 128] and widths[-3:] == [64, 32, 1]
    assert any(isinstance(m, nn.InstanceNorm2d) for m in G.modules())  # Ulyanov et al.'s instance norm


# -- R3GAN: Huang et al. 2024 (arXiv:2501.05441), the released train.py's CIFAR10 preset ----------------------
# train.py: WidthPerStage = [3 * x // 4 for x in [1024] * 4], BlocksPerStage = [2] * 4, CardinalityPerStage
# = [3 * 32] * 4, NoiseDimension = 64, ExpansionFactor 2 (networks), Adam betas [0, 0] eps 1e-8 (beta2 scheduled),
# decay_nimg = 2e7 and the schedules' base_value -> final_value; README: --batch=512 --aug=1 --cond=1.
R3GAN_CIFAR10 = {"width": 3 * 1024 // 4, "blocks": 2, "cardinality": 3 * 32, "expansion": 2, "z": 64, "batch": 512,
                 "decay_kimg": 2e7 / 1000, "lr": (2e-4, 5e-5), "beta2": (0.9, 0.99), "gamma": (0.05, 0.005),
                 "p": (0.0, 0.55), "ema_kimg": (0.0, 5000 * 1000 / 1000)}
R3GAN_STRENGTHS = {"xflip": 1, "rotate90": 1, "xint": 1, "scale": 1, "rotate": 1, "aniso": 1, "xfrac": 1,
                   "brightness": 0.5, "contrast": 0.5, "lumaflip": 0.5, "hue": 0.5, "saturation": 0.5, "cutout": 1}
R3GAN_SCHEDULED = {"optimizer.g.lr": "lr", "optimizer.d.lr": "lr", "optimizer.g.betas.1": "beta2",
                   "optimizer.d.betas.1": "beta2", "regularizer.r1r2.weight": "gamma", "augment.ada.p": "p",
                   "ema.half_life_kimg": "ema_kimg"}


def built_schedules(cfg, budget_kimg):
    """The preset's schedules bound to built objects (optimizers, regularizer, ADA, an EMA stand-in)."""
    from types import SimpleNamespace

    from ganrun.schedules import build_schedules

    opt_g, opt_d = optimizers(cfg)
    regs = regularizers.combine(build(cfg.loss).regularizers, build(cfg.regularizer) or {})
    augment = build(cfg.augment) or {}
    ema = SimpleNamespace(half_life_kimg=float(cfg.ema.half_life_kimg))
    objects = {"optimizer.g": opt_g, "optimizer.d": opt_d, "loss": build(cfg.loss), "regularizers": regs,
               "augment": augment, "ema": ema}
    lr = [build(cfg.scheduler)(opt) for opt in (opt_g, opt_d)]
    scheduled = build_schedules(cfg, objects, lr, cfg.trainer.steps, budget_kimg)
    read = {"optimizer.g.lr": lambda: opt_g.param_groups[0]["lr"], "optimizer.d.lr": lambda: opt_d.param_groups[0]["lr"],
            "optimizer.g.betas.1": lambda: opt_g.param_groups[0]["betas"][1],
            "optimizer.d.betas.1": lambda: opt_d.param_groups[0]["betas"][1],
            "regularizer.r1r2.weight": lambda: regs["r1r2"].weight, "ema.half_life_kimg": lambda: ema.half_life_kimg,
            "augment.ada.p": lambda: augment["ada"].p.item()}
    return scheduled, read, regs, augment


def test_r3gan_preset_is_huang_et_al():
    from ganrun.ada import ADA

    ref = R3GAN_CIFAR10
    cfg = compose_config("experiment=r3gan")
    assert cfg.dataset.name == "cifar10"  # --preset=CIFAR10
    assert cfg.trainer.batch_size == ref["batch"] and cfg.trainer.n_critic == 1  # --batch=512; D then G
    assert isinstance(build(cfg.loss), losses.RelativisticPairing)  # R3GANLoss: RpGAN ...
    regs = regularizers.combine(build(cfg.loss).regularizers, build(cfg.regularizer))
    assert list(regs) == ["r1r2"] and isinstance(regs["r1r2"], regularizers.R1R2)  # ... + gamma/2 (R1 + R2)
    assert (regs["r1r2"].every, regs["r1r2"].through_augment) == (1, True)  # every step, of the augmented D
    for opt in optimizers(cfg):  # G_opt_kwargs / D_opt_kwargs: Adam, beta1 0, eps 1e-8
        assert isinstance(opt, torch.optim.Adam)
        assert opt.defaults["betas"][0] == 0.0 and opt.defaults["eps"] == 1e-8
    ada = build(cfg.augment)["ada"]  # --aug=1: AugmentPipe(xflip=1, ..., brightness=0.5, ..., cutout=1)
    assert isinstance(ada, ADA) and ada.target is None and ada.strengths == pytest.approx(R3GAN_STRENGTHS)
    assert set(ada.ops) == set(R3GAN_STRENGTHS)  # every op of the pipeline, cutout included
    assert cfg.ema.enabled and cfg.ema.half_life_kimg == 0.0 and cfg.ema.half_life_rampup is None
    # the schedules: cosine_decay_with_warmup from base_value to final_value over decay_nimg, then final_value
    assert {s.key for s in cfg.schedules.values()} == set(R3GAN_SCHEDULED)
    assert all(s.kind == "cosine" and s.unit == "kimg" and s.length == ref["decay_kimg"] and not s.get("warmup")
               for s in cfg.schedules.values())
    scheduled, read, _, _ = built_schedules(cfg, budget_kimg=1e9)
    for kimg, fraction in ((0.0, 0.0), (ref["decay_kimg"] / 4, 0.5 - 0.5 * math.cos(math.pi / 4)),
                           (ref["decay_kimg"] / 2, 0.5), (ref["decay_kimg"], 1.0), (3 * ref["decay_kimg"], 1.0)):
        scheduled.apply(0, kimg)
        for key, name in R3GAN_SCHEDULED.items():  # value = base + (1 - 0.5 (1 + cos(pi t / T))) (final - base)
            base, final = ref[name]
            assert read[key]() == pytest.approx(base + fraction * (final - base), rel=1e-6, abs=1e-9), (key, kimg)
    # networks: 4 stages (4 -> 32 px) of 768 channels, 2 blocks each, cardinality 96 at expansion 2, z 64
    assert cfg.model.z_dim == ref["z"] and cfg.model.conditioning == "projection"  # --cond=1
    G = build(compose_config("experiment=r3gan").model.generator)
    D = build(compose_config("experiment=r3gan").model.discriminator)
    for net in (G, D):
        grouped = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        assert len(grouped) == 4 * ref["blocks"]  # one 3x3 per block
        assert all(m.groups == ref["cardinality"] and m.in_channels == ref["width"] * ref["expansion"]
                   for m in grouped)
    assert G.embed.embedding_dim == ref["z"]  # G's ConditionEmbeddingDimension = NoiseDimension
    assert D.embed.embedding_dim == ref["width"]  # D's ConditionEmbeddingDimension = WidthPerStage[0]


def test_r3gan_small_preset_is_r3gan_at_cpu_size(tmp_path, data_root):
    from helpers import train_in_process

    from ganrun.schedules import value_at

    ref = R3GAN_CIFAR10
    cfg = compose_config("experiment=r3gan_small")
    assert cfg.dataset.name == "fashion_mnist" and cfg.dataset.resolution == 32 and cfg.dataset.resize == "pad"
    assert cfg.trainer.batch_size == 64 and cfg.trainer.kimg == 320 and cfg.model.z_dim == ref["z"]
    assert isinstance(build(cfg.loss), losses.RelativisticPairing) and not build(cfg.augment)
    regs = regularizers.combine(build(cfg.loss).regularizers, build(cfg.regularizer))
    assert list(regs) == ["r1r2"] and regs["r1r2"].every == 4  # lazy: the CPU budget (reference: every step)
    for opt in optimizers(cfg):
        assert opt.defaults["betas"][0] == 0.0 and opt.defaults["eps"] == 1e-8
    G, D = built_models(cfg)
    assert [m.out_channels for m in G.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)] == \
        [256, 128, 64, 32]  # 128, 64, 32, 16 channels at expansion 2
    assert sum(p.numel() for p in G.parameters()) < 1e6 and sum(p.numel() for p in D.parameters()) < 1e6
    # the reference's start and end values over the whole run (length null: the budget in kimg)
    assert all(s.unit == "kimg" and s.length is None for s in cfg.schedules.values())
    scheduled, read, _, _ = built_schedules(cfg, budget_kimg=320)
    scheduled.apply(0, 80.0)
    fraction = value_at(80, "cosine", 0.0, 1.0, 320)
    for key, name in R3GAN_SCHEDULED.items():
        if key == "augment.ada.p":
            continue
        base, final = ref[name] if name != "ema_kimg" else (0.0, 320 / 4)  # half-life: 1/4 of the run, as 5000/20000
        assert read[key]() == pytest.approx(base + fraction * (final - base), rel=1e-6), key
    result = train_in_process(tmp_path, data_root, "experiment=r3gan_small", "trainer.kimg=null", steps=1)
    assert result.step == 1 and all(math.isfinite(v) for v in result.scalars.values() if isinstance(v, float))
