"""Losses on the features of a fixed network: perceptual content, Gram style and total variation.

Content (Johnson et al. 2016, eq. 2): 1/(C_j H_j W_j) ||phi_j(O) - phi_j(C)||^2 at a layer j; SRGAN (Ledig et al. 2017)
uses it on VGG19's relu5_4 ("VGG54"). Style (Gatys et al. 2016; Johnson et al. eq. 3-4): the Gram matrix
G_j = phi_j phi_j^T / (C_j H_j W_j) of each layer, squared Frobenius distance, summed over layers. Both are averaged
over the batch. Total variation: Johnson et al. regularise their outputs with it (Mahendran & Vedaldi's TV with
beta = 2: the squared differences of neighbouring pixels).

The features are those of torchvision's VGG16/VGG19 with ImageNet weights, frozen, on the inputs' device, after
ImageNet normalisation. The weights come from a local file (verified by the SHA-256 torchvision publishes in the
file name, as torch.hub's check_hash does), the torch hub cache, or torchvision's URL (a 15 s timeout). Offline, the
run never hangs or crashes unless asked to (`offline=error`): it says in one line what is missing and uses a VGG of
the same layers with fixed random weights (`offline=random`), recorded in `protocol` as not comparable with papers.
Random convolutional features still carry texture statistics (He, Wang & Hopcroft 2016; Ustyuzhaninov et al. 2017
synthesise textures from the Gram matrices of random networks); ganrun's offline classifier is not the fallback
because it needs class labels (a style folder has none) and has other layers, so a config would not carry over.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import vgg as tv_vgg

from ganrun.errors import ConfigError
from ganrun.metrics.extractors import find_weights, verify_sha256

log = logging.getLogger(__name__)

NETWORKS = {"vgg16": ("D", "VGG16_Weights.IMAGENET1K_V1"), "vgg19": ("E", "VGG19_Weights.IMAGENET1K_V1")}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RANDOM_SEED = 0  # the fixed random VGG of the offline fallback


def layer_indices(network: str) -> dict[str, int]:
    """Name -> index in torchvision's `vgg.features` of every ReLU output, named as the papers do: relu{block}_{conv}
    (VGG16's relu2_2 is features[8], VGG19's relu5_4 is features[35])."""
    names, block, conv, index = {}, 1, 0, 0
    for item in tv_vgg.cfgs[NETWORKS[network][0]]:
        if item == "M":
            block, conv, index = block + 1, 0, index + 1
        else:
            conv += 1
            names[f"relu{block}_{conv}"] = index + 1
            index += 2
    return names


def make_prefix(network: str, last: int) -> nn.Sequential:
    """torchvision's `vgg.features` up to index `last` (the deepest layer read), built without the layers after it
    (VGG19's full features are 20M parameters to initialise for nothing)."""
    cfg, size = [], 0
    for item in tv_vgg.cfgs[NETWORKS[network][0]]:
        if size > last:
            break
        cfg.append(item)
        size += 1 if item == "M" else 2
    return tv_vgg.make_layers(cfg)[: last + 1]


def weights_info(network: str) -> tuple[str, str, str]:
    """torchvision's URL of the ImageNet weights, its file name and the SHA-256 prefix that name carries."""
    url = torchvision.models.get_weight(NETWORKS[network][1]).url
    name = url.rsplit("/", 1)[1]
    prefix = torch.hub.HASH_REGEX.search(name).group(1)
    assert len(prefix) >= 8, name  # an empty prefix would accept any file
    return url, name, prefix


def hub_path(network: str) -> Path:
    """Where torchvision's own download (and so `vgg16(weights=...)`) keeps the file: the torch hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights_info(network)[1]


def verify_vgg_weights(path: Path, network: str, key: str) -> str:
    url, name, prefix = weights_info(network)
    return verify_sha256(path, prefix, f"{network.upper()} weights", name, url, key)


def load_features(path: Path, network: str, layers: nn.Sequential, key: str) -> str:
    """Load `layers` (a prefix of vgg.features) from a verified torchvision file, read as tensors only (mmap: the
    classifier's 100M parameters are not read). Returns the file's SHA-256."""
    digest = verify_vgg_weights(path, network, key)
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    wanted = {name: f"features.{name}" for name in layers.state_dict()}
    missing = [saved for saved in wanted.values() if saved not in state]
    if missing:
        raise ConfigError(f"{network.upper()} weights {path}: it lacks {', '.join(missing[:3])}: not torchvision's "
                          f"{network} file (set {key} to it).")
    try:
        layers.load_state_dict({name: state[saved] for name, saved in wanted.items()})
    except RuntimeError as exc:
        raise ConfigError(f"{network.upper()} weights {path}: it does not fit {network} ({exc}).") from exc
    return digest


def random_init(layers: nn.Module, seed: int = RANDOM_SEED) -> None:
    """torchvision's VGG initialisation (He et al. normal, fan-out; zero biases) under a fixed seed, so the offline
    features are the same in every run and on resume."""
    generator = torch.Generator().manual_seed(seed)
    for layer in layers.modules():
        if isinstance(layer, nn.Conv2d):
            std = (2.0 / (layer.out_channels * layer.kernel_size[0] * layer.kernel_size[1])) ** 0.5
            with torch.no_grad():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
                layer.bias.zero_()


class FeatureNetwork(nn.Module):
    """Frozen VGG features at named layers of images in [-1, 1] (grey images repeated to 3 channels).

    `weights`: a local torchvision file (null: the torch hub cache, else a download when `download`);
    `offline`: what to do without the file: `random` (a fixed random VGG, said in the log and in `protocol`) or
    `error`. `key` is the config path of these settings, for the messages. The network is not trained and not saved
    in checkpoints (its weights are the file's, or the fixed seed's): `state_dict` is empty.
    """

    def __init__(self, network: str = "vgg16", layers=("relu2_2",), weights: str | None = None,
                 download: bool = True, offline: str = "random", key: str = "task.features"):
        super().__init__()
        if network not in NETWORKS:
            raise ConfigError(f"{key}.network={network!r} is not one of {', '.join(NETWORKS)}.")
        indices = layer_indices(network)
        unknown = [name for name in layers if name not in indices]
        if unknown or not layers:
            raise ConfigError(f"{key}: layers {unknown or '[]'} are not layers of {network} "
                              f"(choose from {', '.join(indices)}).")
        self.layers = {name: indices[name] for name in layers}
        self.net = make_prefix(network, max(self.layers.values()))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.protocol = self._weights(network, weights, download, offline, key)
        self.protocol.update(layers=", ".join(layers), input="[-1, 1] -> [0, 1] -> ImageNet mean/std; grey x3")
        self.requires_grad_(False)
        self.eval()

    def _weights(self, network, weights, download, offline, key) -> dict:
        url, name, prefix = weights_info(network)
        verify = lambda path: verify_vgg_weights(path, network, f"{key}.weights")  # noqa: E731
        path, why = find_weights(weights, f"{key}.weights", hub_path(network), url, verify, download,
                                 f"{key}.download")
        if path is not None:
            digest = load_features(path, network, self.net, f"{key}.weights")
            log.info("Perceptual features: %s ImageNet weights %s", network, path)
            return {"network": f"{network} (torchvision {NETWORKS[network][1]})", "weights_sha256": digest}
        fix = (f"download {url} and pass {key}.weights=/path/to/{name}, or put it at {hub_path(network)}")
        if offline == "error":
            raise ConfigError(f"{network} ImageNet weights are unavailable: {why}. To train, {fix}.")
        log.warning("%s ImageNet weights are unavailable: %s. Perceptual losses use a %s with fixed random weights "
                    "(seed %d) instead: not comparable with papers. For the standard features, %s.",
                    network, why, network, RANDOM_SEED, fix)
        random_init(self.net)
        return {"network": f"{network} with random weights (seed {RANDOM_SEED}; offline fallback: {why})",
                "comparable_with_papers": False}

    def train(self, mode: bool = True):
        return super().train(False)  # fixed: never in training mode

    def state_dict(self, *args, **kwargs):
        return {}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return None

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (images.expand(-1, 3, -1, -1) + 1) / 2 if images.shape[1] == 1 else (images + 1) / 2
        x = (x - self.mean) / self.std
        wanted, out = {index: name for name, index in self.layers.items()}, {}
        for index, layer in enumerate(self.net):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
        return out


def content_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Johnson et al.'s feature reconstruction loss 1/(C H W) ||phi(O) - phi(C)||^2, averaged over the batch."""
    return F.mse_loss(output.float(), target.float())


def perceptual_content(features: FeatureNetwork, output: torch.Tensor, target: torch.Tensor, layers) -> torch.Tensor:
    """The content loss summed over `layers` (SRGAN's VGG loss at relu5_4): target features without gradient."""
    features.to(output.device)
    out = features(output)
    with torch.no_grad():
        wanted = features(target)
    return sum(content_loss(out[name], wanted[name]) for name in layers)


def gram(features: torch.Tensor) -> torch.Tensor:
    """G = phi phi^T / (C H W): (N, C, H, W) -> (N, C, C)."""
    n, c, h, w = features.shape
    flat = features.float().reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def style_loss(output: dict[str, torch.Tensor], target: dict[str, torch.Tensor], layers) -> torch.Tensor:
    """Sum over `layers` of ||G(phi_j(O)) - G(phi_j(S))||_F^2, averaged over the batch."""
    return sum((gram(output[name]) - gram(target[name])).square().sum(dim=(1, 2)).mean() for name in layers)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences of vertically and horizontally neighbouring pixels, averaged over the batch."""
    dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).square().sum(dim=(1, 2, 3))
    dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).square().sum(dim=(1, 2, 3))
    return (dx + dy).mean()
