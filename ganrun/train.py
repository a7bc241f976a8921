"""The training loop, top to bottom: config -> objects -> loop (D steps, G step, log, sample, checkpoint).

Losses, regularizers, models, data and checkpoint I/O live in their own modules; this file only wires them
together, so what happens in a step can be read here in one place.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

import ganrun
from ganrun import checkpoint, distributed
from ganrun.augment import Pipeline
from ganrun.config import build, build_optimizer, check_trainer
from ganrun.data import BatchStream, load_dataset
from ganrun.ema import GeneratorEMA
from ganrun.errors import TrainingDivergedError, TrainingInterrupted
from ganrun.hparams import run_hparams, write_hparams
from ganrun.metrics import report
from ganrun.models import check_shapes, sample_shape
from ganrun.models.conditioning import random_labels, split_output
from ganrun.regularizers import weighted_penalties
from ganrun.runtime import (
    configure_determinism,
    rng_state,
    select_device,
    set_rng_state,
    stop_on_signals,
)
from ganrun.window import LogWindow

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path, overrides: list[str] = ()) -> dict:
    run_dir = Path(run_dir)
    overrides = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~").startswith("resume")]
    trainer = cfg.trainer
    check_trainer(trainer)
    if cfg.dataset.source.get("root"):  # relative to where ganrun was started; stored absolute for resume/eval
        cfg.dataset.source.root = os.path.abspath(os.path.expanduser(cfg.dataset.source.root))
    source, info = load_dataset(cfg.dataset)
    if cfg.dataset.get("num_classes") is None and info["num_classes"]:  # a class-per-folder tree
        cfg.dataset.num_classes = info["num_classes"]
    plain_cfg = OmegaConf.to_container(cfg, resolve=True)

    resumed = None
    if cfg.resume:
        resumed, resumed_from = checkpoint.load_for_resume(cfg.resume)
        checkpoint.refuse_changed_experiment(resumed["config"], plain_cfg, cfg.resume, cfg.resume_force)

    device = distributed.device_for_rank(select_device(trainer.device))
    rank, world = distributed.rank(), distributed.world_size()
    is_main = rank == 0
    configure_determinism(device, trainer.deterministic)
    torch.manual_seed(cfg.seed)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(trainer.amp) and device.type == "cuda")

    # Models, loss, regularizers, optimizers: all from the config.
    z_dim = cfg.model.z_dim
    G = build(cfg.model.generator).to(device)
    D = build(cfg.model.discriminator).to(device)
    check_shapes(G, D, cfg.dataset, z_dim, device)
    conditional, acgan_weight = bool(G.num_classes), cfg.model.get("acgan_weight", 1.0)
    if world > 1:
        G, D = distributed.prepare_models(G, D, trainer.sync_bn, device)
        torch.manual_seed(cfg.seed + 7919 * rank)  # each rank draws its own noise
    loss = build(cfg.loss)
    regularizers = {**loss.regularizers, **(build(cfg.regularizer) or {})}
    opt_g = build_optimizer(cfg.optimizer.g, G.parameters(), "optimizer.g")
    opt_d = build_optimizer(cfg.optimizer.d, D.parameters(), "optimizer.d")
    schedulers = [build(cfg.scheduler)(opt) for opt in (opt_g, opt_d)]
    augment = Pipeline(build(cfg.augment))
    ema = GeneratorEMA.from_config(G, cfg) if cfg.ema.enabled else None

    # Data.
    log.info("Dataset %s: %d samples (modes for toy data), %s classes, sample shape %s", cfg.dataset.name,
             info["size"], info["num_classes"], sample_shape(cfg.dataset))
    augment.check(sample_shape(cfg.dataset))
    points = bool(cfg.dataset.get("shape"))  # toy 2-D data: drawn fresh each batch, shown as scatter plots
    if points:
        stream = source.stream(trainer.batch_size, device)
    else:
        stream = BatchStream(source, cfg.dataset.resolution, cfg.dataset.channels, trainer.batch_size, cfg.seed,
                             device, cfg.dataset.in_memory, trainer.num_workers, rank, world)
    if world > 1:
        log.info("Distributed: %d ranks, batch %d per rank = %d effective batch size", world, trainer.batch_size,
                 trainer.batch_size * world)
    num_fixed = max(trainer.num_samples, 2000) if points else trainer.num_samples  # scatter plots need more
    fixed_noise = torch.randn(num_fixed, z_dim, generator=torch.Generator().manual_seed(cfg.seed))
    metrics_cfg = cfg.metrics
    evaluator = None
    if metrics_cfg.every > 0 or metrics_cfg.final_num_samples > 0:
        with distributed.main_rank_first():  # rank 0 trains/caches the offline classifier, the others load it
            evaluator = report.make_evaluator(metrics_cfg, cfg.dataset, device, trainer.num_workers)

    step, best = 0, {"FID": None, "step": None}
    if resumed is not None:
        G.load_state_dict(resumed["generator"])
        D.load_state_dict(resumed["discriminator"])
        for name, optimizer in (("opt_g", opt_g), ("opt_d", opt_d)):
            try:
                optimizer.load_state_dict(resumed[name])
            except (KeyError, ValueError) as exc:  # only reachable with resume_force and another optimizer
                log.warning("Optimizer state %s not restored (%r): starting it fresh.", name, exc)
        stream.load_state_dict(resumed["data"])
        for scheduler, state in zip(schedulers, resumed.get("schedulers", [])):
            scheduler.load_state_dict(state)
        if ema is not None and resumed.get("ema") is not None:
            ema.load_state_dict(resumed["ema"])
        set_rng_state(resumed["rng"][rank])
        fixed_noise, step, best = resumed["fixed_noise"], int(resumed["step"]), resumed.get("best", best)
        log.info("Resumed from %s at step %d", resumed_from, step)
    fixed_noise = fixed_noise.to(device)
    # Conditional grids: one row per class, the same noise down each column.
    grid_columns = max(1, len(fixed_noise) // G.num_classes) if conditional else int(math.sqrt(len(fixed_noise))) or 1
    fixed_labels = None
    if conditional:
        fixed_noise = fixed_noise[:grid_columns].repeat(G.num_classes, 1)
        fixed_labels = torch.arange(G.num_classes, device=device).repeat_interleave(grid_columns)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)

    def save_checkpoint(path=None):
        distributed.sync_module(G)  # BatchNorm statistics differ per rank: keep rank 0's everywhere
        distributed.sync_module(D)
        rng_per_rank = distributed.gather_objects(rng_state())
        if not is_main:
            return
        for name, model in (("generator", G), ("discriminator", D)):
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise TrainingDivergedError(
                    f"the {name}'s weights became non-finite by step {step}. Training stopped; the last good "
                    f"checkpoint is in {run_dir / checkpoint.CHECKPOINT_DIR}."
                )
        state = {
            "format": 1, "ganrun_version": ganrun.__version__, "torch_version": str(torch.__version__),
            "step": step, "config": plain_cfg, "overrides": list(overrides),
            "generator": G.state_dict(), "discriminator": D.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "schedulers": [scheduler.state_dict() for scheduler in schedulers],
            "ema": ema.state_dict() if ema is not None else None,
            "data": stream.state_dict(), "rng": rng_per_rank, "fixed_noise": fixed_noise.cpu(), "best": best,
        }
        checkpoint.save_atomic(state, path or checkpoint.checkpoint_path(run_dir, step))
        checkpoint.prune(run_dir, trainer.keep_ckpts)

    def generators():
        """Raw G, and the EMA G next to it when enabled: samples and metrics report both."""
        return [("", G)] + ([("_ema", ema.generator())] if ema is not None else [])

    def evaluate(writer, num_samples) -> dict:
        distributed.sync_module(G)
        results = {}
        for suffix, generator in generators():
            result = report.evaluate_generator(evaluator, generator, z_dim, num_samples, cfg.seed + 1000 * rank)
            if is_main:
                report.log_result(writer, run_dir, result, step, suffix)
            results[suffix] = result
        return results

    def log_samples(writer):
        if not is_main:
            return
        for suffix, generator in generators():
            was_training = generator.training
            generator.eval()
            with torch.no_grad(), autocast:
                images = generator(fixed_noise, fixed_labels).float()
            generator.train(was_training)
            if points:
                writer.add_figure(f"samples/scatter{suffix}", source.scatter(images), step)
                continue
            grid = torchvision.utils.make_grid(images, nrow=grid_columns, normalize=True, value_range=(-1, 1))
            writer.add_image(f"samples/fixed_noise{suffix}", grid, step)
            (run_dir / "samples").mkdir(exist_ok=True)
            torchvision.utils.save_image(grid, run_dir / "samples" / f"step_{step:08d}{suffix}.png")

    batch, n_critic = trainer.batch_size, trainer.n_critic
    window = LogWindow()
    grad_norms: dict[str, torch.Tensor] = {}
    last_values: dict[str, float] = {}

    def checked_means() -> dict[str, float]:
        values = window.means()
        _check_finite(values, step - window.steps + 1, step, run_dir)
        return values

    def flush_window(writer) -> dict[str, float]:
        """Means over the steps since the last log (plus this step's gradient norms), written to TensorBoard."""
        values = checked_means()
        values.update({name: norm.item() for name, norm in grad_norms.items()})
        values["throughput/images_per_sec"] = window.steps * n_critic * batch * world / window.elapsed()
        values["lr/G"], values["lr/D"] = opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"]
        for name, value in values.items():
            writer.add_scalar(name, value, step)
        window.reset()
        return values

    if step >= trainer.steps:
        log.info("The checkpoint is at step %d >= trainer.steps=%d: nothing to train (raise trainer.steps).",
                 step, trainer.steps)
    log.info("Training %s/%s with loss %s for %d steps (n_critic=%d, batch %d) in %s", cfg.model.name,
             cfg.dataset.name, type(loss).__name__, trainer.steps, n_critic, batch, run_dir)
    # On resume, TensorBoard drops what the interrupted run logged after its checkpoint.
    writer = (SummaryWriter(log_dir=str(run_dir), purge_step=step + 1 if resumed is not None else None) if is_main
              else distributed.NullWriter())
    bar = tqdm(total=trainer.steps, initial=step, desc="ganrun", dynamic_ncols=True, disable=None if is_main else True)
    try:
        with stop_on_signals() as signals:
            while step < trainer.steps:
                log_step = (step + 1) % trainer.log_every == 0

                # Discriminator: n_critic steps, each on a fresh real batch.
                for i in range(n_critic):
                    real, labels = next(stream)
                    y = labels if conditional else None  # fakes for D share the real batch's labels
                    z = torch.randn(batch, z_dim, device=device)
                    with autocast:
                        with torch.no_grad():
                            fake = G(z, y)
                        real, fake = augment(real, step), augment(fake, step)
                        (real_out, real_cls), (fake_out, fake_cls) = split_output(D(real, y)), split_output(D(fake, y))
                        real_out, fake_out = real_out.float(), fake_out.float()  # losses in fp32 under AMP
                        d_adversarial = loss.d_loss(real_out, fake_out)
                        critic = (lambda x: split_output(D(x, y))[0]) if conditional else D
                        terms = weighted_penalties(regularizers, critic, real, fake, D, step * n_critic + i)
                        if real_cls is not None:  # AC-GAN: D also classifies reals and fakes (Odena et al. 2017)
                            terms["acgan_class"] = acgan_weight * (F.cross_entropy(real_cls, y)
                                                                   + F.cross_entropy(fake_cls, y))
                        d_total = d_adversarial + sum(terms.values())
                    for name, term in terms.items():
                        window.add(f"penalty/{name}", term / n_critic)
                    opt_d.zero_grad(set_to_none=True)
                    d_total.backward()
                    distributed.average_gradients(D)
                    if log_step and i == n_critic - 1:
                        grad_norms["grad_norm/D"] = _grad_norm(D)
                    opt_d.step()
                    for reg in regularizers.values():
                        reg.after_d_step(D)
                    window.add("loss/D", d_total / n_critic)
                    window.add("loss/D_adversarial", d_adversarial / n_critic)
                    window.add("scores/D(x)", loss.score(real_out).mean() / n_critic)
                    window.add("scores/D(G(z))", loss.score(fake_out).mean() / n_critic)

                # Generator: one step through a frozen D.
                D.requires_grad_(False)
                z = torch.randn(batch, z_dim, device=device)
                y_g = random_labels(G, batch, device)
                with autocast:
                    real_out = split_output(D(real, y))[0].float() if loss.needs_real_in_g else None  # last batch
                    fake_out, fake_cls = split_output(D(augment(G(z, y_g), step), y_g))
                    g_loss = loss.g_loss(fake_out.float(), real_out)
                    if fake_cls is not None:
                        g_loss = g_loss + acgan_weight * F.cross_entropy(fake_cls, y_g)
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                distributed.average_gradients(G)
                if log_step:
                    grad_norms["grad_norm/G"] = _grad_norm(G)
                opt_g.step()
                for scheduler in schedulers:
                    scheduler.step()
                D.requires_grad_(True)
                window.add("loss/G", g_loss)

                step += 1
                if ema is not None:
                    ema.update(G, step)
                window.steps += 1
                bar.update(1)
                if log_step:
                    last_values = flush_window(writer)
                    bar.set_postfix({k.split("/")[-1]: f"{last_values[k]:.3g}" for k in ("loss/D", "loss/G")})
                    log.info("step %d/%d  D %.4f  G %.4f  D(x) %.3f  D(G(z)) %.3f  %.0f img/s", step, trainer.steps,
                             last_values["loss/D"], last_values["loss/G"], last_values["scores/D(x)"],
                             last_values["scores/D(G(z))"], last_values["throughput/images_per_sec"])
                if step % trainer.sample_every == 0:
                    log_samples(writer)
                if evaluator is not None and metrics_cfg.every > 0 and step % metrics_cfg.every == 0:
                    fid = evaluate(writer, metrics_cfg.num_samples)[""]["metrics"].get("FID")
                    if fid is not None and (best["FID"] is None or fid < best["FID"]):
                        best = {"FID": fid, "step": step}
                        save_checkpoint(run_dir / checkpoint.CHECKPOINT_DIR / checkpoint.BEST_FILE)
                interrupted = distributed.any_rank(bool(signals))
                if step % trainer.ckpt_every == 0 or step == trainer.steps or interrupted:
                    if window.steps:  # never checkpoint a diverged model
                        checked_means()
                    save_checkpoint()
                if interrupted:
                    name = signal.Signals(signals[0]).name if signals else "SIGTERM (another rank)"
                    raise TrainingInterrupted(
                        signals[0] if signals else signal.SIGTERM,
                        f"{name} received: stopped after step {step} and saved a checkpoint. "
                        f"Resume with: ganrun resume={run_dir}",
                    )
        if step % trainer.sample_every != 0:
            log_samples(writer)
        final = final_ema = None
        if evaluator is not None and metrics_cfg.final_num_samples > 0:
            results = evaluate(writer, metrics_cfg.final_num_samples)
            final, final_ema = results[""], results.get("_ema")
        losses = {k: v for k, v in last_values.items() if k.startswith("loss/")}
        summary = {"step": step, "final": final, "final_ema": final_ema, "best": best, "losses": losses}
        if is_main:
            (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
            log.info("Final metrics written to %s", run_dir / "metrics.json")
        final_metrics = {**(final["metrics"] if final else {}), "best_FID": best["FID"], **losses,
                         **{f"{k}_ema": v for k, v in (final_ema["metrics"] if final_ema else {}).items()}}
        write_hparams(writer, run_hparams(cfg, overrides), final_metrics, step)
    finally:
        bar.close()
        writer.close()
    log.info("Finished %d steps; checkpoints in %s", step, run_dir / checkpoint.CHECKPOINT_DIR)
    if world > 1:
        digests = distributed.gather_objects((distributed.weights_digest(G), distributed.weights_digest(D)))
        log.info("rank %d/%d final weights: G %s D %s (%s on all ranks)", rank, world, *digests[rank],
                 "identical" if len(set(digests)) == 1 else "DIFFERENT")
    return {"step": step, **last_values, "final": final, "best": best}


def _grad_norm(module: torch.nn.Module) -> torch.Tensor:
    return torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None])


def _check_finite(values: dict, first: int, last: int, run_dir: Path) -> None:
    """Stop with the loss and steps named when anything accumulated since the last check is NaN/inf."""
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise TrainingDivergedError(
            f"{', '.join(bad)} became non-finite ({values[bad[0]]}) between steps {first} and {last}. "
            f"Training stopped; the last good checkpoint is in {run_dir / checkpoint.CHECKPOINT_DIR}. "
            "Lower the learning rates, add a regularizer, or check the data."
        )
