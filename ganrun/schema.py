"""Every config fact but its value, in one place: the type, the choices and the range of every key of every group.

Values, with the comments that explain them, are written once, in conf/ (MISSING here). Hydra types the top level
and the trainer, metrics and EMA sections when it composes (`GanrunSchema`); `ganrun.validate.validate` types every
group's node too (`ExperimentSchema`: the group slots typed, options that carry a `_target_` typed by
`TARGET_SCHEMAS`), then checks each field's `spec` (range, choices, finiteness of every float).

Choices are Enums, checked by value: the composed config keeps plain strings, because a checkpoint saves it as
plain data (loaded with weights_only) and the code compares it with strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


def spec(*, ge=None, gt=None, le=None, lt=None, choices=None, pattern=None, nonempty=None, length=None, each=None,
         items=None) -> Any:
    """A field without a default (its value lives in conf/) and the rules `validate` checks on its value:
    ge/gt/le/lt bounds, `choices` (an Enum or a tuple), a regular expression `pattern`, `nonempty` strings, a list's
    `length`, `each` (a spec dict for every list element), `items` (choices of each item of a comma-separated string).
    Float values must also be finite, always."""
    rules = {k: v for k, v in locals().items() if v is not None}
    return field(default=MISSING, metadata=rules)


PROBABILITY = dict(ge=0.0, le=1.0)


# ---- choices
class Norm(StrEnum):
    batch = "batch"
    instance = "instance"
    layer = "layer"
    none = "none"


class FlatNorm(StrEnum):  # norms of flat features (MLP): no instance norm
    batch = "batch"
    layer = "layer"
    none = "none"


class WeightParam(StrEnum):
    none = "none"
    spectral = "spectral"
    weight = "weight"


class Conditioning(StrEnum):
    none = "none"
    concat = "concat"
    projection = "projection"
    acgan = "acgan"


class GeneratorOutput(StrEnum):
    tanh = "tanh"
    linear = "linear"


class Resize(StrEnum):
    resize = "resize"
    pad = "pad"


class Layout(StrEnum):
    ring = "ring"
    grid = "grid"


class Decay(StrEnum):
    constant = "constant"
    linear = "linear"
    cosine = "cosine"


class DiffAugmentOp(StrEnum):
    color = "color"
    translation = "translation"
    cutout = "cutout"


AdaOp = StrEnum("AdaOp", [(n, n) for n in  # ganrun.ada.OPS and its PRESETS
                          ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
                           "lumaflip", "hue", "saturation", "cutout", "blit", "geom", "color", "bg", "bgc")])


class EmaBn(StrEnum):
    standing = "standing"
    batch = "batch"
    averaged = "averaged"
    raw = "raw"


class Extractor(StrEnum):
    auto = "auto"
    inception = "inception"
    classifier = "classifier"


class RealSplit(StrEnum):
    train = "train"
    test = "test"


class DownstreamGenerator(StrEnum):
    raw = "raw"
    ema = "ema"


CompileMode = StrEnum("CompileMode", [(m, m) for m in  # torch.compile's modes
                                      ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")])

DEVICE_PATTERN = r"auto|cpu|mps|cuda(:\d+)?"


# ---- the typed top level (Hydra checks types and unknown keys when it composes)
@dataclass
class TrainerSchema:
    steps: int = spec(ge=1)
    batch_size: int = spec(ge=1)
    g_batch_size: Optional[int] = spec(ge=1)
    n_critic: int = spec(ge=1)
    device: str = spec(pattern=DEVICE_PATTERN)
    amp: bool = MISSING
    reuse_fakes: bool = MISSING
    channels_last: bool = MISSING
    compile: bool = MISSING
    compile_mode: str = spec(choices=CompileMode)
    deterministic: bool = MISSING
    log_every: int = spec(ge=1)
    sample_every: int = spec(ge=1)
    ckpt_every: int = spec(ge=1)
    keep_ckpts: int = spec(ge=1)
    num_samples: int = spec(ge=1)
    num_workers: int = spec(ge=0)
    sync_bn: bool = MISSING
    kimg: Optional[float] = spec(gt=0.0)  # the budget in thousands of real images shown to D (sets steps)


@dataclass
class DownstreamSchema:
    enabled: bool = MISSING
    steps: int = spec(ge=1)
    real_per_class: Optional[int] = spec(ge=1)
    ratio: float = spec(ge=0.0)
    num_generated: Optional[int] = spec(ge=1)
    repeats: int = spec(ge=1)
    seed: int = spec(ge=0)
    label_by_classifier: bool = MISSING
    generator: str = spec(choices=DownstreamGenerator)


@dataclass
class MetricsSchema:
    # FID needs a covariance (>= 2 samples); KID subsets of >= 2; the k-NN manifolds k + 1 points (validate.py)
    every: int = spec(ge=0)
    num_samples: int = spec(ge=2)
    final_num_samples: int = spec(ge=0)  # 0 or >= 2 (validate.py)
    extractor: str = spec(choices=Extractor)
    inception_weights: Optional[str] = spec(nonempty=True)
    download: bool = MISSING
    real_split: str = spec(choices=RealSplit)
    num_real: int = spec(ge=2)
    num_real_kept: int = spec(ge=2)
    batch_size: int = spec(ge=1)
    kid_subsets: int = spec(ge=1)
    kid_subset_size: int = spec(ge=2)
    pr_k: int = spec(ge=1)
    pr_samples: int = spec(ge=2)
    classifier_epochs: int = spec(ge=1)
    cache_dir: str = spec(nonempty=True)
    downstream: DownstreamSchema = field(default_factory=DownstreamSchema)


@dataclass
class EmaSchema:
    """Exponential moving average of G (ganrun/ema.py)."""
    enabled: bool = MISSING
    decay: float = spec(ge=0.0, lt=1.0)
    start_step: int = spec(ge=0)
    rampup: bool = MISSING
    bn: str = spec(choices=EmaBn)
    bn_batches: int = spec(ge=1)
    bn_batch_size: int = spec(ge=1)
    half_life_kimg: Optional[float] = spec(ge=0.0)  # null: `decay`; else stylegan2-ada's half-life in kimg
    half_life_rampup: Optional[float] = spec(gt=0.0)  # half-life <= this x the images seen so far


class ScheduleUnit(StrEnum):
    steps = "steps"
    kimg = "kimg"


@dataclass
class ScheduleSchema:
    """One entry of the top-level `schedules:` mapping (ganrun/schedules.py). Entries are the user's (no conf/
    option holds one), so the optional fields' defaults live here."""
    key: str = spec(nonempty=True)  # the scheduled config value, e.g. regularizer.r1.weight (validate.py)
    kind: str = spec(choices=Decay)  # constant | linear | cosine
    start: float = spec()
    end: Optional[float] = None  # null: start
    unit: str = field(default="steps", metadata=dict(choices=ScheduleUnit))  # generator steps | kimg
    length: Optional[float] = field(default=None, metadata=dict(gt=0.0))  # null: the whole run, in `unit`
    warmup: float = field(default=0.0, metadata=dict(ge=0.0))  # linear warm-up from warmup_start, in `unit`
    warmup_start: float = 0.0


@dataclass
class GanrunSchema:
    dataset: Any = None
    model: Any = None
    loss: Any = None
    regularizer: Any = None
    optimizer: Any = None
    scheduler: Any = None
    augment: Any = None
    task: Any = None
    seed: int = spec(ge=0, le=2**63 - 1)  # torch.manual_seed's range
    resume: Optional[str] = spec(nonempty=True)
    resume_force: bool = MISSING
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    metrics: MetricsSchema = field(default_factory=MetricsSchema)
    ema: EmaSchema = field(default_factory=EmaSchema)
    search: Any = None  # free-form values that search presets (hparams_search/) map onto the config
    schedules: Dict[str, Any] = field(default_factory=dict)  # name -> a scheduled scalar (typed by validate)


ConfigStore.instance().store(name="ganrun_schema", node=GanrunSchema)


# ---- the groups (typed by validate(); conf/GROUP/*.yaml hold the values)
@dataclass
class DatasetSchema:
    name: str = spec(nonempty=True)
    path: Optional[str] = spec(nonempty=True)  # dataset=folder
    resolution: Optional[int] = spec(ge=4)  # null: from the first image of a folder (images) or none (toy points)
    resize: Optional[str] = spec(choices=Resize)
    channels: Optional[int] = spec(choices=(1, 3))
    num_classes: Optional[int] = spec(ge=1)
    in_memory: Any = spec(choices=(True, False, "auto"))
    in_memory_gb: Optional[float] = spec(gt=0.0)  # dataset=folder: past it, a prepared memory-mapped file
    shape: Optional[List[int]] = spec(each=dict(ge=1))  # toy points
    generator_output: Optional[str] = spec(choices=GeneratorOutput)
    source: Any = None  # typed by its _target_


@dataclass
class TorchvisionSourceSchema:
    _target_: str = MISSING
    root: str = spec(nonempty=True)
    train: bool = MISSING
    download: bool = MISSING


@dataclass
class FolderSourceSchema:
    _target_: str = MISSING
    path: str = spec(nonempty=True)
    skip_unreadable: bool = MISSING


@dataclass
class GaussianMixtureSchema:
    _target_: str = MISSING
    layout: str = spec(choices=Layout)
    num_modes: int = spec(ge=1)
    scale: float = spec(gt=0.0)
    std: float = spec(gt=0.0)
    num_eval_samples: int = spec(ge=1)
    min_per_mode: int = spec(ge=1)


@dataclass
class ModelSchema:
    name: str = spec(nonempty=True)
    z_dim: int = spec(ge=1)
    conditioning: str = spec(choices=Conditioning)
    num_classes: Optional[int] = spec(ge=1)
    acgan_weight: float = spec(ge=0.0)
    generator: Any = None  # typed by its _target_
    discriminator: Any = None


@dataclass
class ImageNetworkSchema:  # what every convolutional G and D takes
    _target_: str = MISSING
    resolution: Optional[int] = spec(ge=4)
    channels: Optional[int] = spec(choices=(1, 3))
    conditioning: str = spec(choices=Conditioning)
    num_classes: Optional[int] = spec(ge=1)


@dataclass
class ConvDiscriminatorSchema(ImageNetworkSchema):
    width: Optional[int] = spec(ge=1)  # null: the architecture's own (ResNet)
    norm: str = spec(choices=Norm)
    weight_param: str = spec(choices=WeightParam)


@dataclass
class ConvGeneratorSchema(ConvDiscriminatorSchema):
    z_dim: int = spec(ge=1)


@dataclass
class MlpDiscriminatorSchema:
    _target_: str = MISSING
    resolution: Optional[int] = spec(ge=1)
    channels: Optional[int] = spec(choices=(1, 3))
    hidden: List[int] = spec(length=(1, None), each=dict(ge=1))
    norm: str = spec(choices=FlatNorm)
    weight_param: str = spec(choices=WeightParam)
    shape: Optional[List[int]] = spec(each=dict(ge=1))
    conditioning: str = spec(choices=Conditioning)
    num_classes: Optional[int] = spec(ge=1)


@dataclass
class MlpGeneratorSchema(MlpDiscriminatorSchema):
    z_dim: int = spec(ge=1)
    output: str = spec(choices=GeneratorOutput)


@dataclass
class ImageToImageSchema:  # what pix2pix's U-Net and PatchGAN share
    _target_: str = MISSING
    channels: Optional[int] = spec(choices=(1, 3))
    extra_channels: int = spec(ge=0)  # input channels beyond the image's (the inpainting mask)
    width: int = spec(ge=1)
    norm: str = spec(choices=Norm)
    weight_param: str = spec(choices=WeightParam)


@dataclass
class PatchGANSchema(ImageToImageSchema):
    paired: bool = MISSING
    n_layers: int = spec(ge=1, le=8)


@dataclass
class UNetSchema(ImageToImageSchema):
    resolution: Optional[int] = spec(ge=4)
    depth: Optional[int] = spec(ge=1)  # at most log2 of the padded size (ganrun.models.unet)
    dropout: float = spec(ge=0.0, lt=1.0)


class FeatureNet(StrEnum):
    vgg16 = "vgg16"
    vgg19 = "vgg19"


class OfflineFeatures(StrEnum):
    random = "random"
    error = "error"


VGG_LAYER = r"relu[1-5]_[1-4]"  # which exist depends on the network (ganrun.perceptual.layer_indices checks)


@dataclass
class GenerateTaskSchema:
    _target_: str = MISSING
    name: str = spec(nonempty=True)
    paired: bool = MISSING
    extra_channels: int = spec(ge=0, le=0)


@dataclass
class PairedTaskSchema:
    _target_: str = MISSING
    name: str = spec(nonempty=True)
    paired: bool = spec(choices=(True,))
    extra_channels: int = spec(ge=0)
    degradation: Any = None  # typed by its _target_
    reconstruction: str = spec(choices=("l1", "l2"))
    reconstruction_weight: float = spec(ge=0.0)
    eval_samples: int = spec(ge=2)  # SSIM's and PSNR's means, a grid of pairs
    adversarial_weight: float = spec(ge=0.0)
    perceptual_weight: float = spec(ge=0.0)  # 0: off (no feature network built)
    perceptual_layers: List[str] = spec(length=(1, None), each=dict(pattern=VGG_LAYER))
    features: Any = None  # typed by its _target_ (FeatureNetworkSchema)


@dataclass
class FeatureNetworkSchema:
    """ganrun.perceptual.FeatureNetwork: the fixed network of the perceptual losses."""
    _target_: str = MISSING
    _partial_: bool = MISSING
    network: str = spec(choices=FeatureNet)
    weights: Optional[str] = spec(nonempty=True)
    download: bool = MISSING
    offline: str = spec(choices=OfflineFeatures)


@dataclass
class StyleFolderSchema:
    root: Optional[str] = spec(nonempty=True)  # required (ganrun.style says so, naming the key)
    resolution: Optional[int] = spec(ge=4)
    channels: Optional[int] = spec(choices=(1, 3))


@dataclass
class StyleTaskSchema:
    _target_: str = MISSING
    name: str = spec(nonempty=True)
    paired: bool = spec(choices=(False,))  # D sees style images, not pairs
    extra_channels: int = spec(ge=0, le=0)
    style: StyleFolderSchema = field(default_factory=StyleFolderSchema)
    features: Any = None  # typed by its _target_ (FeatureNetworkSchema)
    content_layers: List[str] = spec(length=(1, None), each=dict(pattern=VGG_LAYER))
    style_layers: List[str] = spec(length=(1, None), each=dict(pattern=VGG_LAYER))
    content_weight: float = spec(ge=0.0)
    style_weight: float = spec(ge=0.0)
    tv_weight: float = spec(ge=0.0)
    adversarial_weight: float = spec(ge=0.0)
    eval_samples: int = spec(ge=1)


@dataclass
class TransformerNetSchema:
    _target_: str = MISSING
    resolution: Optional[int] = spec(ge=4)
    channels: Optional[int] = spec(choices=(1, 3))
    extra_channels: int = spec(ge=0)
    width: int = spec(ge=1)
    num_residual: int = spec(ge=0)
    norm: str = spec(choices=Norm)
    weight_param: str = spec(choices=WeightParam)


@dataclass
class DownsampleSchema:
    _target_: str = MISSING
    factor: int = spec(choices=(2, 4))


@dataclass
class InpaintSchema:
    _target_: str = MISSING
    shape: str = spec(choices=("rectangle", "freeform"))
    min_size: float = spec(gt=0.0, le=1.0)  # fractions of the image side; min_size <= max_size (ganrun.tasks)
    max_size: float = spec(gt=0.0, le=1.0)
    fill: float = spec(ge=-1.0, le=1.0)


@dataclass
class GaussianNoiseSchema:
    _target_: str = MISSING
    sigma: float = spec(ge=0.0)


@dataclass
class LossSchema:
    _target_: str = MISSING
    regularizers: Optional[Dict[str, Any]] = None  # each typed by its _target_


@dataclass
class SigmoidLossSchema(LossSchema):
    real_label: float = spec(**PROBABILITY)
    fake_label: float = spec(**PROBABILITY)
    flip_prob: float = spec(**PROBABILITY)


@dataclass
class PenaltySchema:
    _target_: str = MISSING
    weight: float = spec(ge=0.0)  # a negative weight rewards what the penalty is there to prevent
    every: int = spec(ge=1)  # lazy: on one D step in `every`


@dataclass
class InputGradientSchema(PenaltySchema):
    through_augment: bool = MISSING  # the gradient w.r.t. the un-augmented input, through the augmentation


@dataclass
class GradientPenaltySchema(InputGradientSchema):
    center: float = spec(ge=0.0)  # a norm
    one_sided: bool = MISSING


@dataclass
class DraganSchema(InputGradientSchema):
    spread: float = spec(ge=0.0)


@dataclass
class LeCamSchema(PenaltySchema):
    decay: float = spec(ge=0.0, lt=1.0)  # of the moving averages of D's outputs; 1 would never move them


@dataclass
class ConsistencySchema(PenaltySchema):
    real_weight: float = spec(ge=0.0)
    fake_weight: float = spec(ge=0.0)
    flip_prob: float = spec(**PROBABILITY)
    translation: float = spec(ge=0.0, le=0.5)  # a fraction of the size, either way


@dataclass
class WeightClippingSchema:
    _target_: str = MISSING
    clip_value: float = spec(gt=0.0)  # 0 zeroes every weight; a negative bound inverts the clamp


@dataclass
class OptimizersSchema:
    g: Any = None  # typed by its _target_
    d: Any = None


@dataclass
class OptimizerSchema:
    _target_: str = MISSING
    _partial_: bool = MISSING
    lr: float = spec(gt=0.0)
    weight_decay: float = spec(ge=0.0)
    eps: float = spec(gt=0.0)


@dataclass
class AdamSchema(OptimizerSchema):
    betas: List[float] = spec(length=(2, 2), each=dict(ge=0.0, lt=1.0))
    amsgrad: bool = MISSING


@dataclass
class RMSpropSchema(OptimizerSchema):
    alpha: float = spec(ge=0.0, le=1.0)
    momentum: float = spec(ge=0.0)
    centered: bool = MISSING


@dataclass
class SGDSchema(OptimizerSchema):
    momentum: float = spec(ge=0.0)
    dampening: float = spec(ge=0.0, le=1.0)
    nesterov: bool = MISSING


@dataclass
class WarmupThenDecaySchema:
    _target_: str = MISSING
    _partial_: bool = MISSING
    decay: str = spec(choices=Decay)
    warmup_steps: int = spec(ge=0)  # below total_steps (validate.py)
    total_steps: int = spec(ge=1)
    final_factor: float = spec(ge=0.0)  # a negative factor is a negative learning rate: gradient ascent
    warmup_start_factor: float = spec(ge=0.0)


@dataclass
class DiffAugmentSchema:
    _target_: str = MISSING
    policy: str = spec(items=DiffAugmentOp)


@dataclass
class InstanceNoiseSchema:
    _target_: str = MISSING
    std: float = spec(ge=0.0)
    anneal_steps: int = spec(ge=0)  # 0: constant


@dataclass
class AdaStrengthsSchema:  # each op's probability is p x its strength (ganrun.ada.OPS; R3GAN: 0.5 for the colour ops)
    xflip: float = spec(ge=0.0)
    rotate90: float = spec(ge=0.0)
    xint: float = spec(ge=0.0)
    scale: float = spec(ge=0.0)
    rotate: float = spec(ge=0.0)
    aniso: float = spec(ge=0.0)
    xfrac: float = spec(ge=0.0)
    brightness: float = spec(ge=0.0)
    contrast: float = spec(ge=0.0)
    lumaflip: float = spec(ge=0.0)
    hue: float = spec(ge=0.0)
    saturation: float = spec(ge=0.0)
    cutout: float = spec(ge=0.0)


@dataclass
class AdaSchema:
    _target_: str = MISSING
    ops: str = spec(items=AdaOp)
    strengths: AdaStrengthsSchema = field(default_factory=AdaStrengthsSchema)
    p: float = spec(**PROBABILITY)  # fixed, or where the adaptive rule starts
    target: Optional[float] = spec(**PROBABILITY)  # null: p fixed (or scheduled)
    interval: int = spec(ge=1)  # D steps between moves of p
    speed_kimg: float = spec(gt=0.0)  # thousands of images for p to go 0 -> 1


@dataclass
class ExperimentSchema(GanrunSchema):
    """The whole config as `validate` types it: GanrunSchema with the group slots typed."""
    dataset: DatasetSchema = field(default_factory=DatasetSchema)
    model: ModelSchema = field(default_factory=ModelSchema)
    loss: Any = None  # typed by its _target_
    regularizer: Optional[Dict[str, Any]] = None  # name -> a regularizer, typed by its _target_
    optimizer: OptimizersSchema = field(default_factory=OptimizersSchema)
    scheduler: Any = None  # typed by its _target_
    augment: Optional[Dict[str, Any]] = None  # name -> a transform, typed by its _target_
    schedules: Dict[str, ScheduleSchema] = field(default_factory=dict)  # Hydra cannot merge a dict into a
    # Dict[str, dataclass] from the command line (+schedules.x={...}): entries are typed here, not at compose
    task: Any = None  # typed by its _target_


GROUPS = ("dataset", "model", "loss", "regularizer", "optimizer", "scheduler", "augment", "task")  # conf/GROUP/

# The schema of each `_target_` ganrun ships. A target not listed here (a user's own class) is checked by its
# signature when it is instantiated.
TARGET_SCHEMAS = {
    **dict.fromkeys(["ganrun.data.sources.fashion_mnist", "ganrun.data.sources.mnist", "ganrun.data.sources.cifar10"],
                    TorchvisionSourceSchema),
    "ganrun.data.sources.image_folder": FolderSourceSchema,
    "ganrun.data.toy.GaussianMixture": GaussianMixtureSchema,
    **dict.fromkeys(["ganrun.models.dcgan.Generator", "ganrun.models.resnet.Generator"], ConvGeneratorSchema),
    **dict.fromkeys(["ganrun.models.dcgan.Discriminator", "ganrun.models.resnet.Discriminator"],
                    ConvDiscriminatorSchema),
    "ganrun.models.mlp.Generator": MlpGeneratorSchema,
    "ganrun.models.unet.Generator": UNetSchema,
    "ganrun.models.patchgan.Discriminator": PatchGANSchema,
    "ganrun.tasks.Generate": GenerateTaskSchema,
    "ganrun.tasks.PairedTask": PairedTaskSchema,
    "ganrun.style.StyleTask": StyleTaskSchema,
    "ganrun.perceptual.FeatureNetwork": FeatureNetworkSchema,
    "ganrun.models.transformer_net.Generator": TransformerNetSchema,
    "ganrun.tasks.Downsample": DownsampleSchema,
    "ganrun.tasks.Inpaint": InpaintSchema,
    "ganrun.tasks.GaussianNoise": GaussianNoiseSchema,
    "ganrun.models.mlp.Discriminator": MlpDiscriminatorSchema,
    **dict.fromkeys(["ganrun.losses.NonSaturating", "ganrun.losses.Minimax"], SigmoidLossSchema),
    **dict.fromkeys(["ganrun.losses." + name for name in ("Wasserstein", "Hinge", "LeastSquares", "RelativisticAverageBCE",
                                                          "RelativisticAverageLS", "RelativisticAverageHinge",
                                                          "RelativisticPairing")],
                    LossSchema),
    "ganrun.regularizers.L2WeightPenalty": PenaltySchema,
    **dict.fromkeys(["ganrun.regularizers.R1", "ganrun.regularizers.R2", "ganrun.regularizers.R1R2"],
                    InputGradientSchema),
    "ganrun.regularizers.LeCam": LeCamSchema,
    "ganrun.regularizers.GradientPenalty": GradientPenaltySchema,
    "ganrun.regularizers.DRAGAN": DraganSchema,
    "ganrun.regularizers.BalancedConsistency": ConsistencySchema,
    "ganrun.regularizers.WeightClipping": WeightClippingSchema,
    "torch.optim.Adam": AdamSchema,
    "torch.optim.RMSprop": RMSpropSchema,
    "torch.optim.SGD": SGDSchema,
    "ganrun.schedules.warmup_then_decay": WarmupThenDecaySchema,
    "ganrun.augment.DiffAugment": DiffAugmentSchema,
    "ganrun.augment.InstanceNoise": InstanceNoiseSchema,
    "ganrun.ada.ADA": AdaSchema,
}


def choice_values(choices) -> tuple:
    """The allowed values of a `choices` rule: an Enum's values, or the tuple itself."""
    return tuple(m.value for m in choices) if isinstance(choices, type) and issubclass(choices, Enum) else choices


# Keys a resumed run may change on the command line (`ganrun resume=RUN key=value`): how long to train, how often
# to log and save, how to measure, and where data and compute live. Every other key is the experiment: changing
# it on resume is refused, naming the keys, unless resume_force=true (then the change is recorded in the run).
# A key here covers the keys below it (`metrics` covers metrics.*).
RESUMABLE_KEYS = (
    "resume", "resume_force", "metrics",
    "trainer.steps", "trainer.log_every", "trainer.sample_every", "trainer.ckpt_every", "trainer.keep_ckpts",
    "trainer.num_samples", "trainer.device", "trainer.num_workers", "trainer.sync_bn", "trainer.amp",
    "trainer.deterministic", "trainer.channels_last", "trainer.compile", "trainer.compile_mode",
    "task.eval_samples", "dataset.in_memory", "dataset.in_memory_gb", "dataset.path", "dataset.source.root", "dataset.source.path", "dataset.source.download",
    "trainer.kimg",
)


# ---- issue 21: convolutional networks at 32-256 px with widths per stage, minibatch std, R3GAN
class GeneratorNorm(StrEnum):  # the ResNet G's norms: conditional BatchNorm takes the labels (Miyato & Koyama 2018)
    batch = "batch"
    instance = "instance"
    layer = "layer"
    none = "none"
    conditional_batch = "conditional_batch"


WIDTHS = dict(length=(1, None), each=dict(ge=1))  # one per stage; the count the resolution needs: the model checks


@dataclass
class StagedGeneratorSchema(ConvGeneratorSchema):
    widths: Optional[List[int]] = spec(**WIDTHS)


@dataclass
class ResnetGeneratorSchema(StagedGeneratorSchema):
    norm: str = spec(choices=GeneratorNorm)


@dataclass
class StagedDiscriminatorSchema(ConvDiscriminatorSchema):
    widths: Optional[List[int]] = spec(**WIDTHS)
    mbstd_group: int = spec(ge=0)  # 0: off


@dataclass
class R3GANNetSchema(ImageNetworkSchema):
    width: int = spec(ge=1)
    widths: Optional[List[int]] = spec(**WIDTHS)
    blocks: int = spec(ge=1)
    group_size: int = spec(ge=1)  # must divide width x expansion: the model checks
    expansion: int = spec(ge=1)


@dataclass
class R3GANGeneratorSchema(R3GANNetSchema):
    z_dim: int = spec(ge=1)


@dataclass
class R3GANDiscriminatorSchema(R3GANNetSchema):
    mbstd_group: int = spec(ge=0)


TARGET_SCHEMAS.update({
    "ganrun.models.dcgan.Generator": StagedGeneratorSchema,
    "ganrun.models.resnet.Generator": ResnetGeneratorSchema,
    **dict.fromkeys(["ganrun.models.dcgan.Discriminator", "ganrun.models.resnet.Discriminator"],
                    StagedDiscriminatorSchema),
    "ganrun.models.r3gan.Generator": R3GANGeneratorSchema,
    "ganrun.models.r3gan.Discriminator": R3GANDiscriminatorSchema,
})


# The feature network of the perceptual losses (ganrun.perceptual): whether to try its download, as metrics.download
RESUMABLE_KEYS += ("task.features.download",)
