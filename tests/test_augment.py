"""DiffAugment and instance noise: what each op does, and that real and fake get the same treatment."""

import pytest
import torch

from ganrun import augment
from ganrun.errors import ConfigError


def test_translation_shifts_content_with_zero_padding():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0  # one bright pixel per image
    out = augment.translation(x)
    positions = out.flatten(1).argmax(1)
    dy, dx = positions // 16 - 8, positions % 16 - 8
    assert out.sum(dim=(1, 2, 3)).eq(1).all()  # moved, not blurred or lost
    assert dy.abs().max() <= 2 and dx.abs().max() <= 2  # at most 1/8 of 16 px
    assert len(set(zip(dy.tolist(), dx.tolist()))) > 5  # drawn per sample
    edge = torch.ones(8, 1, 16, 16)
    assert (augment.translation(edge) == 0).any()  # padding enters as zeros


def test_cutout_zeroes_a_square_of_half_the_size():
    torch.manual_seed(0)
    out = augment.cutout(torch.ones(256, 3, 16, 16))
    zeroed = (out == 0).all(dim=1).flatten(1).sum(1)
    assert zeroed.max() == 64  # an 8 x 8 square when it lies inside the image
    assert (zeroed <= 64).all() and (zeroed > 0).all()


def test_color_changes_brightness_saturation_contrast_per_sample():
    torch.manual_seed(0)
    x = torch.rand(32, 3, 8, 8) * 2 - 1
    out = augment.color(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    shift = (out - x).mean(dim=(1, 2, 3))
    assert shift.std() > 0.05


def test_real_and_fake_get_the_same_transforms_and_gradients_flow():
    pipeline = augment.Pipeline({"d": augment.DiffAugment("color,translation,cutout")})
    images = torch.rand(4, 3, 16, 16)
    torch.manual_seed(1)
    as_real = pipeline(images, step=0)
    fake = images.clone().requires_grad_(True)
    torch.manual_seed(1)
    as_fake = pipeline(fake, step=0)
    assert torch.equal(as_real, as_fake)  # one pipeline, one policy for both sides of D
    as_fake.sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0  # differentiable: G learns through it


def test_non_images_are_refused():
    with pytest.raises(ConfigError, match="works on images"):
        augment.DiffAugment().check((2,))


def test_instance_noise_std_anneals_linearly_to_zero():
    noise = augment.InstanceNoise(std=0.5, anneal_steps=100)
    x = torch.zeros(200_000)
    torch.manual_seed(0)
    assert noise(x, 0).std().item() == pytest.approx(0.5, rel=0.01)
    assert noise(x, 50).std().item() == pytest.approx(0.25, rel=0.01)
    assert torch.equal(noise(x, 100), x) and torch.equal(noise(x, 150), x)
    assert augment.InstanceNoise(std=0.1, anneal_steps=0).sigma(10**6) == 0.1


# ---- each op against DiffAugment's definition (Zhao et al. 2020; mit-han-lab/data-efficient-gans DiffAugment_pytorch)
def test_color_is_brightness_then_saturation_then_contrast_with_the_papers_ranges():
    """out = c * (s * (x + b - m) + m - M) + M per sample, m the channel mean at each pixel, M the image mean:
    b ~ U[-0.5, 0.5), s ~ U[0, 2), c ~ U[0.5, 1.5). Each parameter is read back from the output (brightness moves
    only M, contrast alone scales the channel-mean image about M, saturation the colour off it), the output is
    rebuilt from them (tolerance 1e-5), and their ranges and means are checked over 2000 samples (mean tolerances
    >= 4 standard errors)."""
    torch.manual_seed(0)
    n = 2000
    x = torch.rand(n, 3, 5, 7, dtype=torch.float64) * 2 - 1
    out = augment.color(x)
    assert out.dtype == x.dtype
    m_x, M_x = x.mean(1, keepdim=True), x.mean((1, 2, 3), keepdim=True)
    m_out, M_out = out.mean(1, keepdim=True), out.mean((1, 2, 3), keepdim=True)
    b = M_out - M_x
    grey = m_x - M_x  # the channel-mean image about its mean: only contrast scales it
    c = ((m_out - M_out) * grey).sum((1, 2, 3), keepdim=True) / (grey * grey).sum((1, 2, 3), keepdim=True)
    colour = x - m_x  # off the channel mean: saturation and contrast scale it
    s = ((out - m_out) * colour).sum((1, 2, 3), keepdim=True) / (colour * colour).sum((1, 2, 3), keepdim=True) / c
    rebuilt = c * (s * (x - m_x) + m_x - M_x) + M_x + b
    assert torch.allclose(out, rebuilt, atol=1e-5, rtol=0)
    for value, low, high in ((b, -0.5, 0.5), (s, 0.0, 2.0), (c, 0.5, 1.5)):
        value = value.flatten()
        assert value.min() >= low - 1e-6 and value.max() < high + 1e-6
        assert value.min() < low + 0.02 and value.max() > high - 0.02  # the whole range is drawn
        assert value.mean().item() == pytest.approx((low + high) / 2, abs=0.03 * (high - low))
        assert len(set(value.round(decimals=6).tolist())) > n * 0.99  # per sample


def shifted(x, dy, dx):
    """x with output (i, j) reading input (i + dy, j + dx), zero where that is off the image."""
    out = torch.zeros_like(x)
    height, width = x.shape[-2:]
    rows_out = slice(max(0, -dy), min(height, height - dy))
    cols_out = slice(max(0, -dx), min(width, width - dx))
    rows_in = slice(max(0, dy), min(height, height + dy))
    cols_in = slice(max(0, dx), min(width, width + dx))
    out[..., rows_out, cols_out] = x[..., rows_in, cols_in]
    return out


@pytest.mark.parametrize("ratio,max_dy,max_dx", [(0.125, 2, 3), (0.25, 4, 6)])
def test_translation_is_an_integer_shift_with_zero_padding_drawn_uniformly(ratio, max_dy, max_dx):
    """Every output is its input shifted by integers |dy| <= round(ratio H), |dx| <= round(ratio W) (16 x 24
    images: not square), zeros entering at the edges; every allowed shift is drawn, and no other."""
    torch.manual_seed(0)
    height, width = 16, 24
    where = 1 + torch.arange(height * width, dtype=torch.float32).reshape(height, width)  # each pixel's own value
    x = torch.stack([where.expand(1500, -1, -1), torch.rand(1500, height, width) + 1], 1)
    out = augment.translation(x, ratio) if ratio != 0.125 else augment.translation(x)
    found = set()
    for o, xi in zip(out, x):
        i, j = (o[0] != 0).nonzero()[0].tolist()  # an output pixel that reads the image: which input pixel?
        source = int(o[0, i, j].item()) - 1
        dy, dx = source // width - i, source % width - j
        assert torch.equal(o, shifted(xi, dy, dx))
        found.add((dy, dx))
    assert found == {(dy, dx) for dy in range(-max_dy, max_dy + 1) for dx in range(-max_dx, max_dx + 1)}


@pytest.mark.parametrize("height,width", [(12, 18), (18, 12)])  # the square's side 6 (even) and 9 (odd) both ways
def test_cutout_is_a_square_of_half_the_size_at_a_uniform_centre(height, width):
    """The reference's cutout: a size_y x size_x block (round(H/2), round(W/2)) with its top-left at
    U{0..H - (size_y odd)} - size_y // 2 (likewise left), clipped to the image, zero on every channel; the rest
    untouched. Every allowed position is drawn, and no other."""
    torch.manual_seed(0)
    x = torch.rand(1500, 2, height, width) + 1
    out = augment.cutout(x)
    size_y, size_x = round(height / 2), round(width / 2)
    zero = out == 0
    assert torch.equal(zero[:, 0], zero[:, 1])  # the same square on every channel
    assert torch.equal(out[~zero], x[~zero])
    tops, lefts = set(), set()
    rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
    for mask in zero[:, 0]:
        r = mask.any(1).nonzero().flatten()
        c = mask.any(0).nonzero().flatten()
        top = r[0].item() if r[0] > 0 else r[-1].item() + 1 - size_y
        left = c[0].item() if c[0] > 0 else c[-1].item() + 1 - size_x
        square = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)
        assert torch.equal(mask, square)
        tops.add(top), lefts.add(left)
    assert tops == set(range(-(size_y // 2), height - size_y // 2 + (1 - size_y % 2)))
    assert lefts == set(range(-(size_x // 2), width - size_x // 2 + (1 - size_x % 2)))


def test_cutout_ratio_sets_the_side():
    torch.manual_seed(0)
    out = augment.cutout(torch.ones(200, 1, 16, 20), ratio=0.25)
    zeroed = (out == 0).flatten(1).sum(1)
    assert zeroed.max() == 4 * 5 and (zeroed > 0).all()


# ---- the policy
def test_diffaugment_applies_the_policys_ops_in_its_order():
    torch.manual_seed(0)
    x = torch.rand(64, 3, 16, 16) + 1
    only_translation = augment.DiffAugment("translation")(x, step=0)
    assert all(any(torch.equal(o, shifted(xi, dy, dx)) for dy in range(-2, 3) for dx in range(-2, 3))
               for o, xi in zip(only_translation, x))
    color_then_cutout = augment.DiffAugment(" color, ,cutout ")(x, step=0)  # spaces and empty items ignored
    assert (color_then_cutout == 0).all(1).flatten(1).sum(1).ge(16).all()  # the square stays zero: cutout last
    cutout_then_color = augment.DiffAugment("cutout,color")(x, step=0)
    assert not (cutout_then_color == 0).any()  # brightness moves the zeroed square off 0
    assert augment.DiffAugment().ops == ["color", "translation", "cutout"]


def test_images_are_accepted():
    augment.DiffAugment().check((3, 8, 8))
    augment.DiffAugment().check((1, 4, 6))


# ---- instance noise: its defaults and options
def test_instance_noise_defaults_are_the_shipped_configs_and_constant_noise():
    from pathlib import Path

    from omegaconf import OmegaConf

    conf = Path(augment.__file__).parents[1] / "conf" / "augment"
    assert augment.InstanceNoise().std == OmegaConf.load(conf / "instance_noise.yaml").instance_noise.std
    assert augment.DiffAugment().ops == OmegaConf.load(conf / "diffaugment.yaml").diffaugment.policy.split(",")
    constant = augment.InstanceNoise(std=0.3)  # anneal_steps 0 unless given: constant
    assert constant.sigma(0) == constant.sigma(10**6) == 0.3


def test_instance_noise_is_zero_mean_gaussian_per_element():
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 100_000).reshape(1000, 100)
    noise = augment.InstanceNoise(std=0.2, anneal_steps=10)(x, 5) - x  # sigma 0.1 half-way
    assert noise.mean().item() == pytest.approx(0.0, abs=0.002)  # 10 standard errors: 0.1 / sqrt(1e5) = 3e-4
    assert noise.std().item() == pytest.approx(0.1, rel=0.01)
    assert (noise.abs() > 0.3).float().mean().item() == pytest.approx(0.0027, abs=0.001)  # Gaussian tails: 3 sigma


# ---- the pipeline: the configured transforms in config order, their state and what they observe
class Affine:
    def __init__(self, a, b):
        self.a, self.b, self.seen = a, b, []

    def check(self, sample_shape):
        self.seen.append(sample_shape)

    def __call__(self, x, step):
        return self.a * x + self.b


class Stateful(Affine):
    def __init__(self, a, b, name):
        super().__init__(a, b)
        self.name = name

    def observe(self, real_out):
        return {f"{self.name}/mean": real_out.mean()}

    def state_dict(self):
        return {"a": self.a}

    def load_state_dict(self, state):
        self.a = state["a"]


def test_pipeline_applies_its_transforms_in_config_order():
    first, second = Affine(3.0, 1.0), Affine(-2.0, 0.5)
    pipeline = augment.Pipeline({"first": first, "second": second})
    x = torch.tensor([0.25, -1.0])
    assert torch.equal(pipeline(x, step=0), -2.0 * (3.0 * x + 1.0) + 0.5)
    assert pipeline.named == {"first": first, "second": second}
    pipeline.check([3, 8, 8])
    assert first.seen == second.seen == [(3, 8, 8)]
    assert torch.equal(augment.Pipeline(None)(x, step=0), x) and augment.Pipeline({}).named == {}


def test_pipeline_collects_what_its_transforms_observe_and_their_state_by_position():
    a, b = Stateful(2.0, 0.0, "a"), Stateful(5.0, 0.0, "b")
    pipeline = augment.Pipeline({"plain": Affine(1.0, 0.0), "a": a, "b": b})
    logs = pipeline.observe(torch.tensor([1.0, 3.0]))
    assert {k: v.item() for k, v in logs.items()} == {"a/mean": 2.0, "b/mean": 2.0}
    assert pipeline.state_dict() == {"1": {"a": 2.0}, "2": {"a": 5.0}}
    fresh_a, fresh_b = Stateful(0.0, 0.0, "a"), Stateful(0.0, 0.0, "b")
    fresh = augment.Pipeline({"plain": Affine(1.0, 0.0), "a": fresh_a, "b": fresh_b})
    fresh.load_state_dict({"2": {"a": 7.0}})  # only the positions saved
    assert fresh_a.a == 0.0 and fresh_b.a == 7.0
    fresh.load_state_dict(pipeline.state_dict())
    assert fresh_a.a == 2.0 and fresh_b.a == 5.0
    assert augment.Pipeline({"plain": Affine(1.0, 0.0)}).observe(torch.ones(2)) == {}
