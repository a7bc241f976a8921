"""Adaptive discriminator augmentation, ADA (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data"; the reference is NVlabs/stylegan2-ada-pytorch, training/augment.py and training_loop.py).

Every input of D (reals, fakes, and G's fakes in its step) goes through the same random, differentiable pipeline;
each op acts on a sample with probability p x its strength (`strengths`: 1 unless given, as in the reference's
`augpipe` presets; R3GAN's pipeline halves the colour ops': AugmentPipe(brightness=0.5, ...)), its parameters drawn
per sample on the input's device, with the reference's default ranges:

  geometric, composed into one matrix per sample and applied in one warp with reflection padding:
    xflip (x -> -x, half the time), rotate90 (k x 90 degrees, k uniform in 0..3), xint (an integer translation,
    uniform up to 1/8 of the size), scale (isotropic, 2^N(0, 0.2^2)), rotate (uniform angle, applied before and
    after aniso, each with 1 - sqrt(1 - p) so that one or the other acts with p), aniso (2^N(0, 0.2^2) along x,
    its inverse along y), xfrac (a fractional translation, N(0, (1/8 of the size)^2));
  colour, in this order: brightness (+N(0, 0.2^2)), contrast (x 2^N(0, 0.5^2), about 0: mid-grey of [-1, 1]
    data), lumaflip (the Householder reflection about the luma axis v = (1, 1, 1)/sqrt(3), half the time),
    hue (a rotation about v, uniform angle), saturation (x 2^N(0, 1) off the luma axis);
  cutout: a zeroed square of half the size at a uniform centre (the reference's optional last op).
Presets name groups as the reference's `augpipe` does: blit, geom, color, bg, bgc (the default).

What kornia does: the warp (`kornia.geometry.transform.warp_affine`, bilinear, reflection padding), brightness and
contrast (`kornia.enhance.adjust_brightness`/`adjust_contrast`, unclipped), and the hue rotation about the luma axis
(`kornia.geometry.conversions.axis_angle_to_rotation_matrix`). What it cannot express, so it is written here:
- the geometric matrices: kornia builds one op's matrix about a centre (`get_rotation_matrix2d`, ...), not the
  reference's chain of seven per-sample ops; they are 3x3 products in centred pixel coordinates (`geometric_matrix`);
- lumaflip and saturation: kornia's `adjust_saturation`/`adjust_hue` act in HSV on [0, 1] images (a non-linear
  hue shift and S scale) and `adjust_saturation_with_gray_subtraction` blends towards Rec.601 grey; the reference
  defines linear maps about the equal-weight luma axis, so they are its 3x3 matrices, composed with kornia's hue
  rotation and applied in one batched product;
- cutout: kornia's RandomErasing draws area and aspect ranges and positions inside the image, on the host, within
  its own call; the reference's square of a fixed side at a uniform centre is a two-line mask of drawn parameters.
The reference also warps at twice the resolution with a wavelet low-pass filter (alias-free resampling); this warps
once at the image's resolution (bilinear), trading a little aliasing for a quarter of the pixels.

p is fixed (`target: null`), scheduled by whatever sets the attribute `p`, or adaptive: D's outputs on the real
batch come in through `observe` (the objective calls it each D step) and every `interval` D steps
r_t = E[sign(D(x_real))] over them moves p by sign(r_t - target) * images / (speed_kimg * 1000), clamped to [0, 1]
(0 -> 1 in speed_kimg thousand images; the reference clamps only at 0). p and the accumulators stay tensors on the
device (no host sync), are saved in the checkpoint and exactly resumed. Setting p from outside while the adaptive
rule tunes it is refused (`augment.ada.target` must be null for a schedule of p).
"""

from __future__ import annotations

import math

import kornia
import torch

from ganrun import distributed
from ganrun.errors import ConfigError

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
OPS = (*GEOMETRIC, *COLOUR, "cutout")  # the order they act in
PRESETS = {"blit": GEOMETRIC[:3], "geom": GEOMETRIC[3:], "color": COLOUR, "bg": GEOMETRIC, "bgc": GEOMETRIC + COLOUR}

# The reference's default ranges (AugmentPipe's keyword defaults)
XINT_MAX = 0.125  # of the size
SCALE_STD = ANISO_STD = 0.2  # log2
ROTATE_MAX = HUE_MAX = 1.0  # of a half turn either way
XFRAC_STD = 0.125  # of the size
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # log2
SATURATION_STD = 1.0  # log2
CUTOUT_SIZE = 0.5  # of the size


def parse_ops(ops) -> tuple[str, ...]:
    """A comma-separated string (or a list) of op and preset names -> the ops, in the order they act."""
    names = [n.strip() for n in (ops.split(",") if isinstance(ops, str) else ops) if n.strip()]
    unknown = [n for n in names if n not in OPS and n not in PRESETS]
    if unknown:
        raise ConfigError(f"augment.ada.ops: unknown {', '.join(unknown)}; choose from {' | '.join((*OPS, *PRESETS))}.")
    chosen = {op for n in names for op in PRESETS.get(n, (n,))}
    return tuple(op for op in OPS if op in chosen)


# ---- the per-sample parameters (identity where an op does not act)
def _gated(value: torch.Tensor, probability, identity: float) -> torch.Tensor:
    """`value` where a uniform draw per sample falls below `probability`, `identity` elsewhere."""
    acts = torch.rand(value.shape[0], *([1] * (value.dim() - 1)), device=value.device) < probability
    return torch.where(acts, value, torch.full_like(value, identity))


def _pixels(t: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(x, y) fractions of the size -> pixels (no tensor made from host numbers: that would copy and sync)."""
    return torch.stack([t[:, 0] * width, t[:, 1] * height], 1)


def parse_strengths(strengths) -> dict[str, float]:
    """Each op's strength (its probability is p x strength): 1 unless `strengths` (op -> number) names it."""
    given = dict(strengths or {})
    unknown = [name for name in given if name not in OPS]
    if unknown:
        raise ConfigError(f"augment.ada.strengths.{unknown[0]}: no such op; the ops are {' | '.join(OPS)}.")
    return {op: float(given.get(op, 1.0)) for op in OPS}


def draw(ops, batch: int, height: int, width: int, p: torch.Tensor, strengths: dict | None = None
         ) -> dict[str, torch.Tensor]:
    """The parameters of each op in `ops` for `batch` samples, acting with probability `p` (a tensor on the
    device the draws are made on) times the op's strength (`strengths`, 1 when absent): translations in pixels
    (x, y), angles in radians, factors; cutout's (side as a fraction of the size, 0 where it does not act;
    centre x, y as fractions)."""
    device = p.device
    strengths = strengths or {}
    rand = lambda *shape: torch.rand(batch, *shape, device=device)  # noqa: E731
    randn = lambda *shape: torch.randn(batch, *shape, device=device)  # noqa: E731
    at = lambda op: p * strengths.get(op, 1.0)  # noqa: E731  (the op's probability, still a device tensor)
    p_rotate = 1 - torch.sqrt((1 - at("rotate")).clamp(0, 1))  # before or after aniso: one or the other acts
    draws = {
        "xflip": lambda: _gated(torch.floor(rand() * 2), at("xflip"), 0.0),
        "rotate90": lambda: _gated(torch.floor(rand() * 4), at("rotate90"), 0.0),
        "xint": lambda: torch.round(_pixels(_gated((rand(2) * 2 - 1) * XINT_MAX, at("xint"), 0.0), width, height)),
        "scale": lambda: _gated(torch.exp2(randn() * SCALE_STD), at("scale"), 1.0),
        "rotate": lambda: torch.stack([_gated((rand() * 2 - 1) * math.pi * ROTATE_MAX, p_rotate, 0.0)
                                       for _ in ("before", "after")], 1),  # around aniso, independently
        "aniso": lambda: _gated(torch.exp2(randn() * ANISO_STD), at("aniso"), 1.0),
        "xfrac": lambda: _pixels(_gated(randn(2) * XFRAC_STD, at("xfrac"), 0.0), width, height),
        "brightness": lambda: _gated(randn() * BRIGHTNESS_STD, at("brightness"), 0.0),
        "contrast": lambda: _gated(torch.exp2(randn() * CONTRAST_STD), at("contrast"), 1.0),
        "lumaflip": lambda: _gated(torch.floor(rand() * 2), at("lumaflip"), 0.0),
        "hue": lambda: _gated((rand() * 2 - 1) * math.pi * HUE_MAX, at("hue"), 0.0),
        "saturation": lambda: _gated(torch.exp2(randn() * SATURATION_STD), at("saturation"), 1.0),
        "cutout": lambda: torch.cat([_gated(torch.full((batch, 1), CUTOUT_SIZE, device=device), at("cutout"), 0.0),
                                     rand(2)], 1),
    }
    return {op: draws[op]() for op in ops}


# ---- geometric: one forward matrix per sample (output pixel = G @ input pixel, about the image centre)
def _affine(a, b, c, d, tx=None, ty=None) -> torch.Tensor:
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    rows = [a, b, zero if tx is None else tx, c, d, zero if ty is None else ty, zero, zero, one]
    return torch.stack([r.to(a.dtype) for r in rows], -1).view(-1, 3, 3)


def _rotation(theta: torch.Tensor) -> torch.Tensor:
    cos, sin = torch.cos(theta), torch.sin(theta)
    return _affine(cos, -sin, sin, cos)


def _translation(t: torch.Tensor) -> torch.Tensor:
    one = torch.ones_like(t[:, 0])
    return _affine(one, 0 * one, 0 * one, one, t[:, 0], t[:, 1])


def geometric_matrix(params: dict[str, torch.Tensor], batch: int, device) -> torch.Tensor:
    """The forward map of the geometric ops in `params`, composed in the reference's order (xflip acts first)."""
    one = torch.ones(batch, device=device)
    steps = []
    if "xflip" in params:
        steps.append(_affine(1 - 2 * params["xflip"], 0 * one, 0 * one, one))
    if "rotate90" in params:  # entries rounded: multiples of 90 degrees move pixels exactly
        steps.append(torch.round(_rotation(-math.pi / 2 * params["rotate90"])))
    if "xint" in params:
        steps.append(_translation(params["xint"]))
    if "scale" in params:
        s = params["scale"]
        steps.append(_affine(s, 0 * s, 0 * s, s))
    if "rotate" in params:
        steps.append(_rotation(-params["rotate"][:, 0]))
    if "aniso" in params:
        s = params["aniso"]
        steps.append(_affine(s, 0 * s, 0 * s, 1 / s))
    if "rotate" in params:
        steps.append(_rotation(-params["rotate"][:, 1]))
    if "xfrac" in params:
        steps.append(_translation(params["xfrac"]))
    matrix = torch.eye(3, device=device).expand(batch, 3, 3)
    for step in steps:
        matrix = step @ matrix
    return matrix


def warp(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """x under the per-sample forward maps `matrix` (about the centre, in pixels); samples whose map is the
    identity are passed through untouched (bilinear resampling at pixel centres is exact only up to rounding)."""
    _, _, height, width = x.shape
    centre = _pixels(torch.full((len(x), 2), 0.5, device=x.device), width - 1, height - 1)
    to_centre, back = _translation(-centre), _translation(centre)
    pixels = back @ matrix @ to_centre  # in kornia's pixel coordinates: origin at the top-left pixel's centre
    warped = kornia.geometry.transform.warp_affine(x, pixels[:, :2].to(x.dtype), (height, width), mode="bilinear",
                                                   padding_mode="reflection", align_corners=True)
    moved = (matrix != torch.eye(3, device=x.device)).flatten(1).any(1)
    return torch.where(moved[:, None, None, None], warped, x)


# ---- colour
def colour_matrix(params: dict[str, torch.Tensor], batch: int, device) -> torch.Tensor:
    """The linear colour maps (lumaflip, hue, saturation: no offsets) composed, 3x3 per sample."""
    eye = torch.eye(3, device=device).expand(batch, 3, 3)
    luma = torch.full((3,), 1 / math.sqrt(3), device=device)  # the luma axis
    on_axis = torch.outer(luma, luma)  # projection onto the luma axis
    matrix = eye
    if "lumaflip" in params:
        matrix = (eye - 2 * on_axis * params["lumaflip"][:, None, None]) @ matrix
    if "hue" in params:
        matrix = kornia.geometry.conversions.axis_angle_to_rotation_matrix(luma * params["hue"][:, None]) @ matrix
    if "saturation" in params:  # written as I + (I - P)(s - 1): exactly I at s = 1
        matrix = (eye + (eye - on_axis) * (params["saturation"][:, None, None] - 1)) @ matrix
    return matrix


def recolour(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """The colour ops in order: brightness, contrast (kornia), then the composed linear maps. A 1-channel image
    takes the mean row of the map, as the reference does (lumaflip negates; hue and saturation do nothing)."""
    batch = len(x)
    if "brightness" in params:
        x = kornia.enhance.adjust_brightness(x, params["brightness"], clip_output=False)
    if "contrast" in params:
        x = kornia.enhance.adjust_contrast(x, params["contrast"], clip_output=False)
    linear = {op: params[op] for op in ("lumaflip", "hue", "saturation")[: 1 if x.shape[1] == 1 else 3] if op in params}
    if not linear:
        return x
    matrix = colour_matrix(linear, batch, x.device).to(x.dtype)
    if x.shape[1] == 1:
        mapped = x * matrix.sum(2).mean(1)[:, None, None, None]
    else:
        mapped = torch.einsum("bij,bjhw->bihw", matrix, x)
    changed = (matrix != torch.eye(3, device=x.device)).flatten(1).any(1)
    return torch.where(changed[:, None, None, None], mapped, x)


def apply(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """x under the drawn `params`: the geometric ops in one warp, the colour ops, then cutout."""
    geometric = {op: params[op] for op in GEOMETRIC if op in params}
    if geometric:
        x = warp(x, geometric_matrix(geometric, len(x), x.device))
    x = recolour(x, params)
    if "cutout" in params:
        x = x * cutout_mask(params["cutout"], x.shape[2], x.shape[3]).to(x.dtype)
    return x


def cutout_mask(params: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """1 outside, 0 inside each sample's square (the reference's: pixel centres within half the side of the centre)."""
    size, cx, cy = (params[:, i, None, None] for i in range(3))
    cols = (torch.arange(width, device=params.device) + 0.5) / width
    rows = (torch.arange(height, device=params.device)[:, None] + 0.5) / height
    return (((cols - cx).abs() >= size / 2) | ((rows - cy).abs() >= size / 2))[:, None]


class ADA:
    """The pipeline with its probability `p`, fixed or tuned from D's real outputs (`observe`); see the module."""

    def __init__(self, ops="bgc", p: float = 0.0, target: float | None = 0.6, interval: int = 4,
                 speed_kimg: float = 500.0, strengths: dict | None = None):  # ranges: ganrun.schema
        self.ops = parse_ops(ops)
        self.strengths = parse_strengths(strengths)
        self.target = None if target is None else float(target)
        self.interval, self.speed_kimg = int(interval), float(speed_kimg)
        self._p = torch.tensor(float(p))
        self._reset_counts(torch.zeros(()))

    def _reset_counts(self, sign_sum: torch.Tensor) -> None:
        """What the adaptive rule has seen since its last move of p: signs summed, outputs, images, D steps."""
        self._sign_sum, self._outputs, self._images, self._pending = sign_sum, 0, 0, 0

    @property
    def p(self) -> torch.Tensor:
        return self._p

    @p.setter
    def p(self, value) -> None:
        """Set p from outside (a schedule): a float or a tensor, kept on p's device without a host sync."""
        if self.target is not None:
            raise ConfigError(f"augment.ada.target={self.target}: p is set from outside (a schedule) while the "
                              "adaptive rule tunes it; set augment.ada.target=null to schedule augment.ada.p.")
        if isinstance(value, torch.Tensor):
            self._p = value.detach().to(self._p.device, torch.float32, non_blocking=True).reshape(())
        else:
            self._p = torch.full((), float(value), device=self._p.device)

    def refuse_schedule(self, name: str) -> str | None:
        """Why the scalar `name` cannot be scheduled (ganrun.schedules asks when it builds the run), else None."""
        if name == "p" and self.target is not None:
            return (f"the adaptive rule tunes p (augment.ada.target={self.target}); set augment.ada.target=null "
                    "to schedule it")
        return None

    def check(self, sample_shape: tuple) -> None:
        if len(sample_shape) != 3 or sample_shape[0] not in (1, 3):
            raise ConfigError("augment=ada works on images of 1 or 3 channels, not on samples of shape "
                              f"{sample_shape}.")

    def _on(self, device: torch.device) -> None:
        """p and the sum on the data's device (first call, or after a resume loaded them on the CPU)."""
        if self._p.device != device:
            self._p = self._p.to(device, non_blocking=True)
            self._sign_sum = self._sign_sum.to(device, non_blocking=True)

    def __call__(self, x: torch.Tensor, step: int) -> torch.Tensor:
        self._on(x.device)
        return apply(x, draw(self.ops, len(x), x.shape[2], x.shape[3], self._p, self.strengths))

    def observe(self, real_out: torch.Tensor) -> dict[str, torch.Tensor]:
        """D's outputs on this D step's real batch: every `interval` calls the adaptive rule moves p. Returns the
        scalars to log: p and this batch's E[sign(D(x_real))] (their log-window means are p and r_t)."""
        signs = real_out.detach().float().sign()
        self._on(signs.device)
        logs = {"augment/p": self._p, "augment/r_t": signs.mean()}
        if self.target is None:  # fixed or scheduled: r_t is only logged
            return logs
        self._sign_sum = self._sign_sum + signs.sum()
        self._outputs, self._images = self._outputs + signs.numel(), self._images + len(signs)
        self._pending += 1
        if self._pending >= self.interval:
            r_t = distributed.mean_over_ranks({"r_t": self._sign_sum / self._outputs})["r_t"]
            images = self._images * distributed.world_size()
            self._p = (self._p + torch.sign(r_t - self.target) * images / (self.speed_kimg * 1000)).clamp(0, 1)
            self._reset_counts(torch.zeros((), device=signs.device))
            logs["augment/p"] = self._p
        return logs

    def state_dict(self) -> dict:
        return {"p": self._p.detach().cpu(), "sign_sum": self._sign_sum.detach().cpu(), "outputs": self._outputs,
                "images": self._images, "pending": self._pending}

    def load_state_dict(self, state: dict) -> None:
        self._p = state["p"].float().reshape(())
        self._reset_counts(state["sign_sum"].float().reshape(()))
        self._outputs, self._images, self._pending = int(state["outputs"]), int(state["images"]), int(state["pending"])
