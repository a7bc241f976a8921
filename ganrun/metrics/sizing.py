"""How many samples an evaluation uses when the config does not say: a closed form of the run's length.

FID and KID are estimates whose value depends on the sample counts (FID is biased upward at small N), so the sizes
are a function of the run's length alone, never of the machine or its load: the same command gives the same
protocol everywhere, and numbers of equal size stay comparable. The standard sizes (10,000 generated samples per
evaluation during training, 50,000 for the final report, 50,000 real images; Heusel et al. 2017, Brock et al. 2019,
Karras et al. 2020) hold for real runs; short runs evaluate 5,000 (still more than Inception's 2,048 dimensions,
so the covariance keeps full rank); a smoke run (under 100 steps) 500, against as many real images, with the offline
classifier trained on a subset, so that checking an install costs seconds. Explicit values in the config win.

The functions take the run's length in generator steps; another budget (images seen) converts to steps first.
"""

from __future__ import annotations

SMOKE_SAMPLES = 500  # a smoke run: checks the evaluation path, its numbers are not for comparison
SHORT_SAMPLES = 5000  # above Inception's 2048 feature dimensions
STANDARD_SAMPLES = 10000  # per evaluation during training (FID-10k)
FULL_FINAL_EVAL = 50000  # generated samples of the standard FID protocol (Heusel et al. 2017)
STANDARD_REAL = 50000  # real images in the statistics (all of them when the split is smaller)

SHORT_MIN_STEPS = 100  # shorter runs are smoke runs
STANDARD_MIN_STEPS = 1000  # from here evaluations during training use the standard 10,000
FULL_FINAL_EVAL_MIN_STEPS = 2000  # from here the final report uses the standard 50,000

CLASSIFIER_IMAGES_PER_SAMPLE = 10  # a smoke run's offline classifier: this many training images per generated one


def num_samples(steps: int) -> int:
    """Default of metrics.num_samples (resolver `ganrun_num_samples`): 500 below 100 steps, 5,000 below 1,000,
    else the standard 10,000."""
    steps = int(steps)
    if steps < SHORT_MIN_STEPS:
        return SMOKE_SAMPLES
    return SHORT_SAMPLES if steps < STANDARD_MIN_STEPS else STANDARD_SAMPLES


def final_num_samples(steps: int, num_samples: int) -> int:
    """Default of metrics.final_num_samples (resolver `ganrun_final_num_samples`): the 50k-sample evaluation only
    for runs of at least FULL_FINAL_EVAL_MIN_STEPS steps; a 200-step sweep job would spend longer on it than on
    training, so short runs end with an evaluation like the ones during training (metrics.num_samples)."""
    return FULL_FINAL_EVAL if int(steps) >= FULL_FINAL_EVAL_MIN_STEPS else int(num_samples)


def largest_evaluation(every: int, num_samples: int, final_num_samples: int) -> int:
    """Generated samples of the run's largest evaluation (0 when it evaluates nothing)."""
    return max(int(num_samples) if int(every) > 0 else 0, int(final_num_samples))


def num_real(every: int, num_samples: int, final_num_samples: int) -> int:
    """Default of metrics.num_real (resolver `ganrun_num_real`): the standard 50,000 real images (one cache file
    shared by every run on the dataset) unless the run's evaluations are smoke-sized; those compare with as many
    real images as generated ones, so that a smoke run does not compute 50,000 real features first."""
    largest = largest_evaluation(every, num_samples, final_num_samples)
    return largest if 0 < largest < SHORT_SAMPLES else STANDARD_REAL


def classifier_images(largest: int) -> int | None:
    """Training images of the offline classifier for a run whose largest evaluation has `largest` samples: all
    (None) for evaluations of 5,000 or more, the classifier cached once per dataset; a smoke-sized evaluation trains
    one on a seeded subset of 10 images per generated sample (cached apart, named in the protocol). A run that
    evaluates nothing (0: its evaluator is built for something else, a benchmark or ganrun-eval) gets the full one."""
    return None if largest <= 0 or largest >= SHORT_SAMPLES else max(CLASSIFIER_IMAGES_PER_SAMPLE * int(largest), 2)


def describe(steps: int, metrics) -> str:
    """One line for the run log: the sizes `metrics` (the config's section) chose for a run of `steps`, and that
    numbers of other sizes do not compare."""
    every, final = metrics.every, metrics.final_num_samples
    during = f"{metrics.num_samples} generated samples every {every} steps" if 0 < every <= steps else \
        "none during training"
    return (f"Evaluation sizes: {during}, {f'{final} for the final report' if final > 0 else 'no final report'}, "
            f"against up to {metrics.num_real} real images (FID and KID depend on the sample counts: compare only "
            "numbers of equal size; set metrics.num_samples, metrics.final_num_samples, metrics.num_real to choose).")
