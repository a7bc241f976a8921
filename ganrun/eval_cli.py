"""`ganrun-eval`: all metrics for a saved checkpoint, with the protocol, as JSON.

    ganrun-eval outputs/2026-11-22/10-00-00 --num-samples 50000
    ganrun-eval run/checkpoints/best.pt --extractor inception --inception-weights ~/weights-inception-2015-12-05-6726825d.pth
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ganrun.errors import ConfigError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="ganrun-eval", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint file, or a run dir (its newest loadable checkpoint)")
    parser.add_argument("--num-samples", type=int, default=50000,
                        help="generated images to score (default: %(default)s, the standard FID protocol; FID "
                             "rises with fewer, so compare like with like)")
    parser.add_argument("--extractor", choices=["auto", "inception", "classifier"], default=None)
    parser.add_argument("--inception-weights", default=None, help="local weights-inception-2015-12-05-6726825d.pth")
    parser.add_argument("--no-download", action="store_true", help="never try to download the Inception weights")
    parser.add_argument("--real-split", choices=["train", "test"], default=None)
    parser.add_argument("--data-root", default=None, help="where the dataset is, if it moved since training")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ema", action="store_true", help="evaluate the EMA generator (runs with ema.enabled)")
    parser.add_argument("--out", default=None, help="JSON file (default: RUN_DIR/eval_step_<step>.json)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    args = parse_args(argv)
    if args.num_samples < 2:  # FID needs a covariance
        print(f"ganrun-eval: error: --num-samples {args.num_samples} must be at least 2.", file=sys.stderr)
        raise SystemExit(2)
    from omegaconf import OmegaConf  # torch and the rest only after argparse has handled --help
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ganrun.metrics.report import evaluate_generator, make_evaluator
    from ganrun.metrics.sizing import num_real
    from ganrun.outputs import load_generator, output_file, run_dir_of
    from ganrun.runtime import select_device

    with logging_redirect_tqdm():  # log lines above the progress bars of the evaluation phases
        try:
            device = select_device(args.device, "--device ")
            G, cfg, state, found = load_generator(args.checkpoint, device, args.ema)
            default = run_dir_of(found) / f"eval_step_{state['step']:08d}.json"  # beside the run, not its parent
            out = output_file(args.out or default, "--out" if args.out else "the result file")  # before the work
            metrics = cfg.metrics
            for key, value in (("extractor", args.extractor), ("inception_weights", args.inception_weights),
                               ("real_split", args.real_split), ("cache_dir", args.cache_dir)):
                if value is not None:
                    metrics[key] = value
            if args.no_download:
                metrics.download = False
            if args.data_root and "root" in cfg.dataset.source:
                cfg.dataset.source.root = args.data_root
            # sized for this evaluation, not the run's (a smoke run's 500 real images, or its classifier subset)
            metrics.num_real = max(metrics.num_real, num_real(0, 0, args.num_samples))
            evaluator = make_evaluator(metrics, cfg.dataset, device, largest=args.num_samples)
            if evaluator is None:
                raise SystemExit(1)
            result = evaluate_generator(evaluator, G, cfg.model.z_dim, args.num_samples, args.seed)
        except ConfigError as exc:
            print(f"ganrun-eval: error: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
    result = {"checkpoint": str(found), "step": state["step"], "generator": "ema" if args.ema else "raw", **result}
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    logging.getLogger("ganrun").info("Written to %s (config: %s)", out, OmegaConf.select(cfg, "model.name"))


if __name__ == "__main__":
    main()
