"""Cost and test accuracy of the offline feature classifier's training on the full Fashion-MNIST.

    python benchmarks/classifier_training.py                     # ganrun's defaults
    python benchmarks/classifier_training.py --epochs 3 --schedule constant --batch-size 128 --lr 1e-3   # former

Uses Fashion-MNIST (apt-get install dataset-fashion-mnist, or ./data). Prints wall and CPU time and test accuracy
(CPU time is the fairer figure on a shared machine).
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
import time

import torch

from ganrun.data import decode_all
from ganrun.data.sources import fashion_mnist
from ganrun.metrics.classifier import train_classifier


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--schedule", default=None, help="constant | onecycle")
    parser.add_argument("--root", default=None, help="dataset root (default: a temporary copy)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = args.root or tempfile.mkdtemp(prefix="ganrun-fmnist-")
    train, test = (decode_all(fashion_mnist(root, train=t, download=False), 28, 1, 0) for t in (True, False))
    options = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("lr", args.lr),
                                 ("schedule", args.schedule)) if v is not None}
    accepted = inspect.signature(train_classifier).parameters
    options = {k: v for k, v in options.items() if k in accepted}
    start, cpu_start = time.perf_counter(), time.process_time()
    _, accuracy = train_classifier(*train, *test, 10, torch.device("cpu"), **options)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"options {options or 'defaults'}: {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU, "
          f"test accuracy {accuracy:.4f} ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
