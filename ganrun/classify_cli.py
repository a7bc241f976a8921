"""`ganrun-classify`: does a generator's data help a classifier? Accuracy on the real test split of a fixed small
CNN trained on real data, real + generated data, and generated data only (CAS, Ravuri & Vinyals 2019).

    ganrun-classify RUN_DIR                          # all real training images, 3 repeats
    ganrun-classify RUN_DIR --real-per-class 10 --ratio 10   # low data: 10 real images per class + 100 generated each
    ganrun-classify RUN_DIR --label-by-classifier    # unconditional G: labels from a classifier trained on real data

The table is printed and written to RUN_DIR/downstream.json (downstream_real<N>.json with --real-per-class);
the mean accuracies go to the run's TensorBoard at the checkpoint's step (downstream/*). The protocol is in
ganrun/downstream.py and docs/reference.md (Downstream value).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from torch.utils.tensorboard import SummaryWriter

from ganrun.downstream import Protocol, evaluate_downstream, format_table, log_to_tensorboard, result_file
from ganrun.errors import ConfigError
from ganrun.outputs import load_generator, output_file, run_dir_of
from ganrun.runtime import select_device


def parse_args(argv=None):
    defaults = Protocol()
    parser = argparse.ArgumentParser(prog="ganrun-classify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a run dir (its newest loadable checkpoint) or a checkpoint file")
    parser.add_argument("--real-per-class", type=int, default=None, metavar="N",
                        help="low-data mode: keep N real training images per class (default: all)")
    parser.add_argument("--ratio", type=float, default=defaults.ratio,
                        help="generated images per real one in real+generated (default %(default)s)")
    parser.add_argument("--num-generated", type=int, default=None,
                        help="training set size of generated-only (default: the full real training split)")
    parser.add_argument("--repeats", type=int, default=defaults.repeats)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="classifier optimizer steps per training")
    parser.add_argument("--label-by-classifier", action="store_true",
                        help="unconditional G: label its samples with the fixed classifier trained on all real data")
    parser.add_argument("--ema", action="store_true", help="use the EMA generator (runs with ema.enabled)")
    parser.add_argument("--data-root", default=None, help="where the dataset is, if it moved since training")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="JSON file (default: RUN_DIR/downstream.json)")
    parser.add_argument("--no-tensorboard", action="store_true", help="do not write to the run's TensorBoard")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    args = parse_args(argv)
    protocol = Protocol(steps=args.steps, real_per_class=args.real_per_class, ratio=args.ratio,
                        num_generated=args.num_generated, repeats=args.repeats, seed=args.seed,
                        label_by_classifier=args.label_by_classifier)
    from ganrun.metrics.evaluator import load_real_splits

    try:
        protocol.check()
        device = select_device(args.device, "--device ")
        G, cfg, state, found = load_generator(args.checkpoint, device, args.ema)
        if cfg.dataset.get("shape"):
            raise ConfigError(f"{found} was trained on toy 2-D data ({cfg.dataset.name}): no images to classify.")
        if args.data_root and "root" in cfg.dataset.source:
            cfg.dataset.source.root = args.data_root
        num_classes = cfg.dataset.get("num_classes")
        if not num_classes or num_classes < 2:
            raise ConfigError(f"dataset {cfg.dataset.name} has no class labels (num_classes={num_classes}): "
                              "a classifier needs a labelled dataset.")
        run_dir = run_dir_of(found)
        out = output_file(args.out or result_file(run_dir, protocol), "--out" if args.out else "the result file")
        result = evaluate_downstream(G, cfg.model.z_dim, num_classes, *load_real_splits(cfg.dataset), protocol,
                                     device)
    except ConfigError as exc:
        print(f"ganrun-classify: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    result = {"checkpoint": str(found), "step": state["step"], "generator": "ema" if args.ema else "raw", **result}
    out.write_text(json.dumps(result, indent=2))
    if not args.no_tensorboard:
        with SummaryWriter(log_dir=str(run_dir)) as writer:
            log_to_tensorboard(writer, result, state["step"])
    print(format_table(result))
    logging.getLogger("ganrun").info("Written to %s", out)


if __name__ == "__main__":
    main()
