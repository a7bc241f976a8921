"""Style transfer as a task of the runner (`task=style`): a content dataset (any dataset ganrun reads) and a folder
of images of one style (`task.style.root`).

One network per style, as Johnson et al. (2016): G(content) -> output, trained with their losses on a fixed
network's features (ganrun.perceptual) plus an adversarial term. The GAN formulation of the material this project
grew from writes O = G(C, S); with one style per run, S is a constant of the run (the folder), so G takes C only:
arbitrary-style networks that take S as an input (AdaIN, Huang & Belongie 2017) learn to transfer styles they have
not seen, which a folder of one style cannot teach. D tells outputs from real images of the style (it sees no
pairs: `paired: false`), so the adversarial term pushes outputs towards the style's image statistics beyond its
Gram matrices.

G's loss (ganrun.objective.PairedObjective adds the adversarial term):
  content_weight * L_content(phi(O), phi(C)) + style_weight * L_style(phi(O), phi(S)) + tv_weight * TV(O),
with S a style image drawn for each output (the Gram target of that output; a one-image folder is Johnson's
setting). The stream yields (style batch, content batch), drawn on the device from the run's global RNG (in
checkpoints), so resume stays exact.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ganrun.data.sources import image_folder
from ganrun.data.decoded import decode_folder
from ganrun.errors import ConfigError
from ganrun.perceptual import content_loss, style_loss, total_variation
from ganrun.task_report import eval_images, generate_outputs, triplet_grid
from ganrun.tasks import check_image_to_image

log = logging.getLogger(__name__)

ROOT_KEY = "task.style.root"


def refuse_links(root: str, files, key: str = ROOT_KEY) -> None:
    """Style images are read from real files inside the folder: a symbolic link (the folder itself, a sub-folder,
    an image) could point anywhere and is refused, naming it."""
    root_path = Path(os.path.abspath(os.path.expanduser(root)))  # as image_folder names the files
    if root_path.is_symlink():
        raise ConfigError(f"{key}={root} is a symbolic link: name the folder itself.")
    for file in files:
        part = Path(file)
        while root_path in part.parents:
            if part.is_symlink():
                raise ConfigError(f"{key}={root}: {part} is a symbolic link (style images are read from real "
                                  "files inside the folder, never through links).")
            part = part.parent


def load_style_images(root: str | None, resolution: int, channels: int) -> torch.Tensor:
    """The folder's images as uint8 (N, channels, resolution, resolution), resized and centre-cropped as the
    dataset's images (ganrun.data), decoded once: a style folder holds a few images."""
    if not root:
        raise ConfigError(f"task=style needs a folder of style images: {ROOT_KEY}=DIR.")
    dataset = image_folder(str(root), key=ROOT_KEY)
    refuse_links(str(root), [s[0] if isinstance(s, tuple) else s for s in dataset.samples])
    settings = OmegaConf.create({"resolution": resolution, "channels": channels, "resize": "resize", "in_memory": True})
    images = decode_folder(dataset, settings).images  # unreadable files refused by name, as a dataset folder's
    log.info("Style images: %d from %s", len(images), root)
    return images


class StyleStream:
    """The content stream as (style, content) batches: each content batch with as many style images drawn
    uniformly (with replacement) on its device from the global RNG. D sees the style images as its real data."""

    def __init__(self, stream, styles: torch.Tensor):
        self.stream, self.styles = stream, styles

    def __iter__(self):
        return self

    def __next__(self):
        content, _ = next(self.stream)
        if self.styles.device != content.device:
            self.styles = self.styles.to(content.device)
        index = torch.randint(len(self.styles), (content.shape[0],), device=content.device)
        return self.styles[index].float().div(127.5).sub(1.0), content

    def state_dict(self) -> dict:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state)


class StyleTask:
    """`task=style`: see the module docstring. `features` builds the feature network (a partial of
    ganrun.perceptual.FeatureNetwork) for the union of the content and style layers."""

    paired = False  # D sees style images, not (input, output) pairs
    uses_evaluator = False  # its metrics are its own (StyleEval): no Inception/classifier statistics are built

    def __init__(self, style: dict, features, content_layers, style_layers, content_weight: float = 1.0,
                 style_weight: float = 5.0, tv_weight: float = 1e-6, adversarial_weight: float = 1.0,
                 name: str = "style", paired: bool = False, extra_channels: int = 0, eval_samples: int = 16):
        if paired:
            raise ConfigError("task.paired=true: task=style's D sees style images, not (content, output) pairs.")
        self.name, self.extra_channels, self.eval_samples = name, int(extra_channels), int(eval_samples)
        self.content_layers, self.style_layers = list(content_layers), list(style_layers)
        self.content_weight, self.style_weight = float(content_weight), float(style_weight)
        self.tv_weight, self.adversarial_weight = float(tv_weight), float(adversarial_weight)
        self.styles = load_style_images(style.get("root"), style.get("resolution"), style.get("channels"))
        self.features = features(layers=list(dict.fromkeys(self.content_layers + self.style_layers)))

    def pairs(self, stream) -> StyleStream:
        return StyleStream(stream, self.styles)

    def objective(self, *args, **kwargs):
        """PairedObjective with this task's terms: D, unpaired, ignores the content image it gets as condition."""
        from ganrun.objective import PairedObjective

        return PairedObjective(*args, task=self, **kwargs)

    def evaluation(self, *args, **kwargs) -> StyleEval:
        return StyleEval(self, *args, **kwargs)

    def check_shapes(self, G, D, info, z_dim: int, device) -> None:
        check_image_to_image(self.name, G, D, info, device, lambda content: content)

    def losses(self, output: torch.Tensor, style: torch.Tensor, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted content, style (Gram) and TV losses of `output` (what the task's metrics report)."""
        self.features.to(output.device)
        out = self.features(output)
        with torch.no_grad():
            content_features, style_features = self.features(content), self.features(style)
        return {
            "content": sum(content_loss(out[name], content_features[name]) for name in self.content_layers),
            "style": style_loss(out, style_features, self.style_layers),
            "tv": total_variation(output.float()),
        }

    def generator_terms(self, output: torch.Tensor, target: torch.Tensor, condition: torch.Tensor):
        """{name: (weight, loss)} of G's non-adversarial terms: `target` is the style batch, `condition` the
        content batch (the stream's (real, condition) order)."""
        losses = self.losses(output, target, condition)
        weights = {"content": self.content_weight, "style": self.style_weight, "tv": self.tv_weight}
        return {name: (weights[name], value) for name, value in losses.items()}


class StyleEval:
    """The fixed evaluation set of task=style, with EvalPairs' interface (ganrun.task_report; the reporter calls
    it): the first `eval_samples` content images of the test split, content image i paired with style image
    i mod (number of style images). It scores G's outputs by the unweighted content loss to their content and the
    Gram (style) distance to their style image, next to the content images' own Gram distance
    (`style_distance_input`: where an unstylised output would stand), and draws the content | style | output grid.
    No FID: the real statistics are the content dataset's, which stylised outputs should move away from."""

    grid_tag = "samples/content_style_output"

    def __init__(self, task, dataset_cfg, source, device, seed: int, batch_size: int, num_workers: int = 0):
        self.task, self.device, self.batch_size = task, torch.device(device), batch_size
        content = eval_images(dataset_cfg, source, num_workers)[: task.eval_samples]
        self.content = content.float().div(127.5).sub(1.0).to(self.device)
        index = torch.arange(len(content)) % len(task.styles)
        self.styles = task.styles[index].float().div(127.5).sub(1.0).to(self.device)
        self.baseline = {"style_distance_input": float(self.scores(self.content)["style_distance"])}

    def outputs(self, G, autocast=None) -> torch.Tensor:
        return generate_outputs(G, self.content, self.batch_size, self.device, autocast)

    @torch.no_grad()
    def scores(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        losses = self.task.losses(output, self.styles, self.content)
        return {"style_distance": losses["style"], "content_loss": losses["content"]}

    def grid(self, G, count: int, autocast=None) -> torch.Tensor:
        """content | style | output triplets of the first `count` evaluation images."""
        count = min(count, len(self.content))
        output = self.outputs(G, autocast)[:count]
        return triplet_grid([self.content[:count], self.styles[:count], output])

    def evaluate(self, evaluator, G, num_samples: int) -> dict:
        values = {k: float(v) for k, v in self.scores(self.outputs(G)).items()}
        protocol = {"n_generated": len(self.content), "style": (
            f"{len(self.content)} fixed test content images, content image i with style image i mod "
            f"{len(self.task.styles)}; style_distance: the Gram distance (sum over "
            f"{', '.join(self.task.style_layers)}) to it; content_loss: at {', '.join(self.task.content_layers)}; *_input: the content image's own"),
            "features": self.task.features.protocol}
        return {"extractor": "style", "metrics": {**values, **self.baseline}, "protocol": protocol}

