"""Training diagnostics: read the curves the loop logs and name the classic GAN failure modes, with evidence and
remedies.

`TrainingDiagnostics` is fed, at every log step, the scalars the loop logs (loss/D, loss/G, scores/D(x),
scores/D(G(z)), grad_norm/G, grad_norm/D, lr/G, lr/D) and, after every evaluation, its result (classes covered,
modes covered for toy data, recall, FID). It detects

- `d_wins`: D separates reals from fakes almost perfectly (Goodfellow et al. 2014; Arjovsky & Bottou 2017):
  with sigmoid losses (scores are probabilities) D(x) >= 0.98 and D(G(z)) <= 0.02 (D's loss below ~0.04); with
  least squares (targets 1 and 0) the same; with hinge both mean outputs half a margin past it (D(x) >= 1.5,
  D(G(z)) <= -1.5); for any loss, G's gradient norm below 0.1 x its reference (vanishing gradients). The
  default experiment's first 100 steps reach D(x) 0.92, D(G(z)) 0.07 on their way to ~0.82 / 0.17, so 0.9 / 0.1
  would raise false alarms. Wasserstein and relativistic critics
  have no fixed scale, so for them only the vanishing-gradient test applies.
- `mode_collapse`: classes covered (or toy modes covered) falling 25% below the best seen, or at most 25% of
  them covered from the third evaluation on, or recall falling to half its best (Salimans et al. 2016;
  Metz et al. 2017; Srivastava et al. 2017).
- `divergence`: |loss/D| or |loss/G| above 10 x its reference scale.
- `oscillation`: over the last 8 log steps, loss/G or loss/D changes direction at >= 60% of the steps with a
  range at least as large as its typical level (Mescheder et al. 2018 on non-convergent GAN dynamics).
- `exploding_gradients`: grad_norm/G or grad_norm/D above 50 x its reference.

References are medians over the log steps 2..6 (the first log step is left out: it holds the initial
transient). A condition must hold on `patience` consecutive log steps (3; 1 for gradients and evaluations)
to open an episode; the episode is reported once when it opens (console warning, TensorBoard text) and is
closed when the condition stops holding. `report()` lists all episodes (for metrics.json): kind, step range,
the numbers, and the remedies with the ganrun override that applies each.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from dataclasses import asdict, dataclass, field

log = logging.getLogger(__name__)

CURVES = ("loss", "scores", "grad_norm", "lr")  # the logged scalars the checks read (not throughput, timings)
KINDS = ("d_wins", "mode_collapse", "divergence", "oscillation", "exploding_gradients")


@dataclass
class Thresholds:
    patience: int = 3              # consecutive log steps a loss/score condition must hold
    warmup_logs: int = 1           # first log steps ignored (initial transient)
    reference_logs: int = 5        # log steps after the warm-up whose medians are the references
    d_real_high: float = 0.98      # probability-like scores: D(x) at least this ...
    d_fake_low: float = 0.02       # ... and D(G(z)) at most this
    hinge_margin: float = 1.5      # hinge: D(x) >= this and D(G(z)) <= -this
    g_grad_vanish: float = 0.1     # grad_norm/G below this fraction of its reference
    grad_explode: float = 50.0     # a gradient norm above this multiple of its reference
    divergence_factor: float = 10.0  # |loss| above this multiple of its reference scale
    oscillation_window: int = 8    # log steps
    oscillation_turns: float = 0.6   # fraction of the window's steps where the loss changes direction
    oscillation_range: float = 1.0   # (max - min) over the window, relative to its typical level
    coverage_drop: float = 0.25    # classes/modes covered falling this fraction below the best seen
    coverage_low: float = 0.25     # ... or at most this fraction covered from the third evaluation on
    recall_drop: float = 0.5       # recall falling to this fraction of its best


def score_kind_from_target(target: str) -> str:
    """`score_kind` of a loss config's `_target_` read back from a run dir: only a shipped loss class is imported
    (a run dir is data); any other, or one without a score kind (a penalty the loss group holds), reads as
    "critic" (no fixed scale)."""
    from hydra.utils import get_class

    from ganrun.trust import allowed_target

    return getattr(get_class(target), "score_kind", "critic") if allowed_target("loss", target) else "critic"


def remedies(kind: str, values: dict, loss_kind: str, loss_name: str | None = None, labelled: bool = False
             ) -> list[dict]:
    """The literature's remedies for a failure `kind`, each with the ganrun override that applies it."""
    lr_d, lr_g = values.get("lr/D"), values.get("lr/G")
    slower_d = f"optimizer.d.lr={lr_d / 4:g}" if lr_d else "optimizer.d.lr=5e-5"
    lower_both = (f"optimizer.g.lr={lr_g / 2:g} optimizer.d.lr={lr_d / 2:g}" if lr_d and lr_g
                  else "optimizer.g.lr=1e-4 optimizer.d.lr=1e-4")
    wgan_gp = ("Wasserstein loss with gradient penalty (Gulrajani et al. 2017)", "loss=wgan_gp trainer.n_critic=5")
    r1 = ("R1 gradient penalty on reals (Mescheder et al. 2018)", "regularizer=r1")
    spectral = ("spectral normalisation of D (Miyato et al. 2018)", "model.discriminator.weight_param=spectral")
    ttur = ("TTUR: a slower D than G (Heusel et al. 2017)", slower_d)
    table = {
        "d_wins": [
            *([("one-sided label smoothing (Salimans et al. 2016)", "loss.real_label=0.9")]
              if loss_kind == "probability" else []),
            *([("non-saturating G loss (Goodfellow et al. 2014)", "loss=ns")] if loss_name == "Minimax" else []),
            ttur,
            ("instance noise on D's inputs (Sonderby et al. 2016)", "augment=instance_noise"),
            ("DiffAugment on D's inputs (Zhao et al. 2020)", "augment=diffaugment"),
            r1, spectral, wgan_gp,
        ],
        "mode_collapse": [
            wgan_gp,
            ("DRAGAN gradient penalty around the data (Kodali et al. 2017)", "regularizer=dragan"),
            *([("class conditioning on the labels (Miyato & Koyama 2018)", "model.conditioning=projection")]
              if labelled else []),
            ttur,
        ],
        "divergence": [
            ("lower learning rates", lower_both), r1, spectral,
            *([wgan_gp] if loss_kind == "critic" else []),
        ],
        "oscillation": [
            ttur, r1,
            ("generator weight averaging (Yazici et al. 2019)", "ema.enabled=true"),
            ("lower learning rates", lower_both),
        ],
        "exploding_gradients": [
            ("gradient penalty (Gulrajani et al. 2017)", "regularizer=gp"), spectral,
            ("lower learning rates", lower_both),
        ],
    }
    return [{"remedy": remedy, "override": override} for remedy, override in table[kind]]


@dataclass
class Episode:
    kind: str
    first_step: int
    last_step: int
    evidence: dict
    remedies: list = field(default_factory=list)
    open: bool = True

    def message(self) -> str:
        until = f"{self.last_step} (still on)" if self.open else str(self.last_step)
        numbers = ", ".join(f"{k} {_fmt(v)}" for k, v in self.evidence.items())
        fixes = "; ".join(f"{r['remedy']}: {r['override']}" for r in self.remedies)
        return f"{self.kind.replace('_', ' ')} from step {self.first_step} to {until}: {numbers}. Remedies: {fixes}"

    def short(self) -> str:
        return f"{self.kind} {self.first_step}-{'' if self.open else self.last_step}"


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class TrainingDiagnostics:
    """Stateful detector: `observe(step, scalars)` at each log step, `observe_evaluation(step, metrics)` after
    each evaluation; both return the episodes that just opened (already logged as warnings)."""

    def __init__(self, loss_kind: str = "probability", thresholds: Thresholds | None = None,
                 num_classes: int | None = None, loss_name: str | None = None):
        self.kind, self.t, self.num_classes, self.loss_name = loss_kind, thresholds or Thresholds(), num_classes, loss_name
        self.logs = 0
        self.reference_values: dict[str, list[float]] = {}
        self.history: dict[str, deque] = {}
        self.streaks: dict[str, tuple[int, int, dict]] = {}  # kind -> (length, first step, evidence at start)
        self.episodes: list[Episode] = []
        self.open: dict[str, Episode] = {}
        self.best: dict[str, float] = {}
        self.evaluations = 0
        self.last_values: dict = {}

    @classmethod
    def for_loss(cls, loss, thresholds=None, num_classes=None) -> TrainingDiagnostics:
        return cls(loss.score_kind, thresholds, num_classes, type(loss).__name__)

    def state_dict(self) -> dict:
        """Plain data (loadable with weights_only): a resumed run goes on reading its curves where it stopped,
        with the references, streaks and episodes an uninterrupted run would have."""
        return {"logs": self.logs, "evaluations": self.evaluations, "best": dict(self.best),
                "reference_values": {k: list(v) for k, v in self.reference_values.items()},
                "history": {k: list(v) for k, v in self.history.items()},
                "streaks": {k: list(v) for k, v in self.streaks.items()},
                "episodes": [asdict(e) for e in self.episodes],
                "open": [self.episodes.index(e) for e in self.open.values()],
                "last_values": dict(self.last_values)}

    def load_state_dict(self, state: dict) -> None:
        """All or nothing: a malformed state raises before anything is changed."""
        episodes = [Episode(**e) for e in state["episodes"]]
        loaded = {
            "logs": int(state["logs"]), "evaluations": int(state["evaluations"]), "best": dict(state["best"]),
            "reference_values": {k: list(v) for k, v in state["reference_values"].items()},
            "history": {k: deque(v, maxlen=self.t.oscillation_window) for k, v in state["history"].items()},
            "streaks": {k: tuple(v) for k, v in state["streaks"].items()},
            "episodes": episodes, "open": {episodes[i].kind: episodes[i] for i in state["open"]},
            "last_values": dict(state["last_values"]),
        }
        self.__dict__.update(loaded)

    # ----- references and history -----------------------------------------------------------------------------
    def _reference(self, name: str) -> float | None:
        values = self.reference_values.get(name)
        if self.logs <= self.t.warmup_logs + self.t.reference_logs or not values:
            return None
        return statistics.median(values)

    def _remember(self, values: dict) -> None:
        self.logs += 1
        in_reference = self.t.warmup_logs < self.logs <= self.t.warmup_logs + self.t.reference_logs
        for name, value in values.items():
            if in_reference:
                self.reference_values.setdefault(name, []).append(abs(value))
            self.history.setdefault(name, deque(maxlen=self.t.oscillation_window)).append(value)

    # ----- checks: each returns the evidence when its condition holds, else None -------------------------------
    def _d_wins(self, v: dict) -> dict | None:
        real, fake, grad = v.get("scores/D(x)"), v.get("scores/D(G(z))"), v.get("grad_norm/G")
        ref = self._reference("grad_norm/G")
        vanishing = grad is not None and ref is not None and ref > 0 and grad < self.t.g_grad_vanish * ref
        separated = False
        if real is not None and fake is not None:
            if self.kind in ("probability", "least_squares"):
                separated = real >= self.t.d_real_high and fake <= self.t.d_fake_low
            elif self.kind == "hinge":
                separated = real >= self.t.hinge_margin and fake <= -self.t.hinge_margin
        if not (separated or vanishing):
            return None
        evidence = {"D(x)": real, "D(G(z))": fake}
        if grad is not None and ref:
            evidence.update({"grad_norm/G": grad, "grad_norm/G reference": ref, "G gradient vanishing": vanishing})
        return evidence

    def _divergence(self, v: dict) -> dict | None:
        for name in ("loss/D", "loss/G"):
            ref = self._reference(name)
            if name in v and ref is not None and abs(v[name]) > self.t.divergence_factor * max(ref, 1e-3):
                return {name: v[name], f"{name} reference |value|": ref}
        return None

    def _oscillation(self, v: dict) -> dict | None:
        w = self.t.oscillation_window
        for name in ("loss/G", "loss/D"):
            values = list(self.history.get(name, ()))
            ref = self._reference(name)
            if len(values) < w or ref is None:
                continue
            steps = [b - a for a, b in zip(values, values[1:])]
            turns = sum(1 for a, b in zip(steps, steps[1:]) if a * b < 0) / (len(steps) - 1)
            level = max(statistics.median(abs(x) for x in values), ref, 1e-3)
            spread = (max(values) - min(values)) / level
            if turns >= self.t.oscillation_turns and spread >= self.t.oscillation_range:
                return {name: v[name], "direction changes": round(turns, 3), "range / level": spread,
                        "min": min(values), "max": max(values)}
        return None

    def _exploding(self, v: dict) -> dict | None:
        for name in ("grad_norm/D", "grad_norm/G"):
            ref = self._reference(name)
            if name in v and ref and v[name] > self.t.grad_explode * ref:
                return {name: v[name], f"{name} reference": ref, "ratio": v[name] / ref}
        return None

    def _mode_collapse(self, m: dict) -> dict | None:
        evidence = None
        for name in ("classes_covered", "modes_covered"):
            if m.get(name) is None:
                continue
            covered = float(m[name])
            total = m.get("num_modes") or self.num_classes
            best = self.best[name] = max(self.best.get(name, covered), covered)
            fell = best > 0 and covered <= (1 - self.t.coverage_drop) * best
            low = total and self.evaluations >= 3 and covered <= self.t.coverage_low * total
            if fell or low:
                evidence = {"pattern": "fell" if fell else "never covered", name: int(covered), f"best {name}": int(best), **({"of": int(total)} if total else {})}
                if m.get("high_quality_percent") is not None:
                    evidence["high_quality_percent"] = m["high_quality_percent"]
        if m.get("recall") is not None:
            best = self.best["recall"] = max(self.best.get("recall", m["recall"]), m["recall"])
            if best > 0 and m["recall"] <= self.t.recall_drop * best:
                evidence = {**(evidence or {}), "recall": m["recall"], "best recall": best}
        if evidence is not None:
            fid = next((v for k, v in m.items() if k.startswith("FID") and v is not None), None)
            if fid is not None:
                evidence["FID"] = fid
        return evidence

    # ----- episodes --------------------------------------------------------------------------------------------
    def _track(self, kind: str, evidence: dict | None, step: int, patience: int) -> Episode | None:
        if evidence is None:
            self.streaks.pop(kind, None)
            episode = self.open.pop(kind, None)
            if episode is not None:
                episode.open = False
            return None
        length, first, _ = self.streaks.get(kind, (0, step, evidence))
        self.streaks[kind] = (length + 1, first, evidence)
        if kind in self.open:
            episode = self.open[kind]
            episode.last_step, episode.evidence = step, evidence
            return None
        if length + 1 < patience:
            return None
        episode = Episode(kind, first, step, evidence,
                          remedies(kind, self.last_values, self.kind, self.loss_name, bool(self.num_classes)))
        self.open[kind] = episode
        self.episodes.append(episode)
        log.warning("Diagnosis: %s", episode.message())
        return episode

    def observe(self, step: int, values: dict) -> list[Episode]:
        """Scalars of one log step (loss/*, scores/*, grad_norm/*, lr/*)."""
        values = {k: float(v) for k, v in values.items() if v is not None and k.split("/")[0] in CURVES}
        self._remember(values)
        self.last_values.update(values)
        if self.logs <= self.t.warmup_logs:
            return []
        checks = (("d_wins", self._d_wins, self.t.patience), ("divergence", self._divergence, self.t.patience),
                  ("oscillation", self._oscillation, self.t.patience), ("exploding_gradients", self._exploding, 1))
        opened = [self._track(kind, check(values), step, patience) for kind, check, patience in checks]
        return [e for e in opened if e is not None]

    def observe_evaluation(self, step: int, metrics: dict) -> list[Episode]:
        """An evaluation's metrics (classes_covered, modes_covered + num_modes, recall, FID)."""
        self.evaluations += 1
        episode = self._track("mode_collapse", self._mode_collapse(metrics), step, 1)
        return [episode] if episode else []

    def report(self) -> list[dict]:
        """All episodes so far, for metrics.json."""
        return [{**asdict(e), "message": e.message()} for e in self.episodes]

    def summary(self) -> str:
        """One short line for tables: 'd_wins 200-800; mode_collapse 1000-' ('' when healthy)."""
        return "; ".join(e.short() for e in self.episodes)


def write_text(writer, episode: Episode, step: int) -> None:
    """The episode as TensorBoard text (tag diagnostics/<kind>)."""
    lines = [f"**{episode.kind.replace('_', ' ')}** from step {episode.first_step} (reported at step {step})", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in episode.evidence.items()]
    # Markdown reads a list only after a blank line
    lines += ["", "Remedies:", ""] + [f"- {r['remedy']}: `{r['override']}`" for r in episode.remedies]
    writer.add_text(f"diagnostics/{episode.kind}", "\n".join(lines), step)


# ----- replay a finished run's TensorBoard scalars --------------------------------------------------------------
EVALUATION_TAGS = ("classes_covered", "modes_covered", "num_modes", "high_quality_percent", "recall", "FID")


def diagnose_run(run_dir, thresholds: Thresholds | None = None) -> TrainingDiagnostics:
    """Feed a run's logged scalars (its TensorBoard events) through the detector, step by step."""
    from pathlib import Path

    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ganrun.errors import ConfigError
    from ganrun.rundir import refuse_links

    run_dir = Path(run_dir)
    refuse_links(run_dir)
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        target, num_classes = cfg["loss"]["_target_"], (cfg.get("dataset") or {}).get("num_classes")
        if not isinstance(target, str) or not isinstance(num_classes, (int, type(None))):
            raise TypeError("loss._target_ or dataset.num_classes has the wrong type")
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{run_dir / 'config.yaml'} is not a ganrun config ({type(exc).__name__}: {exc}).") from None
    diagnostics = TrainingDiagnostics(score_kind_from_target(target), thresholds, num_classes,
                                      target.rsplit(".", 1)[-1])
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    by_step: dict[int, dict] = {}
    evaluations: dict[int, dict] = {}
    for tag in events.Tags()["scalars"]:
        for event in events.Scalars(tag):
            if tag.startswith("metrics/"):
                name = tag.split("/", 1)[1]
                if name.endswith("_ema"):
                    continue
                metric = next((m for m in EVALUATION_TAGS if name.startswith(m + "_")), None)
                if metric:
                    evaluations.setdefault(event.step, {})[metric] = event.value
            elif tag.split("/")[0] in ("loss", "scores", "grad_norm", "lr"):
                by_step.setdefault(event.step, {})[tag] = event.value
    for step in sorted(set(by_step) | set(evaluations)):
        if step in by_step:
            diagnostics.observe(step, by_step[step])
        if step in evaluations:
            diagnostics.observe_evaluation(step, evaluations[step])
    return diagnostics


def main(argv=None) -> None:
    """`ganrun-diagnose RUN_DIR`: the diagnoses of a finished (or running) run, from its TensorBoard scalars."""
    import argparse
    import json
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="ganrun-diagnose", description=main.__doc__)
    parser.add_argument("run_dir")
    parser.add_argument("--json", action="store_true", help="print the episodes as JSON")
    args = parser.parse_args(argv)
    log.setLevel(logging.ERROR)  # the episodes are printed once, finished, below
    from pathlib import Path

    from ganrun.errors import ConfigError
    from ganrun.outputs import run_dir_of

    run_dir = run_dir_of(args.run_dir)  # a checkpoint file of a run stands for its run dir
    problem = (f"{args.run_dir}: no such run dir" if not Path(args.run_dir).expanduser().exists() else
               f"{run_dir} holds no config.yaml: it is no ganrun run dir" if not (run_dir / "config.yaml").is_file()
               else None)
    try:
        if problem:
            raise ConfigError(problem + ". Give the run dir of a ganrun run (it holds config.yaml and the TensorBoard "
                              "events).")
        diagnostics = diagnose_run(run_dir)
    except ConfigError as exc:
        print(f"ganrun-diagnose: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if args.json:
        print(json.dumps(diagnostics.report(), indent=2))
    elif not diagnostics.episodes:
        print(f"No failure detected in {diagnostics.logs} log steps.")
    for episode in [] if args.json else diagnostics.episodes:
        print(f"- {episode.message()}")
