"""`ganrun-translate` (ganrun/translate_cli.py): a paired task's generator applied to a folder, with the companions'
safety: the checkpoint read as data, no link followed in --in, no file overwritten or written into --in; and the
other companions refuse a task run (and translate a noise run) in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from helpers import train_in_process, write_mnist_like, write_png
from PIL import Image

from ganrun import eval_cli, sample_cli, translate_cli
from ganrun.tasks import Downsample


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    data_root = write_mnist_like(tmp / "data" / "FashionMNIST" / "raw").parent.parent
    made = {}
    for name, options in (("superres", ["task=superres", "model=pix2pix"]),
                          ("inpaint", ["task=inpaint", "model=pix2pix"]), ("generate", [])):
        train_in_process(tmp, data_root, *options, "trainer.batch_size=8", steps=1, run_dir=tmp / name)
        made[name] = tmp / name
    return made


def refused(main, argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()  # log lines (e.g. "Using cpu") may come first
    error = [line for line in lines if ": error: " in line]
    assert len(error) == 1 and not any("Traceback" in line for line in lines), lines
    return error[0]


def gray_pngs(folder, size, n=3):
    for i in range(n):
        write_png(folder / f"img{i}.png", size=(size, size), mode="L", seed=i)
    return folder


def test_superres_translates_low_res_files_to_full_size(runs, tmp_path):
    inputs = gray_pngs(tmp_path / "in", 8)  # 32 px / factor 4
    translate_cli.main([str(runs["superres"]), "--in", str(inputs), "--out", str(tmp_path / "out")])
    outs = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in outs] == ["img0.png", "img1.png", "img2.png"]
    assert torchvision.io.read_image(str(outs[0])).shape == (1, 32, 32)


def test_degrade_writes_input_output_target(runs, tmp_path):
    inputs = gray_pngs(tmp_path / "in", 32)
    translate_cli.main([str(runs["superres"]), "--in", str(inputs), "--out", str(tmp_path / "out"), "--degrade"])
    image = torchvision.io.read_image(str(tmp_path / "out" / "img1.png"))
    assert image.shape == (1, 32, 96)
    clean = np.asarray(Image.open(inputs / "img1.png"), dtype=np.int64)
    assert np.array_equal(image[0, :, 64:].numpy(), clean)  # the target is the file itself
    x = torch.from_numpy(clean).float().div(127.5).sub(1).view(1, 1, 32, 32)
    expected = ((Downsample(4)(x) + 1) * 127.5).round()[0, 0].numpy()
    assert np.abs(image[0, :, :32].numpy() - expected).max() <= 1  # the input: the run's own degradation


def test_inpainting_needs_degrade_for_its_mask(runs, tmp_path, capsys):
    inputs = gray_pngs(tmp_path / "in", 32)
    assert refused(translate_cli.main, [str(runs["inpaint"]), "--in", str(inputs), "--out", str(tmp_path / "o")],
                   capsys).endswith("run with --degrade (the task's own holes, cut into clean images).")
    translate_cli.main([str(runs["inpaint"]), "--in", str(inputs), "--out", str(tmp_path / "o2"), "--degrade"])
    assert len(list((tmp_path / "o2").iterdir())) == 3


def test_never_overwrites_never_into_in_never_through_links(runs, tmp_path, capsys):
    inputs = gray_pngs(tmp_path / "in", 8)
    out = tmp_path / "out"
    out.mkdir()
    (out / "img1.png").write_bytes(b"mine")
    error = refused(translate_cli.main, [str(runs["superres"]), "--in", str(inputs), "--out", str(out)], capsys)
    assert error == f"ganrun-translate: error: --out {out / 'img1.png'} exists: ganrun-translate never overwrites " \
                    "a file; choose an empty --out folder."
    assert (out / "img1.png").read_bytes() == b"mine" and not (out / "img0.png").exists()  # nothing written
    assert "is the --in folder" in refused(translate_cli.main, [str(runs["superres"]), "--in", str(inputs), "--out",
                                                                str(inputs)], capsys)
    secret = write_png(tmp_path / "elsewhere" / "secret.png", size=(8, 8), mode="L")
    (inputs / "link.png").symlink_to(secret)
    assert refused(translate_cli.main, [str(runs["superres"]), "--in", str(inputs), "--out", str(tmp_path / "o3")],
                   capsys) == (f"ganrun-translate: error: --in {inputs / 'link.png'} is a symbolic link: "
                               "ganrun-translate reads plain files only (a link could lead outside the folder).")


def test_each_companion_refuses_the_other_kind_of_run(runs, tmp_path, capsys):
    inputs = gray_pngs(tmp_path / "in", 8)
    error = refused(translate_cli.main, [str(runs["generate"]), "--in", str(inputs), "--out", str(tmp_path / "o")],
                    capsys)
    assert error.endswith("is a task=generate run: its generator makes images from noise; use ganrun-sample "
                          "(ganrun-translate applies a paired task's model).")
    for tool, extra in ((sample_cli, ["--num", "2", "--out", str(tmp_path / "s")]), (eval_cli, [])):
        error = refused(tool.main, [str(runs["superres"]), *extra], capsys)
        assert error.endswith("is a task=superres run: its generator translates images; use ganrun-translate "
                              "RUN_DIR --in DIR --out DIR.")
