"""Option combinations from the menu train end to end in-process (a couple of steps each, tiny models)."""

import math

import pytest
from helpers import train_in_process


@pytest.mark.parametrize("overrides", [
    ["loss=ragan"], ["loss=ralsgan", "regularizer=r2"], ["loss=rahinge", "regularizer=dragan"],
    ["loss=ns", "regularizer=[clip,l2]"],
    ["loss=hinge", "regularizer=[bcr,r1]", "regularizer.r1.every=2"],
    ["model=resnet", "model.generator.width=8", "model.discriminator.width=8", "loss=hinge"],
    ["model=mlp", "model.conditioning=concat", "loss=lsgan"],
    ["model.conditioning=projection", "loss=hinge", "regularizer=gp"],
    ["model=resnet", "model.generator.width=8", "model.discriminator.width=8", "model.conditioning=acgan",
     "loss=ragan", "regularizer=r1"],
    ["augment=[diffaugment,instance_noise]", "regularizer=r1", "loss.real_label=0.9", "loss.flip_prob=0.1"],
    ["ema.enabled=true", "ema.bn=batch", "scheduler=cosine", "scheduler.warmup_steps=1"],
    ["loss=rpgan", "regularizer=r1r2", "augment=diffaugment"],
    ["model.conditioning=projection", "loss=rpgan", "regularizer=[r1r2,lecam]", "trainer.reuse_fakes=false"],
    ["loss=hinge", "regularizer=lecam", "regularizer.lecam.every=2", "trainer.n_critic=2"],
])
def test_option_combinations_train(tmp_path, data_root, overrides):
    result = train_in_process(tmp_path, data_root, *overrides)
    assert result.step == 2
    assert math.isfinite(result.scalars["loss/D"]) and math.isfinite(result.scalars["loss/G"])


def test_conditional_model_on_an_unlabelled_folder_is_refused(tmp_path, data_root):
    from helpers import write_png

    from ganrun.errors import ConfigError

    for i in range(4):
        write_png(tmp_path / "flat" / f"{i}.png", seed=i)
    with pytest.raises(ConfigError, match="needs a labelled dataset"):
        train_in_process(tmp_path, data_root, "dataset=folder", f"dataset.path={tmp_path / 'flat'}",
                         "dataset.resolution=32", "trainer.batch_size=2", "model.conditioning=projection")


def test_class_per_folder_tree_conditions_on_its_folders(tmp_path, data_root):
    from helpers import write_png

    for c in ("cats", "dogs", "owls"):
        for i in range(3):
            write_png(tmp_path / "tree" / c / f"{i}.png", seed=i)
    result = train_in_process(tmp_path, data_root, "dataset=folder", f"dataset.path={tmp_path / 'tree'}",
                              "dataset.resolution=32", "trainer.batch_size=4", "model.conditioning=acgan")
    assert result.step == 2 and math.isfinite(result.scalars["penalty/acgan_class"])


def test_label_options_on_a_loss_without_labels_are_refused(tmp_path, data_root):
    from ganrun.errors import ConfigError

    with pytest.raises(ConfigError, match="real_label"):
        train_in_process(tmp_path, data_root, "loss=hinge", "+loss.real_label=0.9")


@pytest.mark.slow  # the presets' values are checked against the papers in the fast tier (test_presets.py)
@pytest.mark.parametrize("preset", ["dcgan", "wgan", "wgan_gp", "sngan", "lsgan"])
def test_every_experiment_preset_trains(tmp_path, data_root, preset):
    result = train_in_process(tmp_path, data_root, f"experiment={preset}", steps=1)
    assert result.step == 1 and math.isfinite(result.scalars["loss/D"])
