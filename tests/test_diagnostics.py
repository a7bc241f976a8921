"""Training diagnostics on synthetic scalar sequences with known failures, and on runs read back from disk."""

from __future__ import annotations

import json
import logging
import math
import random

import pytest

from ganrun.diagnostics import Thresholds, TrainingDiagnostics, score_kind_from_target, write_text
from ganrun.losses import Hinge, LeastSquares, NonSaturating, Wasserstein


def healthy(i: int, rng: random.Random) -> dict:
    """A log step of a healthy NS run: scores near 0.7 / 0.3, losses ~1.2 / 1.5, gradient norms ~1, small noise."""
    noise = lambda scale: rng.gauss(0, scale)  # noqa: E731
    return {"loss/D": 1.2 + noise(0.05), "loss/G": 1.5 + noise(0.08), "scores/D(x)": 0.7 + noise(0.03),
            "scores/D(G(z))": 0.3 + noise(0.03), "grad_norm/G": 1.0 + noise(0.1), "grad_norm/D": 2.0 + noise(0.2),
            "lr/G": 2e-4, "lr/D": 2e-4}


def feed(diagnostics: TrainingDiagnostics, sequence, every: int = 10):
    opened = []
    for i, values in enumerate(sequence):
        opened += diagnostics.observe((i + 1) * every, values)
    return opened


def test_score_kind_follows_the_loss():
    assert NonSaturating().score_kind == "probability"
    assert LeastSquares().score_kind == "least_squares"
    assert Hinge().score_kind == "hinge"
    assert Wasserstein().score_kind == "critic"
    assert score_kind_from_target("ganrun.losses.Minimax") == "probability"
    assert score_kind_from_target("ganrun.losses.Hinge") == "hinge"
    assert score_kind_from_target("os.system") == "critic"  # a run dir's config never imports a foreign class


def test_a_healthy_run_raises_nothing():
    rng = random.Random(0)
    diagnostics = TrainingDiagnostics("probability")
    assert feed(diagnostics, [healthy(i, rng) for i in range(300)]) == []
    for _ in range(5):
        assert diagnostics.observe_evaluation(3010, {"classes_covered": 10, "recall": 0.5, "FID": 30.0}) == []
    assert diagnostics.report() == [] and diagnostics.summary() == ""


def test_d_winning_is_one_episode_with_its_step_range_numbers_and_overrides(caplog):
    rng = random.Random(1)
    sequence = [healthy(i, rng) for i in range(20)]
    for i in range(20, 40):  # D wins from log step 21 (step 210) to 40 (step 400): G's gradient decays to 1%
        sequence.append({**healthy(i, rng), "scores/D(x)": 0.98, "scores/D(G(z))": 0.02,
                         "grad_norm/G": 0.01, "loss/G": 4.0})
    sequence += [healthy(i, rng) for i in range(40, 60)]
    diagnostics = TrainingDiagnostics.for_loss(NonSaturating(), num_classes=10)
    with caplog.at_level(logging.WARNING, logger="ganrun.diagnostics"):
        opened = feed(diagnostics, sequence)
    assert [e.kind for e in opened] == ["d_wins"]
    episode = opened[0]
    assert (episode.first_step, episode.last_step, episode.open) == (210, 400, False)
    assert episode.evidence["D(x)"] == 0.98 and episode.evidence["D(G(z))"] == 0.02
    assert episode.evidence["G gradient vanishing"] is True
    assert episode.evidence["grad_norm/G reference"] == pytest.approx(1.0, abs=0.2)
    overrides = [r["override"] for r in episode.remedies]
    assert "loss.real_label=0.9" in overrides and "regularizer=r1" in overrides
    assert "optimizer.d.lr=5e-05" in overrides  # TTUR: a quarter of the logged lr/D
    assert "loss=wgan_gp trainer.n_critic=5" in overrides
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "d wins from step 210" in warnings[0].getMessage()
    report = diagnostics.report()
    assert report[0]["kind"] == "d_wins" and report[0]["first_step"] == 210 and "Remedies" in report[0]["message"]
    assert diagnostics.summary() == "d_wins 210-400"


def test_a_condition_shorter_than_the_patience_opens_nothing():
    rng = random.Random(2)
    sequence = [healthy(i, rng) for i in range(20)]
    sequence[12] = {**sequence[12], "scores/D(x)": 0.99, "scores/D(G(z))": 0.01}
    sequence[13] = {**sequence[13], "scores/D(x)": 0.99, "scores/D(G(z))": 0.01}
    assert feed(TrainingDiagnostics("probability"), sequence) == []
    sequence[14] = {**sequence[14], "scores/D(x)": 0.99, "scores/D(G(z))": 0.01}
    assert [e.first_step for e in feed(TrainingDiagnostics("probability"), sequence)] == [130]


def test_scores_are_read_by_the_loss_kind():
    rng = random.Random(3)
    probabilities = {"scores/D(x)": 0.98, "scores/D(G(z))": 0.02}
    past_margin = {"scores/D(x)": 1.6, "scores/D(G(z))": -1.6}
    seq = lambda scores: [healthy(i, rng) if i < 10 else {**healthy(i, rng), **scores} for i in range(20)]  # noqa: E731
    assert [e.kind for e in feed(TrainingDiagnostics("hinge"), seq(past_margin))] == ["d_wins"]
    assert feed(TrainingDiagnostics("hinge"), seq(probabilities)) == []  # 0.98 is inside the hinge margin
    at_margin = {"scores/D(x)": 2.0, "scores/D(G(z))": -1.0}  # fakes on the margin: D's hinge loss is not zero
    assert feed(TrainingDiagnostics("hinge"), seq(at_margin)) == []
    assert feed(TrainingDiagnostics("critic"), seq(past_margin)) == []  # no fixed scale: scores alone say nothing
    vanishing = {**past_margin, "grad_norm/G": 0.05}
    assert [e.kind for e in feed(TrainingDiagnostics("critic"), seq(vanishing))] == ["d_wins"]


def test_divergence_oscillation_and_exploding_gradients():
    rng = random.Random(4)
    diverging = [healthy(i, rng) for i in range(10)]
    diverging += [{**healthy(i, rng), "loss/D": 1.2 * math.exp(0.5 * (i - 9))} for i in range(10, 25)]
    episodes = feed(TrainingDiagnostics("probability"), diverging)
    divergence = [e for e in episodes if e.kind == "divergence"]
    assert len(divergence) == 1
    # |loss/D| first exceeds 10 x 1.2 at i = 14 (1.2 e^2.5 = 14.6): opened three log steps later, dated from then
    assert divergence[0].first_step == 150 and divergence[0].evidence["loss/D"] > 12

    oscillating = [healthy(i, rng) for i in range(10)]
    oscillating += [{**healthy(i, rng), "loss/G": 0.5 if i % 2 else 3.0} for i in range(10, 30)]
    kinds = [e.kind for e in feed(TrainingDiagnostics("probability"), oscillating)]
    assert kinds == ["oscillation"]
    drifting = [{**healthy(i, rng), "loss/G": 1.5 + 0.02 * i + rng.gauss(0, 0.1)} for i in range(60)]
    assert feed(TrainingDiagnostics("probability"), drifting) == []  # a slow trend with noise is no oscillation

    spike = [healthy(i, rng) for i in range(20)]
    spike[15] = {**spike[15], "grad_norm/D": 500.0}
    episodes = feed(TrainingDiagnostics("probability"), spike)
    assert [(e.kind, e.first_step, e.last_step) for e in episodes] == [("exploding_gradients", 160, 160)]
    assert episodes[0].evidence["ratio"] == pytest.approx(250, rel=0.2)


def test_mode_collapse_from_class_and_mode_coverage():
    diagnostics = TrainingDiagnostics("probability", num_classes=10)
    for step, covered in ((1000, 9), (2000, 10), (3000, 10)):
        assert diagnostics.observe_evaluation(step, {"classes_covered": covered, "FID": 40.0}) == []
    opened = diagnostics.observe_evaluation(4000, {"classes_covered": 7, "FID": 80.0})  # 30% below the best
    assert [(e.kind, e.first_step) for e in opened] == [("mode_collapse", 4000)]
    assert opened[0].evidence == {"pattern": "fell", "classes_covered": 7, "best classes_covered": 10, "of": 10, "FID": 80.0}
    assert diagnostics.observe_evaluation(5000, {"classes_covered": 6}) == []  # still below: the same episode
    assert diagnostics.observe_evaluation(6000, {"classes_covered": 10}) == []
    assert diagnostics.summary() == "mode_collapse 4000-5000"

    toy = TrainingDiagnostics("hinge")
    opened = [toy.observe_evaluation(s, {"modes_covered": 0, "num_modes": 8}) for s in (250, 500)]
    assert opened == [[], []]  # never covered yet is no fall; early evaluations are still learning
    toy = TrainingDiagnostics("hinge")
    opened = [toy.observe_evaluation(s, {"modes_covered": 2, "num_modes": 8}) for s in (250, 500, 750)]
    assert opened[:2] == [[], []]  # early evaluations: still learning, not collapsed
    assert opened[2][0].evidence["modes_covered"] == 2 and opened[2][0].evidence["of"] == 8

    recall = TrainingDiagnostics("probability")
    recall.observe_evaluation(1000, {"recall": 0.6})
    assert [e.kind for e in recall.observe_evaluation(2000, {"recall": 0.25})] == ["mode_collapse"]


def test_thresholds_are_parameters():
    rng = random.Random(5)
    sequence = [healthy(i, rng) if i < 10 else {**healthy(i, rng), "scores/D(x)": 0.92, "scores/D(G(z))": 0.07}
                for i in range(20)]
    assert feed(TrainingDiagnostics("probability"), sequence) == []  # the default run's early transient
    strict = TrainingDiagnostics("probability", Thresholds(d_real_high=0.9, d_fake_low=0.1))
    assert [e.kind for e in feed(strict, sequence)] == ["d_wins"]


@pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")  # TensorBoard's own
def test_episodes_go_to_tensorboard_text():
    from tensorboard.plugin_util import markdown_to_safe_html

    class Writer:
        def __init__(self):
            self.texts = []

        def add_text(self, tag, text, step):
            self.texts.append((tag, text, step))

    diagnostics = TrainingDiagnostics("probability")
    diagnostics.observe_evaluation(100, {"recall": 0.6})
    episode = diagnostics.observe_evaluation(200, {"recall": 0.1})[0]
    writer = Writer()
    write_text(writer, episode, 200)
    (tag, text, step), = writer.texts
    assert tag == "diagnostics/mode_collapse" and step == 200
    assert "`loss=wgan_gp trainer.n_critic=5`" in text and "recall: 0.1" in text
    # as TensorBoard's TEXT tab renders it (its own Markdown): every piece of evidence and every remedy a list item
    html = markdown_to_safe_html(text)
    assert html.count("<li>") == len(episode.evidence) + len(episode.remedies) >= 2
    assert "<code>loss=wgan_gp trainer.n_critic=5</code></li>" in html


def test_a_run_with_a_too_strong_d_reports_it_everywhere(tmp_path, data_root):
    """A real (tiny) run built to fail: D's learning rate 100 x G's. The reporter's detector names it in the
    log, TensorBoard text, metrics.json; replaying the run's scalars gives the same episodes."""
    from helpers import events, train_in_process

    from ganrun.diagnostics import diagnose_run

    train_in_process(tmp_path, data_root, "optimizer.d.lr=2e-3", "optimizer.g.lr=2e-5", steps=30)
    run_dir = tmp_path / "run"
    report = json.loads((run_dir / "metrics.json").read_text())
    (episode,) = report["diagnostics"]
    assert episode["kind"] == "d_wins" and episode["evidence"]["D(x)"] >= 0.98
    assert episode["evidence"]["D(G(z))"] <= 0.02 and episode["last_step"] == 30
    assert "optimizer.d.lr=0.0005" in [r["override"] for r in episode["remedies"]]
    texts = events(run_dir).Tags()["tensors"]
    assert "diagnostics/d_wins/text_summary" in texts
    assert diagnose_run(run_dir).report()[0]["first_step"] == episode["first_step"]
    assert report["downstream"] is None  # metrics.downstream is off by default


@pytest.mark.parametrize("split", [3, 5, 21, 22, 30, 45])  # warm-up, reference window, mid-streak, open episode
def test_a_resumed_detector_reports_what_an_uninterrupted_one_does(tmp_path, split):
    """The detector is part of the checkpoint (as plain data): references, streaks, open episodes, best coverage
    and the oscillation history carry over a resume at any log step."""
    import torch

    rng = random.Random(1)
    sequence = [healthy(i, rng) for i in range(20)]
    sequence += [{**healthy(i, rng), "scores/D(x)": 0.98, "scores/D(G(z))": 0.02, "grad_norm/G": 0.01,
                  "loss/G": 4.0 + 3.0 * (i % 2)} for i in range(20, 40)]
    sequence += [healthy(i, rng) for i in range(40, 60)]
    coverage = {10: 10, 20: 10, 30: 5, 50: 5}  # log step -> classes covered at an evaluation there

    def run(detector, steps):
        opened = []
        for i in steps:
            opened += detector.observe((i + 1) * 10, sequence[i])
            if i in coverage:
                opened += detector.observe_evaluation((i + 1) * 10, {"classes_covered": coverage[i], "FID": 9.0})
        return [(e.kind, e.first_step) for e in opened]  # the episodes as they open

    whole = TrainingDiagnostics.for_loss(NonSaturating(), num_classes=10)
    expected = run(whole, range(60))
    assert expected == [("d_wins", 210), ("oscillation", 210), ("mode_collapse", 310), ("oscillation", 410)]

    first = TrainingDiagnostics.for_loss(NonSaturating(), num_classes=10)
    opened = run(first, range(split))
    torch.save({"diagnostics": first.state_dict()}, tmp_path / "ckpt.pt")
    resumed = TrainingDiagnostics.for_loss(NonSaturating(), num_classes=10)
    resumed.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["diagnostics"])
    opened += run(resumed, range(split, 60))
    assert opened == expected
    assert resumed.report() == whole.report() and resumed.state_dict() == whole.state_dict()


def test_a_malformed_detector_state_changes_nothing():
    detector = TrainingDiagnostics.for_loss(NonSaturating(), num_classes=10)
    feed(detector, [healthy(i, random.Random(i)) for i in range(8)])
    before = detector.state_dict()
    broken = {**before, "logs": 99, "episodes": [{"kind": "d_wins", "not_a_field": 1}]}
    with pytest.raises(TypeError):
        detector.load_state_dict(broken)
    assert detector.state_dict() == before
