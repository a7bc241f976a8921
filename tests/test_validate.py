"""Bad input is refused before training by ganrun.validate.validate, naming the key; what ganrun ships passes."""

import copy
import errno

import pytest
import torch
from helpers import TINY, every_shipped_config, run_ganrun, train_in_process
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun import checkpoint
from ganrun.errors import ConfigError, StorageError
from ganrun.validate import validate


def composed(*overrides):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("overrides,message", [
    (["+trainer.stepz=3"], "unknown key trainer.stepz"),
    (["+seedz=1"], "unknown key seedz"),
    (["+metrics.evry=5"], "unknown key metrics.evry"),
    (["+ema.decy=0.9"], "unknown key ema.decy"),
    (["metrics.real_split=trian"], "metrics.real_split='trian' is not one of train | test"),
    (["scheduler=linear", "scheduler.final_factor=-1"], "scheduler.final_factor=-1 must be >= 0"),
    (["scheduler=cosine", "scheduler.warmup_steps=-3"], "scheduler.warmup_steps=-3 must be >= 0"),
    (["scheduler=cosine", "scheduler.warmup_steps=5000"], "scheduler.warmup_steps=5000 must be below trainer.steps"),
    (["metrics.kid_subsets=0"], "metrics.kid_subsets=0 must be >= 1"),
    (["trainer.compile_mode=cudagraphs"], "trainer.compile_mode='cudagraphs' is not one of default | reduce-overhead"),
    (["metrics.kid_subset_size=1"], "metrics.kid_subset_size=1 must be >= 2"),
    (["model.z_dim=0"], "model.z_dim=0 must be >= 1"),
    (["model.z_dim=abc"], "model.z_dim='abc' must be an integer"),
    (["model.generator.width=0"], "model.generator.width=0 must be >= 1"),
    (["model.discriminator.width=-8"], "model.discriminator.width=-8 must be >= 1"),
    (["model=mlp", "model.generator.hidden=[0]"], "model.generator.hidden[0]=0 must be >= 1"),
    (["model=mlp", "model.generator.hidden=[]"], "model.generator.hidden=[] must have at least 1 element"),
    (["dataset.channels=2"], "dataset.channels=2 is not one of 1 | 3"),
    (["trainer.device=tpu"], "trainer.device='tpu' does not match"),
    (["metrics.pr_k=0"], "metrics.pr_k=0 must be >= 1"),
    (["metrics.pr_k=20000"], "metrics.pr_k=20000 must be below metrics.pr_samples=10000"),
    (["metrics.batch_size=0"], "metrics.batch_size=0 must be >= 1"),
    (["metrics.num_real=0"], "metrics.num_real=0 must be >= 2"),
    (["metrics.num_samples=1"], "metrics.num_samples=1 must be >= 2"),
    (["metrics.final_num_samples=1"], "metrics.final_num_samples=1 must be 0"),
    (["metrics.extractor=incepton"], "metrics.extractor='incepton' is not one of"),
    (["trainer.steps=0"], "trainer.steps=0 must be >= 1"),
    (["ema.enabled=true", "ema.decay=1.5"], "ema.decay=1.5 must be < 1"),
    (["dataset=grid25", "model=mlp", "dataset.source.num_modes=24"], "dataset.source.num_modes=24 must be a square"),
    (["loss=ns", "loss.flip_prob=1.5"], "loss.flip_prob=1.5 must be <= 1"),
    (["model.discriminator.weight_param=spectrl"], "model.discriminator.weight_param='spectrl' is not one of"),
    (["model=mlp", "model.generator.norm=instance"], "model.generator.norm='instance' is not one of batch | layer"),
    (["model.conditioning=film"], "model.conditioning='film' is not one of none | concat"),
    (["augment=diffaugment", "augment.diffaugment.policy='color,rotate'"], "augment.diffaugment.policy='color,rotate': "
                                                                          "unknown rotate"),
    (["augment=instance_noise", "augment.instance_noise.std=-1"], "augment.instance_noise.std=-1 must be >= 0"),
    (["augment=ada", "augment.ada.ops='bgc,rot'"], "augment.ada.ops='bgc,rot': unknown rot; choose from xflip"),
    (["augment=ada", "augment.ada.ops=[bgc]"], "augment.ada.ops=['bgc'] must be a string"),
    (["augment=ada", "augment.ada.p=1.5"], "augment.ada.p=1.5 must be <= 1"),
    (["augment=ada", "augment.ada.p=-0.1"], "augment.ada.p=-0.1 must be >= 0"),
    (["augment=ada", "augment.ada.target=1.2"], "augment.ada.target=1.2 must be <= 1"),
    (["augment=ada", "augment.ada.target=nan"], "augment.ada.target=nan must be a finite number"),
    (["augment=ada", "augment.ada.interval=0"], "augment.ada.interval=0 must be >= 1"),
    (["augment=ada", "augment.ada.interval=2.5"], "augment.ada.interval=2.5 must be an integer"),
    (["augment=ada", "augment.ada.speed_kimg=0"], "augment.ada.speed_kimg=0 must be > 0"),
    (["augment=ada", "augment.ada.strengths.hue=-0.5"], "augment.ada.strengths.hue=-0.5 must be >= 0"),
    (["augment=ada", "augment.ada.strengths.hue=strong"], "augment.ada.strengths.hue='strong' must be a number"),
    (["augment=ada", "+augment.ada.strengths.colour=0.5"], "unknown key augment.ada.strengths.colour"),
    (["dataset.resize=crop"], "dataset.resize='crop' is not one of resize | pad"),
    (["regularizer=lecam", "regularizer.lecam.decay=1.5"], "regularizer.lecam.decay=1.5 must be < 1"),
    (["regularizer=lecam", "regularizer.lecam.weight=-0.3"], "regularizer.lecam.weight=-0.3 must be >= 0"),
    (["regularizer=r1r2", "regularizer.r1r2.weight=-1"], "regularizer.r1r2.weight=-1 must be >= 0"),
    (["regularizer=r1r2", "regularizer.r1r2.every=0"], "regularizer.r1r2.every=0 must be >= 1"),
    (["regularizer=r1", "regularizer.r1.through_augment=maybe"], "regularizer.r1.through_augment='maybe' must be "
                                                                 "true or false"),
    (["loss=wgan_gp", "+loss.regularizers.gp.through_augment=often"], "loss.regularizers.gp.through_augment='often'"),
    (["loss=rpgan", "trainer.g_batch_size=32"], "trainer.g_batch_size=32 must equal trainer.batch_size=64"),
    (["task=superres", "model=pix2pix", "task.degradation.factor=8"], "task.degradation.factor=8 is not one of 2 | 4"),
    (["task=denoise", "model=pix2pix", "task.degradation.sigma=-0.1"], "task.degradation.sigma=-0.1 must be >= 0"),
    (["task=inpaint", "model=pix2pix", "task.degradation.shape=circle"], "task.degradation.shape='circle' is not one"),
    (["task=inpaint", "model=pix2pix", "task.degradation.max_size=1.5"], "task.degradation.max_size=1.5 must be <= 1"),
    (["task=inpaint", "model=pix2pix", "task.eval_samples=1"], "task.eval_samples=1 must be >= 2"),
    (["task=denoise", "model=pix2pix", "task.reconstruction=l3"], "task.reconstruction='l3' is not one of l1 | l2"),
    (["task=denoise", "model=pix2pix", "model.generator.depth=0"], "model.generator.depth=0 must be >= 1"),
    (["task=denoise", "model=pix2pix", "model.discriminator.n_layers=9"], "model.discriminator.n_layers=9 must be <= 8"),
    (["task=denoise", "model=pix2pix", "model.conditioning=concat"], "task=denoise: model.conditioning=concat"),
    # task=style, the feature network, the transformation network, SRGAN's terms
    (["task=style", "model=transformer_net", "task.style_weight=-1"], "task.style_weight=-1 must be >= 0"),
    (["task=style", "model=transformer_net", "task.content_weight=nan"], "task.content_weight=nan must be a finite"),
    (["task=style", "model=transformer_net", "task.tv_weight=-1e-6"], "task.tv_weight=-1e-06 must be >= 0"),
    (["task=style", "model=transformer_net", "task.adversarial_weight=-1"], "task.adversarial_weight=-1 must be >= 0"),
    (["task=style", "model=transformer_net", "task.paired=true"], "task.paired=True is not one of false"),
    (["task=style", "model=transformer_net", "task.style_layers=[conv1_1]"],
     "task.style_layers[0]='conv1_1' does not match"),
    (["task=style", "model=transformer_net", "task.content_layers=[]"], "task.content_layers=[] must have at least 1"),
    (["task=style", "model=transformer_net", "task.style.root=''"], "task.style.root is empty"),
    (["task=style", "model=transformer_net", "task.features.network=alexnet"],
     "task.features.network='alexnet' is not one of vgg16 | vgg19"),
    (["task=style", "model=transformer_net", "task.features.offline=skip"],
     "task.features.offline='skip' is not one of random | error"),
    (["task=style", "model=transformer_net", "task.eval_samples=0"], "task.eval_samples=0 must be >= 1"),
    (["task=style", "model=transformer_net", "model.generator.num_residual=-1"],
     "model.generator.num_residual=-1 must be >= 0"),
    (["task=style", "model=transformer_net", "model.conditioning=concat"], "task=style: model.conditioning=concat"),
    (["task=superres", "model=pix2pix", "task.perceptual_weight=-1"], "task.perceptual_weight=-1 must be >= 0"),
    (["task=superres", "model=pix2pix", "task.perceptual_layers=[relu6_1]"],
     "task.perceptual_layers[0]='relu6_1' does not match"),
])
def test_bad_values_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as refused:
        validate(composed(*overrides))
    assert message in str(refused.value)


# The values of issue 19's list ("Bad values still reach training"), each refused before anything is built.
ISSUE_19 = [
    *[([f"regularizer={r}", f"regularizer.{r}.weight=-10"], f"regularizer.{r}.weight=-10 must be >= 0")
      for r in ("r1", "r2", "gp", "dragan", "l2")],
    (["regularizer=bcr", "regularizer.bcr.weight=-1"], "regularizer.bcr.weight=-1 must be >= 0"),
    (["regularizer=clip", "regularizer.clip.clip_value=-0.01"], "regularizer.clip.clip_value=-0.01 must be > 0"),
    (["regularizer=clip", "regularizer.clip.clip_value=0"], "regularizer.clip.clip_value=0 must be > 0"),
    (["loss=wgan", "loss.regularizers.clip.clip_value=0"], "loss.regularizers.clip.clip_value=0 must be > 0"),
    (["model.acgan_weight=-1"], "model.acgan_weight=-1 must be >= 0"),
    (["regularizer=dragan", "regularizer.dragan.spread=-1"], "regularizer.dragan.spread=-1 must be >= 0"),
    (["regularizer=bcr", "regularizer.bcr.flip_prob=2"], "regularizer.bcr.flip_prob=2 must be <= 1"),
    (["optimizer.g.lr=nan"], "optimizer.g.lr=nan must be a finite number"),
    (["optimizer.d.lr=inf"], "optimizer.d.lr=inf must be a finite number"),
    (["augment=instance_noise", "augment.instance_noise.std=nan"], "augment.instance_noise.std=nan must be a finite"),
    (["scheduler=linear", "scheduler.final_factor=inf"], "scheduler.final_factor=inf must be a finite number"),
    (["regularizer=r1", "regularizer.r1.weight=nan"], "regularizer.r1.weight=nan must be a finite number"),
    (["loss=wgan_gp", "loss.regularizers.gp.weight=inf"], "loss.regularizers.gp.weight=inf must be a finite"),
    (["regularizer=gp", "regularizer.gp.center=nan"], "regularizer.gp.center=nan must be a finite number"),
    (["dataset=ring8", "model=mlp", "dataset.source.std=nan"], "dataset.source.std=nan must be a finite number"),
    (["dataset=ring8", "model=mlp", "dataset.source.scale=inf"], "dataset.source.scale=inf must be a finite"),
    (["model.acgan_weight=nan"], "model.acgan_weight=nan must be a finite number"),
    (["model.acgan_weight=-inf"], "model.acgan_weight=-inf must be a finite number"),
    (["+dataset.resolutoin=64"], "unknown key dataset.resolutoin"),
    (["+model.zdim=16"], "unknown key model.zdim"),
    (["regularizer=r1", "regularizer.r1.every=1.5"], "regularizer.r1.every=1.5 must be an integer"),
    (["dataset=ring8", "model=mlp", "dataset.source.layout=hexagon"], "dataset.source.layout='hexagon' is not one "
                                                                      "of ring | grid"),
    (["optimizer.g.lr=abc"], "optimizer.g.lr='abc' must be a number"),
    (["optimizer.g.betas=[0.5]"], "optimizer.g.betas=[0.5] must have 2 elements"),
    (["seed=99999999999999999999"], "seed=99999999999999999999 must be <= 9223372036854775807"),
    (["+scheduler.warmup=5"], "unknown key scheduler.warmup"),
    (["trainer.num_workers=-1"], "trainer.num_workers=-1 must be >= 0"),
    (["metrics.downstream.ratio=nan"], "metrics.downstream.ratio=nan must be a finite number"),
    (["dataset=folder", "dataset.path=''"], "dataset.path is empty"),
    (["dataset=folder", "dataset.path=/x", "dataset.in_memory_gb=0"], "dataset.in_memory_gb=0"),
    (["metrics.cache_dir="], "metrics.cache_dir is empty"),
]


@pytest.mark.parametrize("overrides,message", ISSUE_19, ids=[" ".join(o) for o, _ in ISSUE_19])
def test_every_bad_value_of_issue_19_is_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as refused:
        validate(composed(*overrides))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_checkpoints_saved_config_is_validated_by_the_same_code():
    saved = OmegaConf.to_container(composed(), resolve=True)
    validate(OmegaConf.create(saved))
    validate(saved)
    saved["ema"]["decay"] = float("nan")  # what a YAML .nan reads as
    with pytest.raises(ConfigError, match="ema.decay=nan must be a finite number"):
        validate(saved)
    saved["ema"]["decay"] = 0.999
    older = copy.deepcopy(saved)  # a checkpoint written before a key existed: the key is absent, not wrong
    del older["metrics"]["final_num_samples"], older["dataset"]["resize"]
    validate(older)
    saved["metrics"]["real_split"] = "trian"
    with pytest.raises(ConfigError, match="metrics.real_split='trian' is not one of train | test"):
        validate(OmegaConf.create(saved))


def test_precision_recall_sizes_are_not_compared_when_metrics_are_off():
    validate(composed("metrics.every=0", "metrics.final_num_samples=0", "metrics.pr_k=20000"))


def test_every_config_ganrun_ships_is_valid():
    for _, cfg in every_shipped_config():
        validate(copy.deepcopy(cfg))  # the configs are shared with other tests: they stay as composed
    validate(composed("dataset=ring8", "model=mlp", "trainer.device=cuda:1", "ema.enabled=true"))


def test_disk_full_while_writing_a_checkpoint_names_the_file_and_keeps_the_older_ones(tmp_path, monkeypatch):
    older = checkpoint.checkpoint_path(tmp_path, 1)
    checkpoint.save_atomic({"step": 1}, older)
    real_save = torch.save

    def fill_the_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # part of the bytes reach the temporary file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", fill_the_disk)
    target = checkpoint.checkpoint_path(tmp_path, 2)
    with pytest.raises(StorageError) as refused:
        checkpoint.save_atomic({"step": 2}, target)
    assert f"cannot write {target}: No space left on device" in str(refused.value)
    assert not target.exists() and list(target.parent.iterdir()) == [older]
    assert torch.load(older, weights_only=True) == {"step": 1}


def test_disk_full_during_training_is_a_message_not_a_traceback(tmp_path, data_root, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(ConfigError, match=r"cannot write .*step_00000002.pt: No space left on device"):
        train_in_process(tmp_path, data_root)


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [
    (["metrics.every=1", "metrics.num_samples=1"], "metrics.num_samples=1 must be >= 2"),
    (["+trainer.stepz=3"], "unknown key trainer.stepz"),
    (["trainer.device=tpu"], "trainer.device='tpu' does not match"),
])
def test_the_cli_refuses_before_training_without_a_traceback(tmp_path, data_root, args, message):
    run_dir = tmp_path / "run"
    proc = run_ganrun([*TINY, *args, f"hydra.run.dir={run_dir}"], data_root, cwd=tmp_path, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and message in output and "Traceback" not in output
    assert not (run_dir / "checkpoints").exists()


ISSUE_21_NETS = [
    (["model.generator.widths=[64,0,16]"], "model.generator.widths[1]=0 must be >= 1"),
    (["model=resnet", "model.discriminator.widths=[]"], "model.discriminator.widths=[] must have at least 1 element"),
    (["model.discriminator.mbstd_group=-4"], "model.discriminator.mbstd_group=-4 must be >= 0"),
    (["model.generator.norm=conditional_batch"], "model.generator.norm='conditional_batch' is not one of batch"),
    (["model=resnet", "model.generator.norm=cbn"], "model.generator.norm='cbn' is not one of batch | instance | "
                                                   "layer | none | conditional_batch"),
    (["model=r3gan", "model.generator.blocks=0"], "model.generator.blocks=0 must be >= 1"),
    (["model=r3gan", "model.discriminator.group_size=0"], "model.discriminator.group_size=0 must be >= 1"),
    (["model=r3gan", "model.generator.expansion=0"], "model.generator.expansion=0 must be >= 1"),
    (["model=r3gan", "model.discriminator.width=0"], "model.discriminator.width=0 must be >= 1"),
    (["model=r3gan", "model.generator.width=null"], "model.generator.width=None must be an integer"),
    (["model=r3gan", "+model.generator.mbstd_group=4"], "unknown key model.generator.mbstd_group"),
]


@pytest.mark.parametrize("overrides,message", ISSUE_21_NETS, ids=[" ".join(o) for o, _ in ISSUE_21_NETS])
def test_bad_network_values_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as refused:
        validate(composed(*overrides))
    assert message in str(refused.value) and "\n" not in str(refused.value)


# Schedules (docs/reference.md, "Schedules of any hyperparameter"), budgets in images and the EMA's half-life.
SCHEDULES = [
    (["+schedules.g={key:regularizer.r1.weight,kind:cosine,start:1}"], "schedules.g.key=regularizer.r1.weight "
                                                                        "names no value of this run's config"),
    (["+schedules.g={key:model.z_dim,kind:linear,start:1}"], "schedules.g.key=model.z_dim: only the objective"),
    (["+schedules.g={key:trainer.batch_size,kind:linear,start:1}"], "schedules.g.key=trainer.batch_size: only"),
    (["+schedules.g={key:optimizer.g.betas,kind:linear,start:1}"], "schedules.g.key=optimizer.g.betas names "
                                                                    "[0.5, 0.999], not a number"),
    (["+schedules.g={key:optimizer.g.betas.2,kind:linear,start:1}"], "names no value of this run's config"),
    (["+schedules.g={key:ema.bn,kind:linear,start:1}"], "schedules.g.key=ema.bn names 'standing', not a number"),
    (["+schedules.g={key:ema.decay,kind:linera,start:1}"], "schedules.g.kind='linera' is not one of constant | "
                                                           "linear | cosine"),
    (["+schedules.g={key:ema.decay,kind:linear,start:1,unit:mimg}"], "schedules.g.unit='mimg' is not one of "
                                                                      "steps | kimg"),
    (["+schedules.g={key:ema.decay,kind:linear,start:1,length:0}"], "schedules.g.length=0 must be > 0"),
    (["+schedules.g={key:ema.decay,kind:linear,start:1,warmup:-1}"], "schedules.g.warmup=-1 must be >= 0"),
    (["+schedules.g={key:ema.decay,kind:linear,start:nan}"], "schedules.g.start=nan must be a finite number"),
    (["+schedules.g={key:ema.decay,kind:linear,start:1,warmup:5,length:5}"], "schedules.g.warmup=5 must be below "
                                                                              "schedules.g.length=5"),
    (["+schedules.g={key:ema.decay,kind:linear,start:1,stop:2}"], "unknown key schedules.g.stop"),
    (["+schedules.g={key:ema.decay,start:1}"], "schedules.g.kind is missing"),
    (["+schedules.g={kind:linear,start:1}"], "schedules.g.key is missing"),
    (["+schedules.g=5"], "schedules.g=5 must be a mapping"),
    (["+schedules.a={key:ema.decay,kind:linear,start:1}", "+schedules.b={key:ema.decay,kind:cosine,start:1}"],
     "schedules.b.key=ema.decay is scheduled twice (schedules.a too)"),
    (["trainer.kimg=0"], "trainer.kimg=0.0 must be > 0"),
    (["ema.half_life_kimg=-1"], "ema.half_life_kimg=-1.0 must be >= 0"),
    (["ema.half_life_rampup=0"], "ema.half_life_rampup=0.0 must be > 0"),
]


@pytest.mark.parametrize("overrides,message", SCHEDULES, ids=[" ".join(o) for o, _ in SCHEDULES])
def test_a_bad_schedule_or_budget_is_refused_naming_the_key(overrides, message):
    test_every_bad_value_of_issue_19_is_refused_naming_the_key(overrides, message)  # one line, naming the key


def test_schedules_of_every_section_validate():
    validate(composed("regularizer=r1", "augment=instance_noise",
                      "+schedules.a={key:regularizer.r1.weight,kind:cosine,start:0.05,end:0.005,unit:kimg}",
                      "+schedules.b={key:optimizer.d.betas.1,kind:linear,start:0.9,end:0.99,warmup:10}",
                      "+schedules.c={key:augment.instance_noise.std,kind:constant,start:0.2}",
                      "+schedules.d={key:ema.half_life_kimg,kind:cosine,start:0,end:5000,unit:kimg}",
                      "+schedules.e={key:loss.flip_prob,kind:linear,start:0.1,end:0}"))
