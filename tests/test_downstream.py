"""Downstream value: the protocol on tiny synthetic classes (a generator that draws the right class scores a CAS
near 1, one that draws the wrong class near 0), the sweep summary's ranking, and `ganrun-classify` end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from helpers import TINY, cpu_env, events, run_ganrun, scalars

from ganrun.downstream import (CONDITIONS, Protocol, balanced_labels, class_subset, evaluate_downstream, format_table,
                               log_to_tensorboard)
from ganrun.errors import ConfigError
from ganrun.sweep.summary import write_summary

C, SIZE = 4, 8


def templates() -> torch.Tensor:
    """Class c is a bright horizontal band in rows 2c, 2c+1 of an 8x8 image, in [-1, 1]."""
    images = -torch.ones(C, 1, SIZE, SIZE)
    for c in range(C):
        images[c, :, 2 * c : 2 * c + 2] = 1.0
    return images


def split(per_class: int, seed: int):
    """uint8 images of the bands with noise, and their labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(C).repeat(per_class)
    images = templates()[labels] + 0.3 * torch.randn(len(labels), 1, SIZE, SIZE, generator=generator)
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8), labels


class BandGenerator(nn.Module):
    """Draws class (y + shift) mod C: shift 0 is a perfect class-conditional G, shift 1 mislabels everything."""

    def __init__(self, shift: int = 0, num_classes: int = C):
        super().__init__()
        self.num_classes, self.shift = num_classes, shift
        self.scale = nn.Parameter(torch.tensor(0.3))

    def forward(self, z, y=None):
        y = torch.zeros(len(z), dtype=torch.long) if y is None else y
        noise = z[:, : SIZE * SIZE].view(-1, 1, SIZE, SIZE)
        return (templates()[(y + self.shift) % C] + self.scale * noise).clamp(-1, 1)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is fastest, and keeps shared CPUs usable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


PROTOCOL = dict(steps=40, batch_size=32, repeats=2, num_generated=200)


def downstream(G, **kwargs):
    return evaluate_downstream(G, SIZE * SIZE, C, split(50, 0), split(25, 1), Protocol(**{**PROTOCOL, **kwargs}))


def test_cas_is_high_for_the_right_classes_and_low_for_the_wrong_ones():
    right, wrong = downstream(BandGenerator(0)), downstream(BandGenerator(1))
    assert right["accuracy"]["generated"]["mean"] > 0.95
    assert wrong["accuracy"]["generated"]["mean"] < 0.05  # every band learnt under its neighbour's label
    assert right["accuracy"]["real"]["mean"] == wrong["accuracy"]["real"]["mean"]  # same seeds, same real data
    assert wrong["accuracy"]["real+generated"]["mean"] < right["accuracy"]["real+generated"]["mean"]
    assert right["training_images"] == {"real": 200, "real+generated": 400, "generated": 200}
    gains = [m - r for m, r in zip(wrong["accuracy"]["real+generated"]["runs"], wrong["accuracy"]["real"]["runs"])]
    assert wrong["gain"]["mean"] == pytest.approx(sum(gains) / 2)
    assert len(wrong["accuracy"]["real"]["runs"]) == 2 and right["labels"] == "generator"
    assert "| generated | 200 |" in format_table(right)


@pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")  # TensorBoard's own
def test_the_tensorboard_table_renders_as_a_table(tmp_path):
    """What TensorBoard's TEXT tab shows: the logged string read back and rendered by its own Markdown path."""
    from tensorboard.plugins.text.text_plugin import text_array_to_html
    from tensorboard.util import tensor_util
    from torch.utils.tensorboard import SummaryWriter

    result = {"protocol": {"n_test": 100, "repeats": 1, "steps": 5, "real_per_class": None, "ratio": 1.0},
              "labels": "generator", "gain": {"mean": 0.01, "std": 0.0},
              "accuracy": {name: {"mean": 0.5, "std": 0.0} for name in CONDITIONS},
              "training_images": {name: 10 for name in CONDITIONS}}
    with SummaryWriter(str(tmp_path)) as writer:
        log_to_tensorboard(writer, result, 7)
    [event] = events(tmp_path).Tensors("downstream/table/text_summary")  # add_text's tag
    html = text_array_to_html(tensor_util.make_ndarray(event.tensor_proto), enable_markdown=True)
    assert "<th>training data</th>" in html and "<td>real+generated</td>" in html and "| training data |" not in html


def test_low_data_mode_ratio_repeatability_and_the_training_rng():
    state = torch.get_rng_state()
    first = downstream(BandGenerator(0), real_per_class=3, ratio=5.0)
    assert torch.equal(torch.get_rng_state(), state)  # the training RNG is never drawn from
    assert first["training_images"] == {"real": 12, "real+generated": 72, "generated": 200}
    assert downstream(BandGenerator(0), real_per_class=3, ratio=5.0)["accuracy"] == first["accuracy"]
    assert first["protocol"]["real_per_class"] == 3 and first["protocol"]["n_test"] == 100


def test_unconditional_generators_need_labels():
    with pytest.raises(ConfigError, match="--label-by-classifier"):
        downstream(BandGenerator(0, num_classes=0))
    labelled = downstream(BandGenerator(0, num_classes=0), label_by_classifier=True)
    # G always draws class 0: the labeller names it so, and a classifier trained on it knows one class of four
    assert labelled["labels"] == "classifier" and labelled["labeler_test_accuracy"] > 0.9
    assert labelled["accuracy"]["generated"]["mean"] == pytest.approx(0.25, abs=0.02)
    with pytest.raises(ConfigError, match="3 classes, the dataset 4"):
        evaluate_downstream(BandGenerator(0, num_classes=3), SIZE * SIZE, C, split(5, 0), split(5, 1), Protocol())
    with pytest.raises(ConfigError, match="ratio"):
        downstream(BandGenerator(0), ratio=0)


def test_class_subset_and_balanced_labels():
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 0, 1])
    chosen = class_subset(labels, 2, 3, torch.Generator().manual_seed(0))
    assert sorted(labels[chosen].tolist()) == [0, 0, 1, 1, 2, 2] and len(set(chosen.tolist())) == 6
    with pytest.raises(ConfigError, match="class 0 has only 2"):
        class_subset(labels, 3, 3, torch.Generator())
    assert torch.bincount(balanced_labels(10, 3, torch.Generator().manual_seed(0))).tolist() == [4, 3, 3]


def test_sweep_summary_ranks_by_downstream_gain_and_lists_diagnoses(tmp_path):
    result = downstream(BandGenerator(0))
    for job, gain, diagnoses in ((0, -0.01, []), (1, 0.05, [{"kind": "d_wins", "first_step": 200,
                                                               "last_step": 400, "open": False}]), (2, None, [])):
        folder = tmp_path / f"{job}_loss=x{job}"
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text(f"- loss=x{job}\n")
        report = {"step": 10, "final": None, "best": {"FID": None, "step": None}, "losses": {},
                  "diagnostics": diagnoses}
        if gain is not None:
            report["downstream"] = {**result, "gain": {"mean": gain, "std": 0.0}}
        (folder / "metrics.json").write_text(json.dumps(report))
    _, md_path, table = write_summary(tmp_path)
    rows = [line for line in table.splitlines()[2:]]
    assert [row.split(" | ")[0] for row in rows] == ["| 1", "| 0", "| 2"]  # best gain first, none last
    assert "downstream_gain" in table.splitlines()[0] and "CAS" in table.splitlines()[0]
    assert "d_wins 200-400" in rows[0] and "0.05" in rows[0]
    assert "Sorted by downstream gain" in md_path.read_text()


@pytest.mark.slow
def test_ganrun_classify_end_to_end(tmp_path, data_root):
    conditional = tmp_path / "acgan"
    run_ganrun([*TINY, "model.conditioning=acgan", "trainer.steps=4", f"hydra.run.dir={conditional}"],
               data_root, tmp_path)
    command = [sys.executable, "-m", "ganrun.classify_cli", str(conditional), "--steps", "5", "--repeats", "2",
               "--num-generated", "64", "--real-per-class", "3", "--ratio", "2", "--device", "cpu"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=cpu_env())
    assert proc.returncode == 0, proc.stderr
    assert "| real | 30 |" in proc.stdout and "| real+generated | 90 |" in proc.stdout
    result = json.loads((conditional / "downstream_real3.json").read_text())
    assert result["step"] == 4 and result["training_images"]["generated"] == 64
    assert len(result["accuracy"]["generated"]["runs"]) == 2
    logged = scalars(conditional, "downstream/CAS")
    assert logged == {4: pytest.approx(result["accuracy"]["generated"]["mean"])}

    unconditional = tmp_path / "plain"
    run_ganrun([*TINY, "trainer.steps=2", f"hydra.run.dir={unconditional}"], data_root, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "ganrun.classify_cli", str(unconditional)], capture_output=True,
                          text=True, timeout=300, env=cpu_env())
    assert proc.returncode == 1 and "unconditional" in proc.stderr and "--label-by-classifier" in proc.stderr


@pytest.mark.slow
def test_a_sweep_ranks_generators_by_downstream_value(tmp_path, data_root):
    """`ganrun -m` with metrics.downstream on: every job's metrics.json holds the result, the summary ranks by it."""
    sweep = tmp_path / "sweep"
    downstream_keys = ["metrics.downstream.enabled=true", "metrics.downstream.steps=3",
                       "metrics.downstream.repeats=2", "metrics.downstream.num_generated=40"]
    proc = run_ganrun(["-m", *TINY, "model.conditioning=acgan,projection", "trainer.steps=2", *downstream_keys,
                       f"hydra.sweep.dir={sweep}"], data_root, tmp_path)
    gains = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        report = json.loads((job / "metrics.json").read_text())
        result = report["downstream"]
        assert result["protocol"]["steps"] == 3 and len(result["accuracy"]["real"]["runs"]) == 2
        assert json.loads((job / "downstream.json").read_text())["accuracy"] == result["accuracy"]
        assert scalars(job, "downstream/gain") == {2: pytest.approx(result["gain"]["mean"])}
        gains[re.search(r"model.conditioning=(\w+)", (job / ".hydra" / "overrides.yaml").read_text()).group(1)] = result["gain"]["mean"]
    summary = (sweep / "summary.md").read_text()
    assert "Sorted by downstream gain" in summary
    ranked = [re.search(r"model.conditioning=(\w+)", row).group(1) for row in summary.splitlines()
              if row.startswith("| ") and "model.conditioning=" in row]
    assert ranked == sorted(gains, key=lambda k: -gains[k])  # ties keep job order, as the summary does
    assert "downstream_gain" in proc.stdout


def test_an_impossible_downstream_config_is_refused_before_training(tmp_path, data_root):
    from helpers import train_in_process

    with pytest.raises(ConfigError, match="metrics.downstream.label_by_classifier=true"):
        train_in_process(tmp_path, data_root, "metrics.downstream.enabled=true", steps=1)
    assert not (tmp_path / "run" / "metrics.json").exists()
    with pytest.raises(ConfigError, match="metrics.downstream.enabled=true needs a labelled image dataset"):
        train_in_process(tmp_path, data_root, "dataset=ring8", "model=mlp", "metrics.downstream.enabled=true",
                         steps=1)
    with pytest.raises(ConfigError, match="ratio"):
        train_in_process(tmp_path, data_root, "model.conditioning=acgan", "metrics.downstream.enabled=true",
                         "metrics.downstream.ratio=-1", steps=1)
    for generator, why in (("ema", "needs an EMA of G: add ema.enabled=true"),
                           ("best", r"metrics.downstream.generator='best' is not one of raw \| ema")):
        with pytest.raises(ConfigError, match=why):
            train_in_process(tmp_path, data_root, "model.conditioning=acgan", "metrics.downstream.enabled=true",
                             f"metrics.downstream.generator={generator}", "ema.enabled=false", steps=1)


@pytest.mark.slow  # two short trainings with the end-of-run protocol
@pytest.mark.parametrize("generator", ["raw", "ema"])
def test_the_end_of_run_value_scores_the_generator_asked_for(tmp_path, data_root, monkeypatch, generator):
    from helpers import train_in_process

    from ganrun import checkpoint, downstream

    scored = []
    real_evaluate = downstream.evaluate_downstream

    def recording(G, *args, **kwargs):
        scored.append({k: v.detach().clone() for k, v in G.state_dict().items()})
        return real_evaluate(G, *args, **kwargs)

    monkeypatch.setattr(downstream, "evaluate_downstream", recording)
    run_dir = tmp_path / "run"
    train_in_process(tmp_path, data_root, "model.conditioning=acgan", "ema.enabled=true", "metrics.downstream.enabled=true",
                     f"metrics.downstream.generator={generator}", "metrics.downstream.steps=1",
                     "metrics.downstream.repeats=1", "metrics.downstream.num_generated=20", steps=3, run_dir=run_dir)
    raw = checkpoint.load(checkpoint.step_checkpoints(run_dir)[0])["generator"]
    same_as_raw = all(torch.equal(scored[0][k], raw[k]) for k in raw if raw[k].is_floating_point())
    assert same_as_raw == (generator == "raw")
    assert json.loads((run_dir / "metrics.json").read_text())["downstream"]["generator"] == generator
