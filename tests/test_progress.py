"""Long phases show progress in a terminal: the offline classifier's first training, evaluations."""

import io
import sys

import torch

from ganrun.metrics.classifier import train_classifier
from ganrun.metrics.evaluator import progress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_classifier_training_shows_progress_in_a_terminal(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    images, labels = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8), torch.arange(64) % 10
    model, accuracy = train_classifier(images, labels, images[:16], labels[:16], 10, "cpu", epochs=2, batch_size=32)
    assert "Offline classifier (first use; cached)" in terminal.getvalue() and "/128" in terminal.getvalue()
    assert 0.0 <= accuracy <= 1.0


def test_no_progress_bar_outside_a_terminal(monkeypatch):
    pipe = io.StringIO()  # a log file or a pipe: no bar characters in it
    monkeypatch.setattr(sys, "stderr", pipe)
    with progress(1000, "Evaluating 1000 generated samples") as bar:
        bar.update(1000)
    assert bar.disable and pipe.getvalue() == ""


def test_evaluation_progress_appears_only_for_slow_phases(monkeypatch):
    import tqdm.std

    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    now = [0.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])  # tqdm's clock, read at construction
    with progress(1000, "Evaluating 1000 generated samples") as bar:  # done within 2 s: stays silent
        now[0] += 1.0
        bar.update(1000)
    assert terminal.getvalue() == ""
    with progress(1000, "Evaluating 1000 generated samples") as bar:
        for _ in range(4):
            now[0] += 1.0
            bar.update(250)
    assert "Evaluating 1000 generated samples" in terminal.getvalue()
