"""The paired image-to-image tasks (ganrun/tasks.py): degradations against their definitions, the pix2pix networks
(U-Net skips, the PatchGAN's receptive field measured by gradients), the task-aware objective, refusals by name,
one training step per task, exact resume, the trust checks on a task checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers import straight_and_split, train_in_process, write_mnist_like
from hydra import compose, initialize_config_module
from PIL import Image

import ganrun.resolvers  # noqa: F401
from ganrun.config import build
from ganrun.errors import ConfigError
from ganrun.models import patchgan, unet
from ganrun.objective import PairedObjective
from ganrun.tasks import Downsample, GaussianNoise, Inpaint, PairStream
from ganrun.trust import check_saved_config
from ganrun.validate import validate

TASKS = ("superres", "inpaint", "denoise")


def composed(*overrides):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_mnist_like(tmp_path_factory.mktemp("data") / "FashionMNIST" / "raw").parent.parent


def known_image(h=32, w=24, channels=1, seed=0) -> np.ndarray:
    """An asymmetric uint8 image: a gradient, a bright off-centre block and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = (x * 255 / (w - 1) * 0.6 + 40 * (y > h // 3) + rng.integers(0, 40, (h, w))).clip(0, 255)
    img[3:9, 13:20] = 250
    return np.repeat(img[None], channels, 0).astype(np.uint8)


def to_signed(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).float().div(127.5).sub(1).unsqueeze(0)


# ---- super-resolution -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("factor", [2, 4])
def test_downsampling_is_the_antialiased_bicubic_resize(factor):
    """low() equals PIL's BICUBIC resize (an antialiased filter: its support scales with the factor) within 1.5/255
    per pixel (PIL rounds to uint8 and uses its own fixed-point kernel), and G's input is its bicubic upsampling."""
    img = known_image()
    pil = np.asarray(Image.fromarray(img[0]).resize((24 // factor, 32 // factor), Image.BICUBIC), dtype=np.float64)
    low = Downsample(factor).low(to_signed(img))[0, 0].add(1).mul(127.5).double().numpy()
    assert low.shape == pil.shape
    assert np.abs(low - pil).max() <= 1.5
    x = to_signed(img)
    up = torch.nn.functional.interpolate(Downsample(factor).low(x), size=(32, 24), mode="bicubic",
                                         align_corners=False).clamp(-1, 1)
    assert torch.equal(Downsample(factor)(x), up) and Downsample(factor)(x).shape == x.shape


def test_downsampling_removes_what_would_alias():
    """A one-pixel checkerboard (the highest frequency) shrunk x2 is flat grey with antialiasing; picking every
    other pixel (no antialiasing) would keep a solid +1 image."""
    board = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(8, 8).view(1, 1, 16, 16)
    low = Downsample(2).low(board)
    assert low.abs().max() < 0.1 and board[..., ::2, ::2].min() == 1.0


def test_a_factor_that_does_not_divide_the_size_is_refused():
    with pytest.raises(ConfigError, match="factor=4 must divide the image size 30x30"):
        Downsample(4)(torch.zeros(1, 1, 30, 30))


# ---- inpainting ---------------------------------------------------------------------------------------------
def test_rectangular_holes_are_where_the_mask_says_with_the_configured_sizes():
    torch.manual_seed(0)
    task = Inpaint("rectangle", min_size=0.25, max_size=0.5, fill=0.3)
    x = torch.rand(400, 3, 32, 24) * 2 - 1
    out = task(x)
    image, mask = out[:, :3], out[:, 3:]
    assert out.shape == (400, 4, 32, 24) and set(mask.unique().tolist()) <= {0.0, 1.0}
    hole = mask.bool().expand_as(image)
    assert torch.all(image[hole] == 0.3) and torch.equal(image[~hole], x[~hole])  # filled there, untouched elsewhere
    heights, widths = mask[:, 0].amax(2).sum(1), mask[:, 0].amax(1).sum(1)
    assert torch.all(mask[:, 0].sum((1, 2)) == heights * widths)  # one solid rectangle each
    assert heights.min() == 8 and heights.max() == 16  # round(0.25 * 32) .. round(0.5 * 32), both reached
    assert widths.min() == 6 and widths.max() == 12  # round(0.25 * 24) .. round(0.5 * 24)


def test_freeform_holes_are_the_brush_strokes_with_the_configured_diameters():
    """Every pixel within diameter/2 (less half a pixel) of the polyline is a hole, every pixel beyond diameter/2
    (plus half a pixel) is not; measured by brute force on points sampled along the segments."""
    torch.manual_seed(1)
    task = Inpaint("freeform", min_size=0.1, max_size=0.3)
    mask, vertices, diameters = task.strokes(12, 32, 32, torch.device("cpu"))
    assert diameters.min() >= 0.1 * 32 and diameters.max() <= 0.3 * 32
    t = torch.linspace(0, 1, 400).view(1, 1, -1, 1)
    samples = (vertices[:, :-1, None] + t * (vertices[:, 1:, None] - vertices[:, :-1, None])).flatten(1, 2)
    pixels = torch.stack(torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij"), -1).view(1, -1, 1, 2)
    distance = (pixels - samples[:, None]).norm(dim=-1).amin(-1).view(12, 32, 32)
    radius = diameters.view(12, 1, 1) / 2
    assert torch.all(mask[:, 0][distance < radius - 0.5] == 1) and torch.all(mask[:, 0][distance > radius + 0.5] == 0)
    assert mask.sum() > 0


def test_min_size_above_max_size_is_refused():
    with pytest.raises(ConfigError, match="min_size=0.6 must be <= task.degradation.max_size=0.5"):
        validate(composed("task=inpaint", "model=pix2pix", "task.degradation.min_size=0.6"))


# ---- denoising ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.05, 0.2])
def test_noise_std_is_sigma_of_the_unit_range(sigma):
    """sigma is in [0, 1] pixel units: on ganrun's [-1, 1] scale the measured std is 2 sigma (1% over 1.6M draws)."""
    torch.manual_seed(0)
    x = torch.rand(100, 1, 128, 128) * 2 - 1
    noise = GaussianNoise(sigma)(x) - x
    assert noise.std().item() == pytest.approx(2 * sigma, rel=0.01)
    assert abs(noise.mean().item()) < 2 * sigma * 0.01


def test_pairs_are_drawn_from_the_global_rng_and_keep_the_stream_position():
    class Stream:
        def __init__(self):
            self.batch = 0

        def __next__(self):
            self.batch += 1
            return torch.full((2, 1, 8, 8), 0.5), torch.zeros(2)

        def state_dict(self):
            return {"batch": self.batch}

        def load_state_dict(self, state):
            self.batch = state["batch"]

    pairs = PairStream(Stream(), GaussianNoise(0.1))
    torch.manual_seed(5)
    target, noisy = next(pairs)
    torch.manual_seed(5)
    assert torch.equal(next(pairs)[1], noisy) and torch.equal(target, torch.full((2, 1, 8, 8), 0.5))
    assert pairs.state_dict() == {"batch": 2}


# ---- networks -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_layers,field", [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field_is_measured_by_gradient(n_layers, field):
    """The gradient of one central output patch w.r.t. the input is non-zero on exactly a field x field square:
    70 x 70 for n_layers=3 (pix2pix's PatchGAN), 16 for 1."""
    torch.manual_seed(0)
    D = patchgan.Discriminator(channels=1, paired=False, width=4, n_layers=n_layers, norm="none").double()
    for m in D.modules():  # positive weights: no accidental cancellation inside the field
        if isinstance(m, nn.Conv2d):
            nn.init.uniform_(m.weight, 0.01, 0.1)
    x = torch.randn(1, 1, 160, 160, dtype=torch.double, requires_grad=True)
    out = D.net(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = x.grad[0, 0].abs().sum(1).nonzero(), x.grad[0, 0].abs().sum(0).nonzero()
    assert rows.max() - rows.min() + 1 == field == patchgan.receptive_field(n_layers)
    assert cols.max() - cols.min() + 1 == field


def test_patchgan_sees_the_pair_concatenated_on_channels():
    D = patchgan.Discriminator(channels=3, extra_channels=1, paired=True, width=8, n_layers=3)
    assert D.net[0].in_channels == 3 + 3 + 1
    image, condition = torch.randn(2, 3, 32, 32), torch.randn(2, 4, 32, 32)
    D.eval()
    out = D(image, condition)
    assert out.shape == (2, 4)  # 32 -> 16 -> 8 -> 4 -> 3 -> 2: 2 x 2 patches
    assert not torch.allclose(out, D(image, condition.flip(0)))  # the condition matters


@pytest.mark.parametrize("resolution,padded", [(32, 32), (28, 32)])
def test_unet_skips_join_the_matching_scales(resolution, padded):
    G = unet.Generator(resolution=resolution, channels=1, extra_channels=1, width=4, dropout=0.5, norm="batch")
    shapes = []
    for down in G.downs:
        down.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    ups_in = []
    for up in G.ups:
        up.register_forward_hook(lambda m, i, o: ups_in.append(tuple(i[0].shape[1:])))
    out = G(torch.randn(2, 2, resolution, resolution))
    assert out.shape == (2, 1, resolution, resolution)
    assert G.depth == 5 and shapes == [(4, 16, 16), (8, 8, 8), (16, 4, 4), (32, 2, 2), (32, 1, 1)]
    # each decoder layer but the innermost sees its input concatenated with the encoder map of its scale
    assert ups_in == [(32, 1, 1), (64, 2, 2), (32, 4, 4), (16, 8, 8), (8, 16, 16)]
    assert sum(isinstance(m, nn.Dropout) for m in G.modules()) == 3
    assert padded == G.padded


def test_unet_skip_carries_detail_past_the_bottleneck():
    """A change of one input pixel reaches the output near that pixel, and only there, through the outermost skip
    alone: every deeper encoder map is cut to zeros."""
    torch.manual_seed(0)
    G = unet.Generator(resolution=32, channels=1, width=4, dropout=0.0, norm="none").eval()
    G.downs[1].register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    x = torch.zeros(1, 1, 32, 32)
    y = x.clone()
    y[0, 0, 5, 7] = 1.0
    change = (G(y) - G(x)).abs()[0, 0]
    assert change[5, 7] > 0 and change[20:, 20:].max() == 0


def test_unet_depth_past_the_size_is_refused():
    with pytest.raises(ConfigError, match="depth=6: a 32 px image"):
        unet.Generator(resolution=32, channels=1, depth=6)


# ---- the objective -----------------------------------------------------------------------------------------
def test_g_loss_is_adversarial_plus_weighted_reconstruction():
    torch.manual_seed(0)
    cfg = composed("task=denoise", "model=pix2pix", "model.generator.width=4", "model.discriminator.width=4",
                   "task.reconstruction=l2", "task.reconstruction_weight=7", "dataset.channels=1")
    task = build(cfg.task)
    G, D = build(cfg.model.generator), build(cfg.model.discriminator)
    objective = task.objective(G, D, build(cfg.loss), {}, None, 100, None, True)
    assert isinstance(objective, PairedObjective)
    target = torch.rand(3, 1, 32, 32) * 2 - 1
    condition = task.degradation(target)
    d_step = objective.d_loss(target, condition, 0, 0)
    g_step = objective.g_loss(3, 0, d_step)
    output = d_step.fake
    adversarial = torch.nn.functional.softplus(-D(output, condition)).mean()  # ns: -log sigmoid(D(x, G(x)))
    expected = adversarial + 7 * (output - target).pow(2).mean()
    assert g_step.total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert g_step.logs["loss/G_reconstruction"].item() == pytest.approx((output - target).pow(2).mean().item(),
                                                                        rel=1e-6)


# ---- refusals, before training --------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides,message", [
    (["model.conditioning=acgan"], "model.conditioning=acgan conditions on class labels"),
    (["trainer.g_batch_size=8"], "trainer.g_batch_size=8: G's step trains on the D step's pairs"),
    (["augment=diffaugment"], "augment=diffaugment transforms D's inputs independently"),
    (["regularizer=bcr"], "regularizer=bcr (bCR) flips and shifts"),
    (["metrics.downstream.enabled=true"], "metrics.downstream.enabled=true trains classifiers"),
    (["model.generator.norm=batch"], "ema.bn=standing recomputes G's BatchNorm statistics from noise"),
    (["task.reconstruction=l3"], "task.reconstruction='l3' is not one of l1 | l2"),
    (["task.degradation.factor=3"], "task.degradation.factor=3 is not one of 2 | 4"),
    (["task.reconstruction_weight=-1"], "task.reconstruction_weight=-1 must be >= 0"),
    (["model.discriminator.n_layers=0"], "model.discriminator.n_layers=0 must be >= 1"),
    (["model.generator.dropout=1.0"], "model.generator.dropout=1.0 must be < 1"),
])
def test_options_of_noise_to_image_generation_are_refused_by_name(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(composed("task=superres", "model=pix2pix", *overrides))


def test_noise_models_are_refused_for_a_paired_task_and_the_unet_for_generation(tmp_path, data_root):
    with pytest.raises(ConfigError, match="task=denoise needs an image-to-image generator"):
        train_in_process(tmp_path, data_root, "task=denoise", "model=dcgan", steps=1)
    with pytest.raises(ConfigError, match="task=generate: ganrun.models.unet.Generator maps images to images"):
        train_in_process(tmp_path, data_root, "model=pix2pix", steps=1)


def test_toy_data_is_refused():
    with pytest.raises(ConfigError, match="task=inpaint degrades images: dataset=ring8"):
        validate(composed("task=inpaint", "model=pix2pix", "dataset=ring8"))


# ---- training -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", TASKS)
def test_one_training_step_per_task_moves_both_players(tmp_path, data_root, task):
    result = train_in_process(tmp_path, data_root, f"task={task}", "model=pix2pix", "loss=hinge",
                              "regularizer=r1", "ema.enabled=true", steps=1)
    assert result.step == 1
    for key in ("loss/D", "loss/G_adversarial", "loss/G_reconstruction", "penalty/r1"):
        assert math.isfinite(result.scalars[key]), key
    assert result.scalars["loss/G"] > 50 * result.scalars["loss/G_reconstruction"]  # lambda = 100 dominates


@pytest.mark.slow
def test_a_task_run_resumes_exactly_and_its_checkpoint_passes_the_trust_checks(tmp_path, data_root):
    """Degradations are drawn on the device from the checkpointed RNG: stopped at 3 and resumed to 6 == 6 straight."""
    options = ["task=inpaint", "task.degradation.shape=freeform", "model=pix2pix", "model.discriminator.norm=layer",
               "regularizer=r1", "trainer.batch_size=8"]
    straight, split = straight_and_split(tmp_path, data_root, *options, steps=6, split_at=3)
    a = torch.load(straight / "checkpoints" / "step_00000006.pt", weights_only=True)
    b = torch.load(split / "checkpoints" / "step_00000006.pt", weights_only=True)
    for name in ("generator", "discriminator"):
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)
    check_saved_config(b["config"], "the task checkpoint")  # the task group's _target_s are shipped targets
    assert b["config"]["task"]["degradation"]["_target_"] == "ganrun.tasks.Inpaint"


# ---- reporting ---------------------------------------------------------------------------------------------
def test_pair_scores_are_psnr_and_ssim_of_their_definitions():
    """PSNR = 10 log10(1 / MSE) per image on [0, 1] then averaged; SSIM 1 for identical images, below for others."""
    from ganrun.task_report import scores

    torch.manual_seed(0)
    target = torch.rand(2, 1, 32, 32) * 2 - 1
    output = target.clone()
    output[0] += 0.1  # [0, 1] error 0.05 on image 0, none... but for clamping: keep within range
    output[1] -= 0.2 * (target[1] > -0.5)
    unit = lambda x: ((x + 1) / 2).clamp(0, 1)  # noqa: E731
    mse = (unit(output) - unit(target)).pow(2).flatten(1).mean(1)
    expected = (10 * torch.log10(1 / mse)).mean()
    got = scores(output, target)
    assert got["PSNR"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert scores(target, target)["SSIM"].item() == pytest.approx(1.0, abs=1e-6) and got["SSIM"] < 0.99


@pytest.mark.slow
def test_a_task_run_logs_its_grid_and_metrics_to_tensorboard(tmp_path, data_root):
    """Read back with TensorBoard's own reader: the input | output | target grid, PSNR/SSIM of the outputs and of
    the inputs, FID of the outputs; IS and precision/recall (noise-to-image variety) are not reported."""
    from helpers import events

    train_in_process(tmp_path, data_root, "task=superres", "model=pix2pix", "trainer.sample_every=2",
                     "metrics.every=2", "metrics.num_samples=64", "metrics.num_real=100", "metrics.kid_subset_size=50",
                     "metrics.kid_subsets=5", "metrics.classifier_epochs=1", "metrics.pr_samples=50",
                     "metrics.download=false", "metrics.extractor=classifier", f"metrics.cache_dir={tmp_path}/cache",
                     "task.eval_samples=8", "trainer.num_samples=8", steps=2)
    acc = events(tmp_path / "run")
    assert "samples/input_output_target" in acc.Tags()["images"]
    image = acc.Images("samples/input_output_target")[-1]
    assert (image.width, image.height) == (2 + 12 * 34, 2 + 2 * 34)  # 4 triplets of 32 px per row, 8 pairs (trainer.num_samples): 2 rows
    tags = acc.Tags()["scalars"]
    for name in ("PSNR", "SSIM", "PSNR_input", "SSIM_input", "FID"):
        assert any(t.startswith(f"metrics/{name}_") for t in tags), name
    assert not any(t.startswith(("metrics/IS_", "metrics/precision_")) for t in tags)
    psnr = next(e.value for t in tags if t.startswith("metrics/PSNR_input") for e in acc.Scalars(t))
    assert 5 < psnr < 60
