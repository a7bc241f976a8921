"""Config composition with Hydra's compose API: every group option builds, bad options are refused."""

import json
import re
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

import ganrun.resolvers  # noqa: F401  (registers the resolvers the config uses)
from ganrun import losses, regularizers
from ganrun.config import build, build_optimizer
from ganrun.validate import validate
from ganrun.errors import ConfigError

CONF = Path(__file__).parents[1] / "conf"


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_config(*overrides):
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_default_experiment():
    cfg = compose_config()
    assert (cfg.dataset.name, cfg.model.name) == ("fashion_mnist", "dcgan")
    assert isinstance(build(cfg.loss), losses.NonSaturating)
    assert build(cfg.regularizer) == {}


@pytest.mark.parametrize("loss", options("loss"))
def test_every_loss_builds(loss):
    assert isinstance(build(compose_config(f"loss={loss}").loss), losses.GANLoss)


def test_wgan_variants_carry_their_paper_regularizers():
    wgan = build(compose_config("loss=wgan").loss)
    assert isinstance(wgan.regularizers["clip"], regularizers.WeightClipping)
    assert wgan.regularizers["clip"].clip_value == 0.01
    gp = build(compose_config("loss=wgan_gp").loss).regularizers["gp"]
    assert (gp.weight, gp.center, gp.one_sided) == (10.0, 1.0, False)


def test_regularizers_combine_and_take_field_overrides():
    cfg = compose_config("regularizer=[r1,l2,gp]", "regularizer.r1.weight=0.5", "regularizer.gp.one_sided=true")
    built = build(cfg.regularizer)
    assert set(built) == {"r1", "l2", "gp"}
    assert built["r1"].weight == 0.5 and built["gp"].one_sided


@pytest.mark.parametrize("optimizer", options("optimizer"))
def test_every_optimizer_builds_with_separate_settings(optimizer):
    cfg = compose_config(f"optimizer={optimizer}", "optimizer.d.lr=4e-4")
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt_d = build(cfg.optimizer.d, _convert_="all")(params)
    opt_g = build(cfg.optimizer.g, _convert_="all")(params)
    assert opt_d.param_groups[0]["lr"] == 4e-4 and opt_g.param_groups[0]["lr"] != 4e-4
    # Config lists must not reach the optimizer state as ListConfig (torch.load(weights_only) refuses them).
    assert all(not OmegaConf.is_config(v) for v in opt_d.state_dict()["param_groups"][0].values())


@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("dataset", ["fashion_mnist", "cifar10"])
def test_models_take_their_shape_from_the_dataset(model, dataset):
    cfg = compose_config(f"model={model}", f"dataset={dataset}")
    if build(cfg.model.generator).__class__.__dict__.get("image_to_image"):  # pix2pix: image in, pairs scored
        cfg = compose_config(f"model={model}", f"dataset={dataset}", "task=denoise")
        G, D = build(cfg.model.generator), build(cfg.model.discriminator)
        shape = (2, cfg.dataset.channels, cfg.dataset.resolution, cfg.dataset.resolution)
        condition = torch.randn(shape)
        images = G.eval()(condition)
        assert images.shape == shape
        assert D.eval()(images, condition).shape[0] == 2  # one score per patch (tests/test_tasks.py)
        return
    G, D = build(cfg.model.generator), build(cfg.model.discriminator)
    images = G.eval()(torch.randn(2, cfg.model.z_dim))
    assert images.shape == (2, cfg.dataset.channels, cfg.dataset.resolution, cfg.dataset.resolution)
    assert D.eval()(images).shape == (2,)


def test_every_dataset_composes():
    for dataset in options("dataset"):
        cfg = compose_config(f"dataset={dataset}", "dataset.path=/x" if dataset == "folder" else "seed=0")
        if cfg.dataset.get("shape"):  # toy 2-D mixtures
            assert list(cfg.dataset.shape) == [2] and cfg.dataset.source._target_ == "ganrun.data.toy.GaussianMixture"
        elif dataset == "folder":  # resolution and channels come from the images unless given
            assert cfg.dataset.resolution is None and cfg.dataset.channels is None
        else:
            assert cfg.dataset.resolution > 0 and cfg.dataset.source._target_.startswith("ganrun.data.sources.")


def test_unknown_group_option_lists_the_choices():
    with pytest.raises(MissingConfigException) as err:
        compose_config("loss=nonexistent")
    assert "hinge" in str(err.value) and "wgan_gp" in str(err.value)


def test_bad_model_option_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="model.discriminator.norm='group' is not one of batch | instance"):
        validate(compose_config("model.discriminator.norm=group"))


@pytest.mark.parametrize("key", ["steps", "batch_size", "n_critic"])
@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_trainer_values_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"trainer.{key}={value}"):
        validate(compose_config(f"trainer.{key}={value}"))


@pytest.mark.parametrize("override,message", [("optimizer.d.lr=-1e-4", "optimizer.d.lr=-0.0001 must be > 0"),
                                              ("optimizer.d.betas=[0.5,1.5]", "optimizer.d.betas[1]=1.5 must be < 1")])
def test_invalid_optimizer_settings_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_config(override))


def test_torch_refusing_an_optimizer_without_a_schema_is_a_config_error():
    cfg = compose_config("optimizer.d._target_=torch.optim.AdamW", "optimizer.d.betas=[0.5,1.5]")
    with pytest.raises(ConfigError, match="optimizer.d: Invalid beta"):
        build_optimizer(cfg.optimizer.d, [torch.nn.Parameter(torch.zeros(1))], "optimizer.d")


def test_preset_details_and_shell_overrides_on_top():
    wgan = build(compose_config("experiment=wgan").loss)
    assert wgan.regularizers["clip"].clip_value == 0.01
    wgan_gp = compose_config("experiment=wgan_gp")
    assert build(wgan_gp.loss).regularizers["gp"].weight == 10.0
    assert wgan_gp.model.discriminator.norm == "layer"  # no BatchNorm under a per-sample gradient penalty
    sngan = compose_config("experiment=sngan", "optimizer.d.lr=4e-4", "dataset=cifar10")
    assert sngan.model.discriminator.weight_param == "spectral" and sngan.scheduler.decay == "linear"
    assert sngan.optimizer.d.lr == 4e-4 and sngan.dataset.name == "cifar10"


def test_every_default_is_written_once_in_the_yaml():
    """The schema gives types only; conf/config.yaml gives every value (no second, drifting copy)."""
    import dataclasses

    from omegaconf import MISSING, OmegaConf

    from ganrun import schema

    for node in (schema.TrainerSchema, schema.MetricsSchema, schema.DownstreamSchema, schema.EmaSchema,
                 schema.GanrunSchema):
        for f in dataclasses.fields(node):
            assert f.default in (MISSING, None) or f.default_factory is not dataclasses.MISSING, (node, f.name)
            if f.default is None:
                assert f.type == "Any", (node.__name__, f.name)  # the free-form group slots
    assert OmegaConf.missing_keys(compose_config()) == set()


RESUMABLE_CHANGES = ("trainer.steps=77", "metrics.num_samples=33", "dataset.path=/elsewhere")


def test_every_value_derived_from_a_resumable_key_follows_it_on_resume():
    """On a new run Hydra re-derives `scheduler.total_steps: ${trainer.steps}` and the like; on resume the saved
    config is plain data, so `resume.DERIVED` must list every value of every shipped option that follows a key the
    command line may change on resume (else extending a run would leave its schedule behind)."""
    from helpers import every_shipped_config

    from ganrun.resume import DERIVED, flatten, resumable

    shipped = every_shipped_config()
    with initialize_config_module("ganrun.conf", version_base="1.3"):
        for choice, base in shipped:
            extra = ["dataset.path=/x"] if choice == "dataset=folder" else []
            given = [c for c in RESUMABLE_CHANGES if c.split("=")[0] != "dataset.path" or extra]
            changed = compose("config", overrides=[choice, *extra, *given])
            before = flatten(OmegaConf.to_container(base, resolve=True))
            after = flatten(OmegaConf.to_container(changed, resolve=True))
            following = {key for key in before if before[key] != after.get(key) and not resumable(key)}
            assert following <= set(DERIVED), (choice, following - set(DERIVED))
            for key in {c.split("=")[0] for c in given}:
                assert resumable(key), key
