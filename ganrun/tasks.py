"""What a run learns to make: images from noise (`task=generate`, the default) or a target image from a degraded
copy of it (the paired image-to-image tasks `task=superres | inpaint | denoise`, pix2pix's setting).

A paired task changes three things, all outside the loop (ganrun/train.py reads `(real, condition)` batches and
calls the objective either way):

- the data: `PairStream` wraps the run's batch stream and yields `(target, input)`: the clean images and their
  degradation, drawn ON THE DEVICE from the run's global RNG right after the batch, so the checkpointed RNG state
  makes a resumed run draw exactly the degradations of an uninterrupted one;
- the objective: `PairedObjective` (ganrun/objective.py) runs G on the input, shows D (input, output) pairs and adds
  the reconstruction term (pix2pix: cGAN loss + lambda * L1);
- the checks: options that only mean something for noise-to-image generation are refused by name, in one line,
  before anything is built (`refuse_options`, called by ganrun.validate).

Degradations take images in [-1, 1] (N, C, H, W) and an optional `torch.Generator` living on the images' device
(the fixed evaluation set uses a seeded one; training uses the global RNG).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from ganrun.errors import ConfigError
from ganrun.perceptual import perceptual_content


# ---- degradations
class Downsample:
    """Super-resolution input: the image shrunk by `factor` with antialiasing (torchvision's bicubic resize with
    antialias=True, the same filter as PIL's BICUBIC resize), then brought back to full size by plain bicubic
    upsampling. G's input is that upsampled low-res image, not the low-res image itself: pix2pix's U-Net maps an
    H x W image to an H x W image with skips at every scale, the upsampled image is the classical baseline the
    output must beat (so G only learns the missing detail, as SRCNN's pre-upsampling), and the (input, output)
    pair D sees is then two images of one size."""

    extra_channels = 0

    def __init__(self, factor: int = 4):
        self.factor = int(factor)

    def low(self, x: torch.Tensor) -> torch.Tensor:
        """The antialiased low-res image (H/factor x W/factor), clamped to [-1, 1]."""
        h, w = x.shape[-2:]
        if h % self.factor or w % self.factor:
            raise ConfigError(f"task.degradation.factor={self.factor} must divide the image size {h}x{w}.")
        low = TF.resize(x, [h // self.factor, w // self.factor], interpolation=TF.InterpolationMode.BICUBIC,
                        antialias=True)
        return low.clamp(-1.0, 1.0)  # bicubic overshoots at edges; an image stays in the image range (as PIL's)

    def up(self, low: torch.Tensor, size) -> torch.Tensor:
        """Bicubic upsampling back to `size`, clamped to the image range (bicubic overshoots at edges)."""
        return F.interpolate(low, size=tuple(size), mode="bicubic", align_corners=False).clamp(-1.0, 1.0)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.up(self.low(x), x.shape[-2:])


class Inpaint:
    """Image completion input: the image with holes filled with `fill` (0: mid-grey in [-1, 1]) and the mask
    (1 = hole) as an extra last channel, so G knows what to fill (Pathak et al. 2016 give it implicitly;
    free-form inpainting, Yu et al. 2019, gives it as a channel as here).

    shape=rectangle: one axis-aligned hole per image, height and width each uniform in
    [min_size, max_size] x the image side (rounded to pixels), placed uniformly inside the image.
    shape=freeform: one brush stroke per image, a random walk of `STROKE_VERTICES` vertices (steps of up to half
    the side) drawn with a round brush whose diameter is uniform in [min_size, max_size] x the side."""

    extra_channels = 1
    STROKE_VERTICES = 5

    def __init__(self, shape: str = "rectangle", min_size: float = 0.25, max_size: float = 0.5, fill: float = 0.0):
        if min_size > max_size:
            raise ConfigError(f"task.degradation.min_size={min_size} must be <= task.degradation.max_size={max_size}.")
        self.shape, self.min_size, self.max_size, self.fill = shape, float(min_size), float(max_size), float(fill)

    def mask(self, n: int, h: int, w: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 1, h, w) float mask, 1 inside the holes."""
        if self.shape == "rectangle":
            return self.rectangles(n, h, w, device, generator)
        return self.strokes(n, h, w, device, generator)[0]

    def _uniform(self, n, device, generator, low=0.0, high=1.0):
        return low + (high - low) * torch.rand(n, device=device, generator=generator)

    def _sizes(self, n: int, side: int, device, generator) -> torch.Tensor:
        """Integer sizes uniform over round(min_size * side) .. round(max_size * side), at least 1 pixel."""
        low, high = max(1, round(self.min_size * side)), max(1, round(self.max_size * side))
        return low + (self._uniform(n, device, generator) * (high - low + 1)).floor().clamp(max=high - low)

    def rectangles(self, n, h, w, device, generator=None) -> torch.Tensor:
        heights, widths = self._sizes(n, h, device, generator), self._sizes(n, w, device, generator)
        tops = (self._uniform(n, device, generator) * (h - heights + 1)).floor()
        lefts = (self._uniform(n, device, generator) * (w - widths + 1)).floor()
        rows = torch.arange(h, device=device).view(1, h, 1)
        cols = torch.arange(w, device=device).view(1, 1, w)
        inside = ((rows >= tops.view(n, 1, 1)) & (rows < (tops + heights).view(n, 1, 1))
                  & (cols >= lefts.view(n, 1, 1)) & (cols < (lefts + widths).view(n, 1, 1)))
        return inside.unsqueeze(1).float()

    def strokes(self, n, h, w, device, generator=None):
        """(mask, vertices (n, V, 2) as (row, col), diameters (n,)): every pixel within diameter/2 of the
        polyline through the vertices is a hole."""
        side = min(h, w)
        v = self.STROKE_VERTICES
        start = torch.stack([self._uniform(n, device, generator, 0, h - 1),
                             self._uniform(n, device, generator, 0, w - 1)], -1)
        angle = self._uniform(n * (v - 1), device, generator, 0, 2 * math.pi).view(n, v - 1)
        length = self._uniform(n * (v - 1), device, generator, 0, side / 2).view(n, v - 1)
        steps = torch.stack([length * torch.sin(angle), length * torch.cos(angle)], -1)
        vertices = torch.cat([start.unsqueeze(1), start.unsqueeze(1) + steps.cumsum(1)], 1)
        vertices = torch.stack([vertices[..., 0].clamp(0, h - 1), vertices[..., 1].clamp(0, w - 1)], -1)
        diameters = self._uniform(n, device, generator, self.min_size * side, self.max_size * side)
        grid = torch.stack(torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                                          torch.arange(w, device=device, dtype=torch.float32), indexing="ij"), -1)
        points = grid.view(1, 1, h * w, 2)
        a, b = vertices[:, :-1].unsqueeze(2), vertices[:, 1:].unsqueeze(2)  # (n, V-1, 1, 2) segment ends
        ab = b - a
        t = (((points - a) * ab).sum(-1) / ab.pow(2).sum(-1).clamp_min(1e-12)).clamp(0, 1)
        distance = (points - (a + t.unsqueeze(-1) * ab)).norm(dim=-1).amin(1)  # (n, h*w) to the polyline
        mask = (distance <= diameters.view(n, 1) / 2).view(n, 1, h, w).float()
        return mask, vertices, diameters

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mask = self.mask(x.shape[0], x.shape[-2], x.shape[-1], x.device, generator).to(x.dtype)
        return torch.cat([x * (1 - mask) + self.fill * mask, mask], 1)


class GaussianNoise:
    """Denoising input: the image plus white Gaussian noise of standard deviation `sigma` in units of the [0, 1]
    pixel range (denoising papers' convention: sigma=25/255 ~ 0.1), i.e. 2 * sigma on ganrun's [-1, 1] scale.
    Not clipped, so the noise is exactly Gaussian."""

    extra_channels = 0

    def __init__(self, sigma: float = 0.1):
        self.sigma = float(sigma)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
        return x + 2.0 * self.sigma * noise


# ---- the data stream of a paired task
class PairStream:
    """The run's batch stream as (target, input) pairs: each batch of clean images and its degradation, drawn on
    the batch's device from the global RNG (checkpointed), so resume stays exact. Labels are dropped: the
    condition of a paired task is its input image. The position is the wrapped stream's."""

    def __init__(self, stream, degradation):
        self.stream, self.degradation = stream, degradation

    def __iter__(self):
        return self

    def __next__(self):
        target, _ = next(self.stream)
        return target, self.degradation(target)

    def state_dict(self) -> dict:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state)


# ---- the tasks (conf/task/*.yaml)
class Generate:
    """Noise (and class) to image: ganrun's GANs as they always were."""

    paired = False

    def __init__(self, name: str = "generate", paired: bool = False, extra_channels: int = 0):
        self.name = name

    def pairs(self, stream):
        return stream

    def evaluation(self, *args, **kwargs):
        return None  # the reporter's noise grid and metrics

    def objective(self, *args, **kwargs):
        from ganrun.objective import GANObjective

        return GANObjective(*args, **kwargs)

    def check_shapes(self, G, D, info, z_dim: int, device) -> None:
        from ganrun.models import check_shapes

        if getattr(G, "image_to_image", False):
            raise ConfigError(f"task={self.name}: {type(G).__module__}.{type(G).__name__} maps images to images; "
                              "choose a paired task (task=superres | inpaint | denoise) or a noise-to-image model.")
        check_shapes(G, D, info, z_dim, device)


class PairedTask:
    """A degraded image -> its clean original: pix2pix's conditional GAN plus a reconstruction term
    (`reconstruction` l1 | l2, weighted by `reconstruction_weight`; pix2pix: L1, lambda = 100)."""

    paired = True

    def __init__(self, name: str, degradation, paired: bool = True, extra_channels: int = 0,
                 reconstruction: str = "l1", reconstruction_weight: float = 100.0, eval_samples: int = 64,
                 adversarial_weight: float = 1.0, perceptual_weight: float = 0.0, perceptual_layers=("relu5_4",),
                 features=None):
        if extra_channels != degradation.extra_channels:
            raise ConfigError(f"task.extra_channels={extra_channels}: {type(degradation).__name__} gives G "
                              f"{degradation.extra_channels} extra input channel(s).")
        self.name, self.degradation, self.extra_channels = name, degradation, int(extra_channels)
        self.reconstruction, self.reconstruction_weight = reconstruction, float(reconstruction_weight)
        self.eval_samples = int(eval_samples)
        self.adversarial_weight = float(adversarial_weight)
        # SRGAN's perceptual (VGG) content loss to the target (Ledig et al. 2017); weight 0: no network is built
        self.perceptual_weight, self.perceptual_layers = float(perceptual_weight), list(perceptual_layers)
        self.features = features(layers=self.perceptual_layers) if self.perceptual_weight > 0 else None

    def pairs(self, stream) -> PairStream:
        return PairStream(stream, self.degradation)

    def reconstruction_loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.l1_loss if self.reconstruction == "l1" else F.mse_loss
        return loss(output.float(), target.float())

    def generator_terms(self, output: torch.Tensor, target: torch.Tensor, condition: torch.Tensor) -> dict:
        """{name: (weight, loss)} of G's terms besides the adversarial one: the reconstruction, and the
        perceptual content loss when `perceptual_weight` > 0."""
        terms = {"reconstruction": (self.reconstruction_weight, self.reconstruction_loss(output, target))}
        if self.features is not None:
            terms["perceptual"] = (self.perceptual_weight,
                                   perceptual_content(self.features, output, target, self.perceptual_layers))
        return terms

    def evaluation(self, *args, **kwargs):
        """The reporter's fixed evaluation set (ganrun.task_report.EvalPairs)."""
        from ganrun.task_report import EvalPairs

        return EvalPairs(self, *args, **kwargs)

    def objective(self, *args, **kwargs):
        from ganrun.objective import PairedObjective

        return PairedObjective(*args, task=self, **kwargs)

    def check_shapes(self, G, D, info, z_dim: int, device) -> None:
        check_image_to_image(self.name, G, D, info, device,
                             lambda x: self.degradation(x, torch.Generator(device).manual_seed(0)))


def check_image_to_image(name: str, G, D, info, device, make_input) -> None:
    """Refuse networks that cannot play an image-to-image task, before training: G must map the input
    (`make_input` of images of the dataset's shape: the image's channels plus the task's extra ones) to an image
    of the dataset's shape, D must score (output, input) pairs (an unpaired D ignores the input)."""
    if not getattr(G, "image_to_image", False):
        raise ConfigError(f"task={name} needs an image-to-image generator (model=pix2pix: U-Net G, "
                          f"model=transformer_net); {type(G).__module__}.{type(G).__name__} maps noise to images.")
    if info.points:
        raise ConfigError(f"task={name} maps images to images; dataset={info.name} is 2-D points.")
    shape = info.sample_shape
    x = torch.zeros(2, *shape, device=device)
    was_training = G.training
    G.eval()
    with torch.no_grad():
        condition = make_input(x)
        out = G(condition)
        score = D(out, condition)
    G.train(was_training)
    if tuple(out.shape[1:]) != tuple(shape):
        raise ConfigError(f"the generator makes images of shape {tuple(out.shape[1:])} from inputs of shape "
                          f"{tuple(condition.shape[1:])}, but dataset={info.name} has sample shape {shape}.")
    if score.ndim < 1 or score.shape[0] != 2:
        raise ConfigError(f"the discriminator returns shape {tuple(score.shape)} per batch of 2 pairs.")


IMAGE_TO_IMAGE_GENERATORS = ("ganrun.models.unet.Generator", "ganrun.models.transformer_net.Generator")


# ---- options a paired task refuses (called by ganrun.validate on the plain config)
def refuse_options(config: dict) -> None:
    """One ConfigError line naming the option, for options that belong to noise-to-image generation only."""
    task = config.get("task") or {}
    if task.get("_target_", "ganrun.tasks.Generate") == "ganrun.tasks.Generate":
        return  # noise-to-image; every other task maps images to images (task=style: D sees no pairs)
    name = f"task={task.get('name', '?')}"
    model, trainer = config.get("model") or {}, config.get("trainer") or {}
    dataset, metrics = config.get("dataset") or {}, config.get("metrics") or {}
    if dataset.get("shape"):
        raise ConfigError(f"{name} degrades images: dataset={dataset.get('name')} (toy 2-D points) has none.")
    if model.get("conditioning", "none") != "none":
        raise ConfigError(f"{name}: model.conditioning={model['conditioning']} conditions on class labels; a paired "
                          "task's G is conditioned on its input image (use model.conditioning=none).")
    if trainer.get("g_batch_size") not in (None, trainer.get("batch_size")):
        raise ConfigError(f"{name}: trainer.g_batch_size={trainer['g_batch_size']}: G's step trains on the D step's "
                          "pairs (leave it null).")
    if config.get("augment") and task.get("paired"):
        raise ConfigError(f"{name}: augment={','.join(config['augment'])} transforms D's inputs independently for "
                          "real and fake; a pair (input, output) must be transformed together (use augment=none).")
    for reg_name, reg in {**(config.get("regularizer") or {}),
                          **((config.get("loss") or {}).get("regularizers") or {})}.items():
        bcr = isinstance(reg, dict) and str(reg.get("_target_", "")).endswith("BalancedConsistency")
        if bcr and task.get("paired"):
            raise ConfigError(f"{name}: regularizer={reg_name} (bCR) flips and shifts D's image but not its input "
                              "image, which breaks the pair.")
    if (metrics.get("downstream") or {}).get("enabled"):
        raise ConfigError(f"{name}: metrics.downstream.enabled=true trains classifiers on generated samples of "
                          "each class; a paired task generates no classes.")
    ema = config.get("ema") or {}
    generator = model.get("generator") or {}
    if ema.get("enabled") and ema.get("bn") == "standing" and generator.get("norm") == "batch" \
            and generator.get("_target_") in IMAGE_TO_IMAGE_GENERATORS:
        raise ConfigError(f"{name}: ema.bn=standing recomputes G's BatchNorm statistics from noise, which a paired "
                          "task's G does not take: use ema.bn=batch, model.generator.norm=instance, or "
                          "ema.enabled=false.")
