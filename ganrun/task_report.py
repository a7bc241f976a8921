"""What a paired task's run reports (ganrun.reporter calls it instead of the noise grid and noise metrics).

The fixed evaluation set: the first `task.eval_samples` images of the dataset's test split (its training images
for a folder, which has none), degraded once on the CPU with a generator seeded by the run's seed, so every
evaluation of a run (and of its resumed continuation) scores the same pairs, whatever the device, and the training
RNG is never touched. On it: the input | output | target grid and PSNR and SSIM (torchmetrics, images in [0, 1],
per-image PSNR averaged; SSIM with its 11 x 11 Gaussian window, sigma 1.5), computed on the device, and the same
scores of the input itself (the baseline the output must beat: bicubic upsampling, the noisy image, the holes
filled with `fill`). FID and KID come from the run's evaluator: the outputs of G on the test split's inputs
against the real statistics (the targets' distribution); IS, precision/recall and class coverage measure the
variety of noise-to-image samples and are not reported for a paired task.
"""

from __future__ import annotations

import torch
import torchvision
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from ganrun.data import build_source, decode_all

EVAL_SEED_OFFSET = 4242  # the evaluation set's degradations: seed + this, on the CPU
PAIRED_METRICS = ("FID", "KID", "KID_std")  # the evaluator's scores that compare outputs with the targets' data
TRIPLETS_PER_ROW = 4


def eval_images(dataset_cfg, source, num_workers: int = 0) -> torch.Tensor:
    """uint8 (N, C, H, W) of the evaluation split: the test split where the source has one, else `source`."""
    if "train" in (dataset_cfg.get("source") or {}):
        source = build_source(dataset_cfg, train=False)
    images, _ = decode_all(source, dataset_cfg.resolution, dataset_cfg.channels, num_workers)
    return images


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1)


def scores(output: torch.Tensor, target: torch.Tensor) -> dict:
    """PSNR (dB, per image then averaged) and SSIM of images in [-1, 1], as their [0, 1] versions."""
    output, target = to_unit(output), to_unit(target)
    psnr = peak_signal_noise_ratio(output, target, data_range=1.0, reduction="elementwise_mean", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(output, target, data_range=1.0)
    return {"PSNR": psnr, "SSIM": ssim}


@torch.no_grad()
def generate_outputs(G, inputs: torch.Tensor, batch_size: int, device, autocast=None) -> torch.Tensor:
    """G (in eval mode, restored after) on `inputs` in batches of `batch_size`, as float32."""
    was_training = G.training
    G.eval()
    try:
        parts = []
        for start in range(0, len(inputs), batch_size):
            with autocast if autocast is not None else torch.autocast(torch.device(device).type, enabled=False):
                parts.append(G(inputs[start:start + batch_size]).float())
        return torch.cat(parts)
    finally:
        G.train(was_training)


def triplet_grid(columns: list[torch.Tensor]) -> torch.Tensor:
    """A grid of image triplets (one image of each of the three `columns` side by side), TRIPLETS_PER_ROW per row."""
    count = len(columns[0])
    triplets = torch.stack(columns, 1).flatten(0, 1)
    per_row = min(TRIPLETS_PER_ROW, count)
    return torchvision.utils.make_grid(triplets.float(), nrow=3 * per_row, normalize=True, value_range=(-1, 1))


class EvalPairs:
    grid_tag = "samples/input_output_target"

    def __init__(self, task, dataset_cfg, source, device, seed: int, batch_size: int, num_workers: int = 0):
        self.task, self.device, self.batch_size = task, torch.device(device), batch_size
        self.seed = seed
        self.pool = eval_images(dataset_cfg, source, num_workers)  # uint8 on the CPU: the FID inputs
        targets = self.pool[: task.eval_samples].float().div(127.5).sub(1.0)
        generator = torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET)
        self.inputs = task.degradation(targets, generator).to(self.device)
        self.targets = targets.to(self.device)
        self.channels = targets.shape[1]
        self.baseline = {f"{k}_input": float(v) for k, v in scores(self.inputs[:, :self.channels],
                                                                   self.targets).items()}

    def outputs(self, G, inputs: torch.Tensor, autocast=None) -> torch.Tensor:
        return generate_outputs(G, inputs, self.batch_size, self.device, autocast)

    def grid(self, G, count: int, autocast=None) -> torch.Tensor:
        """input | output | target triplets of the first `count` evaluation pairs, TRIPLETS_PER_ROW per row."""
        count = min(count, len(self.targets))
        inputs = self.inputs[:count]
        return triplet_grid([inputs[:, :self.channels], self.outputs(G, inputs, autocast), self.targets[:count]])

    def evaluate(self, evaluator, G, num_samples: int) -> dict:
        """PSNR and SSIM on the evaluation set (with the input's own as `*_input`), FID and KID of G's outputs on
        `num_samples` test inputs against the real statistics."""
        values = {k: float(v) for k, v in scores(self.outputs(G, self.inputs), self.targets).items()}
        values.update(self.baseline)
        result = {"extractor": "pairs", "metrics": {}, "protocol": {}}
        if evaluator is not None:
            generator = torch.Generator().manual_seed(self.seed + EVAL_SEED_OFFSET + 1)
            position = [0]

            def generate(batch_size: int) -> torch.Tensor:
                index = torch.arange(position[0], position[0] + batch_size) % len(self.pool)
                position[0] += batch_size
                inputs = self.task.degradation(self.pool[index].float().div(127.5).sub(1.0), generator)
                return self.outputs(G, inputs.to(self.device))

            result = evaluator.evaluate(generate, num_samples)
            result["metrics"] = {k: v for k, v in result["metrics"].items() if k in PAIRED_METRICS}
        result["metrics"].update(values)
        result["protocol"] = {**result["protocol"], "pairs": (
            f"PSNR/SSIM: {len(self.targets)} fixed test pairs (seed {self.seed} + {EVAL_SEED_OFFSET}), images in "
            "[0, 1], PSNR per image then averaged, SSIM 11x11 Gaussian window sigma 1.5; *_input: the input's own "
            f"scores; FID/KID: outputs on {num_samples} test inputs vs the real statistics")}
        return result
