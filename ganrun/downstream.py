"""Downstream value of a generator: does its data help a classifier trained on it?

The protocol, fixed so that numbers compare across generators of one dataset:

- Classifier: `ganrun.metrics.classifier.SmallClassifier`, the offline feature extractor's CNN (conv 3x3 32 -
  BN - ReLU - maxpool, conv 64 - BN - ReLU - maxpool, conv 128 - BN - ReLU, global average pool, linear), trained
  from scratch with Adam (lr 1e-3), batch 128, for a fixed number of optimizer steps (500 by default) whatever
  the training set's size, so that no condition gets more training than another. No data augmentation; images
  are uint8 scaled to [-1, 1], generated ones are rounded to uint8 first, like samples written to disk.
- Conditions: `real` (the real training images), `real+generated` (the same plus `ratio` generated images per
  real one, batches drawn uniformly from the union), `generated` (generated images only, as many as the full real
  training split: the Classification Accuracy Score, CAS, of Ravuri & Vinyals 2019).
- Low-data mode: `real_per_class` N keeps N real training images of each class (drawn per repeat).
- Test: accuracy on the whole real test split (the dataset's test split; a seeded 10% held out for folders).
- Repeats: repeat r uses seed `seed + r` for the real subset, the generated noise and labels, the classifier's
  initialisation and batch order; each number is reported as mean and standard deviation over repeats.

Generated images need labels: a class-conditional G is sampled with balanced labels (each class equally often).
An unconditional G has none; with `label_by_classifier` its samples are labelled by this classifier trained on
all real training images, so "generated" then measures agreement with that classifier, not class control.
Nothing here touches the global (training) RNG: every draw uses its own torch.Generator, and the classifier is
initialised inside `torch.random.fork_rng`.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ganrun.errors import ConfigError
from ganrun.metrics.classifier import SmallClassifier, to_model_input
from ganrun.runtime import warn_only_determinism

log = logging.getLogger(__name__)

CONDITIONS = ("real", "real+generated", "generated")
# TensorBoard tags and sweep-summary columns of the conditions' mean accuracies.
TAGS = {"real": "downstream/accuracy_real", "real+generated": "downstream/accuracy_real+generated",
        "generated": "downstream/CAS"}


@dataclass
class Protocol:
    steps: int = 500              # classifier optimizer steps, the same for every condition
    batch_size: int = 128
    lr: float = 1e-3
    real_per_class: int | None = None  # low-data mode: real training images kept per class
    ratio: float = 1.0            # generated images per real one in real+generated
    num_generated: int | None = None   # generated-only training set size (default: the full real training split)
    repeats: int = 3
    seed: int = 0
    label_by_classifier: bool = False  # unconditional G: label its samples with a classifier trained on real data

    def check(self) -> None:
        for key, value, low in (("steps", self.steps, 1), ("batch_size", self.batch_size, 1),
                                ("repeats", self.repeats, 1), ("real_per_class", self.real_per_class, 1),
                                ("num_generated", self.num_generated, 1)):
            if value is not None and value < low:
                raise ConfigError(f"downstream {key}={value}: must be at least {low}.")
        if self.ratio <= 0:
            raise ConfigError(f"downstream ratio={self.ratio}: must be positive (generated images per real one).")


def class_subset(labels: torch.Tensor, per_class: int, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of `per_class` randomly chosen examples of every class."""
    chosen = []
    for c in range(num_classes):
        members = (labels == c).nonzero().flatten()
        if len(members) < per_class:
            raise ConfigError(f"--real-per-class {per_class}: class {c} has only {len(members)} training images.")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(chosen)


def balanced_labels(n: int, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """n labels, each class n / num_classes times (up to one), in random order."""
    return (torch.arange(n) % num_classes)[torch.randperm(n, generator=generator)]


@warn_only_determinism()
def fit(images: torch.Tensor, labels: torch.Tensor, num_classes: int, protocol: Protocol, seed: int,
        device) -> SmallClassifier:
    """Train the fixed classifier on uint8 images for `protocol.steps` steps; batches drawn with replacement."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallClassifier(images.shape[1], num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=protocol.lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(protocol.steps):
        idx = torch.randint(len(images), (protocol.batch_size,), generator=generator)
        loss = F.cross_entropy(model(to_model_input(images[idx]).to(device)), labels[idx].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def predict(model: SmallClassifier, images: torch.Tensor, device, batch_size: int = 500) -> torch.Tensor:
    return torch.cat([model(to_model_input(images[i : i + batch_size]).to(device)).argmax(1).cpu()
                      for i in range(0, len(images), batch_size)])


def accuracy(model: SmallClassifier, images: torch.Tensor, labels: torch.Tensor, device) -> float:
    return (predict(model, images, device) == labels).float().mean().item()


@torch.no_grad()
def generate(G, z_dim: int, labels: torch.Tensor | None, n: int, generator: torch.Generator,
             batch_size: int = 500) -> torch.Tensor:
    """n uint8 images (N, C, H, W) of G; `labels` (n,) conditions a class-conditional G."""
    from ganrun.outputs import to_uint8

    device = next(G.parameters()).device
    chunks = []
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        z = torch.randn(count, z_dim, generator=generator).to(device)
        y = labels[start : start + count].to(device) if labels is not None else None
        chunks.append(to_uint8(G(z, y).float()))
    return torch.cat(chunks)


def _mean_std(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "runs": values}


def evaluate_downstream(G, z_dim: int, num_classes: int, train_split, test_split, protocol: Protocol,
                        device="cpu") -> dict:
    """Accuracies on the real test split of the fixed classifier trained under each condition, over repeats."""
    protocol.check()
    conditional = bool(getattr(G, "num_classes", 0))
    if not conditional and not protocol.label_by_classifier:
        raise ConfigError(
            "the generator is unconditional (model.conditioning=none): its samples have no labels, so no "
            "classifier can be trained on them. Train a class-conditional G (model.conditioning=acgan, concat or "
            "projection), or pass --label-by-classifier (metrics.downstream.label_by_classifier=true) to label the "
            "samples with a classifier trained on the real data (then 'generated' measures agreement with it).")
    if conditional and G.num_classes != num_classes:
        raise ConfigError(f"the generator has {G.num_classes} classes, the dataset {num_classes}.")
    (train_x, train_y), (test_x, test_y) = train_split, test_split
    labeler, labeler_accuracy = None, None
    if not conditional:
        labeler = fit(train_x, train_y, num_classes, protocol, protocol.seed + 10_000, device)
        labeler_accuracy = accuracy(labeler, test_x, test_y, device)
        log.info("Labelling generated images with a classifier trained on all real images (test accuracy %.4f)",
                 labeler_accuracy)
    runs = {name: [] for name in CONDITIONS}
    sizes = {}
    was_training = G.training
    G.eval()
    try:
        for repeat in range(protocol.repeats):
            seed = protocol.seed + repeat
            generator = torch.Generator().manual_seed(seed)
            if protocol.real_per_class:
                keep = class_subset(train_y, protocol.real_per_class, num_classes, generator)
                real_x, real_y = train_x[keep], train_y[keep]
            else:
                real_x, real_y = train_x, train_y
            n_mix = max(1, round(protocol.ratio * len(real_x)))
            n_gen = protocol.num_generated or len(train_x)
            pool = max(n_mix, n_gen)
            gen_y = balanced_labels(pool, num_classes, generator) if conditional else None
            gen_x = generate(G, z_dim, gen_y, pool, generator)
            if labeler is not None:
                gen_y = predict(labeler, gen_x, device)
            sets = {"real": (real_x, real_y),
                    "real+generated": (torch.cat([real_x, gen_x[:n_mix]]), torch.cat([real_y, gen_y[:n_mix]])),
                    "generated": (gen_x[:n_gen], gen_y[:n_gen])}
            for name, (x, y) in sets.items():
                model = fit(x, y, num_classes, protocol, seed, device)
                runs[name].append(accuracy(model, test_x, test_y, device))
                sizes[name] = len(x)
                log.info("downstream repeat %d/%d: %-15s %6d training images, test accuracy %.4f", repeat + 1,
                         protocol.repeats, name, len(x), runs[name][-1])
    finally:
        G.train(was_training)
    accuracies = {name: _mean_std(values) for name, values in runs.items()}
    gains = [mixed - real for mixed, real in zip(runs["real+generated"], runs["real"])]
    return {"accuracy": accuracies, "gain": _mean_std(gains), "training_images": sizes,
            "labels": "generator" if conditional else "classifier", "labeler_test_accuracy": labeler_accuracy,
            "protocol": {**asdict(protocol), "classifier": "ganrun.metrics.classifier.SmallClassifier",
                         "optimizer": "Adam", "n_test": len(test_x)}}


def summary_values(result: dict) -> dict:
    """The mean accuracies (and gain) under their TensorBoard tags' last parts, for tables and HParams."""
    values = {TAGS[name].split("/", 1)[1]: result["accuracy"][name]["mean"] for name in CONDITIONS}
    return {**values, "downstream_gain": result["gain"]["mean"]}


def format_table(result: dict) -> str:
    p = result["protocol"]
    real = f"{p['real_per_class']} per class" if p["real_per_class"] else "all"
    lines = [f"Downstream accuracy on the real test split ({p['n_test']} images), {p['repeats']} repeat(s), "
             f"{p['steps']} classifier steps; real training images: {real}; ratio {p['ratio']:g}; "
             f"labels of generated images: {result['labels']}",
             "",  # Markdown (TensorBoard's TEXT tab) reads a table only after a blank line
             "| training data | images | accuracy (mean ± std) |", "|---|---|---|"]
    for name in CONDITIONS:
        acc = result["accuracy"][name]
        lines.append(f"| {name} | {result['training_images'][name]} | {acc['mean']:.4f} ± {acc['std']:.4f} |")
    lines.append(f"| gain of real+generated over real | | {result['gain']['mean']:+.4f} ± {result['gain']['std']:.4f} |")
    return "\n".join(lines)


def log_to_tensorboard(writer, result: dict, step: int) -> None:
    for name in CONDITIONS:
        writer.add_scalar(TAGS[name], result["accuracy"][name]["mean"], step)
    writer.add_scalar("downstream/gain", result["gain"]["mean"], step)
    writer.add_text("downstream/table", format_table(result), step)


def result_file(run_dir: Path, protocol: Protocol) -> Path:
    """downstream.json, or downstream_real<N>.json in low-data mode, so both settings can sit side by side."""
    name = f"downstream_real{protocol.real_per_class}.json" if protocol.real_per_class else "downstream.json"
    return Path(run_dir) / name


def protocol_from_config(downstream_cfg) -> Protocol:
    fields = Protocol.__dataclass_fields__
    return Protocol(**{k: v for k, v in dict(downstream_cfg).items() if k in fields})


def check_config(cfg, G) -> None:
    """Refuse, before training, a `metrics.downstream` that could not run at its end."""
    downstream_cfg = cfg.metrics.get("downstream")
    if not downstream_cfg or not downstream_cfg.get("enabled"):
        return
    if cfg.dataset.get("shape") or not cfg.dataset.get("num_classes"):
        raise ConfigError(f"metrics.downstream.enabled=true needs a labelled image dataset; {cfg.dataset.name} "
                          "has no class labels.")
    if not getattr(G, "num_classes", 0) and not downstream_cfg.get("label_by_classifier"):
        raise ConfigError("metrics.downstream.enabled=true with an unconditional G (model.conditioning=none): its "
                          "samples have no labels. Use model.conditioning=acgan|concat|projection, or "
                          "metrics.downstream.label_by_classifier=true.")
    protocol_from_config(downstream_cfg).check()
    generator = downstream_cfg.get("generator", "raw")
    if generator not in ("raw", "ema"):
        raise ConfigError(f"metrics.downstream.generator={generator}: choose raw or ema.")
    if generator == "ema" and not cfg.ema.enabled:
        raise ConfigError("metrics.downstream.generator=ema needs an EMA of G: add ema.enabled=true, or score the "
                          "raw G (metrics.downstream.generator=raw).")


def end_of_run(G, cfg, run_dir: Path, step: int, writer=None, device="cpu", ema=None) -> dict | None:
    """The optional end-of-run metric (`metrics.downstream.enabled`): for the loop's reporter to call once after
    training on the main rank, on raw G or its EMA (`metrics.downstream.generator`). Writes RUN_DIR/downstream.json
    and TensorBoard scalars; returns the result for metrics.json ("downstream"), or None when off. A generator
    without labels is reported, not fatal."""
    from ganrun.metrics.evaluator import load_real_splits

    downstream_cfg = cfg.metrics.get("downstream")
    if not downstream_cfg or not downstream_cfg.get("enabled"):
        return None
    if cfg.dataset.get("shape"):
        log.warning("metrics.downstream: toy 2-D data has no images to classify; skipped.")
        return None
    protocol = protocol_from_config(downstream_cfg)
    generator = downstream_cfg.get("generator", "raw")
    if generator == "ema":
        G = ema.generator()
    try:
        result = evaluate_downstream(G, cfg.model.z_dim, cfg.dataset.num_classes, *load_real_splits(cfg.dataset, cache_dir=cfg.metrics.cache_dir),
                                     protocol, device)
    except ConfigError as exc:
        log.warning("metrics.downstream skipped: %s", exc)
        return None
    result["step"], result["generator"] = step, generator
    result_file(run_dir, protocol).write_text(json.dumps(result, indent=2))
    if writer is not None:
        log_to_tensorboard(writer, result, step)
    log.info("Downstream value (step %d, %s G):\n%s", step, generator, format_table(result))
    return result
