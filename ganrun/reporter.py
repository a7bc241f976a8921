"""Everything a run tells the user: scalars (with the NaN guard), sample grids, evaluations and the best FID,
metrics.json and HParams. The loop hands it each step's logs; it decides what is due and writes it.

Logged values are summed on the device in the run state's `LogWindow` and synced once per `log_every` steps,
so reporting never makes training wait on the GPU. Evaluations run on a forked RNG: whether metrics are on,
or their caches warm, never changes the training numbers.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from omegaconf import OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from ganrun import checkpoint, diagnostics, distributed, downstream
from ganrun.data import DatasetInfo
from ganrun.errors import TrainingDivergedError
from ganrun.sweep.hparams import run_hparams, write_hparams, write_session_start
from ganrun.metrics import report, sizing
from ganrun.run_state import RunState
from ganrun.runtime import isolated_rng

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What `ganrun.train.train` returns.

    step: generator steps done. scalars: the last logged window (loss/*, scores/*, penalty/*, grad_norm/*, lr/*,
    throughput). final / final_ema: the final evaluation of raw and EMA G (`{"extractor", "metrics",
    "protocol"}`), None when off. best: `{"FID", "step"}` of the lowest FID seen during training.
    """

    step: int
    scalars: dict
    final: dict | None
    final_ema: dict | None
    best: dict

    @property
    def losses(self) -> dict:
        return {k: v for k, v in self.scalars.items() if k.startswith("loss/")}

    @property
    def final_fid(self) -> float | None:
        """What a sweeper minimises: the final FID when metrics ran."""
        return self.final["metrics"].get("FID") if self.final else None


class Reporter:
    def __init__(self, cfg, run_dir: Path, state: RunState, info: DatasetInfo, source, evaluator,
                 resumed: bool):
        self.cfg, self.run_dir, self.state, self.info, self.source = cfg, Path(run_dir), state, info, source
        self.evaluator, self.trainer, self.metrics = evaluator, cfg.trainer, cfg.metrics
        self.is_main = distributed.is_main()
        self.grad_norms: dict[str, torch.Tensor] = {}
        G = state.G
        # Conditional grids: one row per class, the same noise down each column.
        columns = len(state.fixed_noise) // G.num_classes if G.num_classes else int(math.sqrt(len(state.fixed_noise)))
        self.grid_columns = max(1, columns)
        self.fixed_noise, self.fixed_labels = state.fixed_noise, None
        if G.num_classes:
            self.fixed_noise = state.fixed_noise[: self.grid_columns].repeat(G.num_classes, 1)
            self.fixed_labels = torch.arange(G.num_classes, device=state.fixed_noise.device).repeat_interleave(
                self.grid_columns)
        # An image-to-image task: its fixed evaluation set gives the grid (input | output | target, or content |
        # style | output) and the task's metrics (PSNR/SSIM; the style distances); None for noise-to-image.
        self.pairs = state.task.evaluation(cfg.dataset, source, state.fixed_noise.device, cfg.seed,
                                           cfg.metrics.batch_size, cfg.trainer.num_workers)
        # task=style scores itself (its evaluation set needs no feature extractor of the dataset)
        self.can_evaluate = evaluator is not None or not getattr(state.task, "uses_evaluator", True)
        # On resume, TensorBoard drops what the interrupted run logged after its checkpoint.
        self.writer = (SummaryWriter(log_dir=str(run_dir), purge_step=state.step + 1 if resumed else None)
                       if self.is_main else distributed.NullWriter())
        if self.is_main:  # the TEXT tab: what was run, as typed and as resolved
            self.writer.add_text("config/overrides", "```\n" + "\n".join(state.overrides) + "\n```", state.step)
            self.writer.add_text("config/resolved", "```yaml\n" + OmegaConf.to_yaml(cfg, resolve=True) + "```",
                                 state.step)
            write_session_start(self.writer, run_hparams(cfg, state.overrides))  # HParams lists it if interrupted
        self.bar = tqdm(total=self.trainer.steps, initial=state.step, desc="ganrun", dynamic_ncols=True,
                        disable=None if self.is_main else True)
        downstream.check_config(cfg, G)  # before training, not after it
        self.diagnostics = state.diagnostics  # reads the logged curves for failure modes; resumed with the run
        self.last_evaluation = None  # (step, num_samples, results) of the latest evaluation
        if evaluator is not None and not info.points:  # toy data sizes its own evaluation
            log.info(sizing.describe(self.trainer.steps, self.metrics))
        state.window.restart_clock()  # the first window's img/s: set-up (and steps before a resume) left out

    # --- per step -------------------------------------------------------------------------------------------
    def is_log_step(self, step: int) -> bool:
        """Whether the G step about to finish (0-based `step`) ends a logging window."""
        return (step + 1) % self.trainer.log_every == 0

    def add(self, logs: dict, divide_by: int = 1) -> None:
        for name, value in logs.items():
            self.state.window.add(name, value / divide_by)

    def grad_norm(self, name: str, module: torch.nn.Module, step: int) -> None:
        """Total gradient norm of `module`, kept for the log step (computed only then)."""
        if self.is_log_step(step):
            grads = [p.grad for p in module.parameters() if p.grad is not None]
            self.grad_norms[f"grad_norm/{name}"] = torch.nn.utils.get_total_norm(grads)

    def report(self) -> bool:
        """After a step: scalars, samples and evaluation when due. True when the evaluation set a new best FID."""
        state = self.state
        state.window.steps += 1
        state.window.timed_steps += 1
        self.bar.update(1)
        if state.step % self.trainer.log_every == 0:
            self._flush_window()
        with state.window.clock_paused():  # not training time: the img/s of the next window leaves it out
            if state.step % self.trainer.sample_every == 0:
                self.log_samples()
            if self.can_evaluate and self.metrics.every > 0 and state.step % self.metrics.every == 0:
                return state.improves_best(self.evaluate(self.metrics.num_samples)[""]["metrics"].get("FID"))
        return False

    def check_finite(self) -> dict[str, float]:
        """Means of the open window; stops the run, naming the value and the steps, when any is NaN/inf."""
        window, step = self.state.window, self.state.step
        values = window.means() if window.steps else {}
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        if bad:
            raise TrainingDivergedError(
                f"{', '.join(bad)} became non-finite ({values[bad[0]]}) between steps {step - window.steps + 1} and "
                f"{step}. Training stopped; {checkpoint.last_good_note(self.run_dir)} "
                "Lower the learning rates, add a regularizer, or check the data."
            )
        return values

    def _flush_window(self) -> None:
        """Means over the steps since the last log (plus this step's gradient norms), to TensorBoard and the log."""
        state, window = self.state, self.state.window
        values = self.check_finite()
        values.update({name: norm.item() for name, norm in self.grad_norms.items()})
        images, elapsed = window.timed_steps * state.images_per_step, window.elapsed()  # one clock reading for both
        values["throughput/images_per_sec"] = images / elapsed
        values["throughput/sec_per_kimg"] = elapsed / (images / 1000)  # stylegan's Timing/sec_per_kimg
        values["progress/kimg"] = state.kimg  # real images shown to D so far, over all ranks, / 1000
        values["lr/G"], values["lr/D"] = state.opt_g.param_groups[0]["lr"], state.opt_d.param_groups[0]["lr"]
        values.update(state.schedules.logged())  # schedule/NAME: each scheduled value, as set for the next step
        for name, value in values.items():
            self.writer.add_scalar(name, value, state.step)
        window.reset()
        state.last_scalars = values
        self.bar.set_postfix({k.split("/")[-1]: f"{values[k]:.3g}" for k in ("loss/D", "loss/G")})
        log.info("step %d/%d  kimg %.1f  D %.4f  G %.4f  D(x) %.3f  D(G(z)) %.3f  %.0f img/s  %.2f sec/kimg",
                 state.step, self.trainer.steps, state.kimg, values["loss/D"], values["loss/G"], values["scores/D(x)"],
                 values["scores/D(G(z))"], values["throughput/images_per_sec"], values["throughput/sec_per_kimg"])
        if self.is_main:
            self._write_diagnoses(self.diagnostics.observe(state.step, values))

    def _write_diagnoses(self, episodes) -> None:
        for episode in episodes:  # each already logged once as a warning by the detector
            diagnostics.write_text(self.writer, episode, self.state.step)

    # --- samples and evaluation -----------------------------------------------------------------------------
    def generators(self) -> list:
        """Raw G, and the EMA G next to it when enabled: samples and metrics report both."""
        ema = self.state.ema
        return [("", self.state.G)] + ([("_ema", ema.generator())] if ema is not None else [])

    @torch.no_grad()
    def log_samples(self) -> None:
        if not self.is_main:
            return
        step = self.state.step
        for suffix, generator in self.generators():
            was_training = generator.training
            if self.pairs is not None:
                self._save_grid(self.pairs.grid(generator, self.trainer.num_samples, self.state.objective.autocast),
                                suffix, self.pairs.grid_tag)
                continue
            generator.eval()
            with self.state.objective.autocast:
                images = generator(self.fixed_noise, self.fixed_labels).float()
            generator.train(was_training)
            if self.info.points:
                self.writer.add_figure(f"samples/scatter{suffix}", self.source.scatter(images), step)
                continue
            grid = torchvision.utils.make_grid(images, nrow=self.grid_columns, normalize=True, value_range=(-1, 1))
            self._save_grid(grid, suffix)

    def _save_grid(self, grid: torch.Tensor, suffix: str, tag: str = "samples/fixed_noise") -> None:
        step = self.state.step
        self.writer.add_image(f"{tag}{suffix}", grid, step)
        (self.run_dir / "samples").mkdir(exist_ok=True)
        torchvision.utils.save_image(grid, self.run_dir / "samples" / f"step_{step:08d}{suffix}.png")

    def evaluate(self, num_samples: int, section: str = "metrics") -> dict:
        """Score raw (and EMA) G on `num_samples` samples; on a forked RNG, so training numbers do not move.
        The same G on as many samples (the final report right after the last periodic evaluation) is not scored
        twice: the results are the same, only logged again under `section`."""
        distributed.sync_module(self.state.G)
        done = self.last_evaluation
        same = done is not None and done[:2] == (self.state.step, num_samples)
        results = {k: {**r, "seconds": None} for k, r in done[2].items()} if same else {}  # took no time now
        seed = self.cfg.seed + 1000 * distributed.rank()
        device = next(self.state.G.parameters()).device
        for suffix, generator in ([] if same else self.generators()):
            with isolated_rng(device):
                results[suffix] = (self.pairs.evaluate(self.evaluator, generator, num_samples) if self.pairs else
                                   report.evaluate_generator(self.evaluator, generator, self.cfg.model.z_dim,
                                                             num_samples, seed))
        self.last_evaluation = (self.state.step, num_samples, results)
        if self.is_main:
            for suffix, result in results.items():
                report.log_result(self.writer, self.run_dir, result, self.state.step, suffix, section)
            self._write_diagnoses(self.diagnostics.observe_evaluation(self.state.step, results[""]["metrics"]))
        return results

    # --- end of run -----------------------------------------------------------------------------------------
    def finish(self, overrides: list[str]) -> TrainResult:
        """Last samples, the final evaluation, metrics.json and HParams."""
        state = self.state
        if state.step % self.trainer.sample_every != 0:
            self.log_samples()
        final = final_ema = None
        if self.can_evaluate and self.metrics.final_num_samples > 0:
            results = self.evaluate(self.metrics.final_num_samples, section="metrics_final")
            final, final_ema = results[""], results.get("_ema")
        result = TrainResult(state.step, dict(state.last_scalars), final, final_ema, state.best)
        value = None
        if self.is_main:  # optional downstream value of raw or EMA G (metrics.downstream)
            device = next(state.G.parameters()).device
            with isolated_rng(device):
                value = downstream.end_of_run(state.G, self.cfg, self.run_dir, state.step, self.writer, device,
                                              state.ema)
            summary = {"step": state.step, "final": final, "final_ema": final_ema, "best": state.best,
                       "losses": result.losses, "diagnostics": self.diagnostics.report(), "downstream": value}
            checkpoint.write_text_atomic(self.run_dir / "metrics.json", json.dumps(summary, indent=2))
            log.info("Final metrics written to %s", self.run_dir / "metrics.json")
        final_metrics = {**(final["metrics"] if final else {}), "best_FID": state.best["FID"], **result.losses,
                         **(downstream.summary_values(value) if value else {}),
                         **{f"{k}_ema": v for k, v in (final_ema["metrics"] if final_ema else {}).items()}}
        write_hparams(self.writer, run_hparams(self.cfg, overrides), final_metrics, state.step)
        return result

    def close(self) -> None:
        self.bar.close()
        self.writer.close()
