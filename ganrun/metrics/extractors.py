"""Feature extractors for the metrics: standard Inception (torchmetrics / torch-fidelity) or ganrun's classifier.

Each maps generated or real images in [-1, 1] to (float32 features, float64 class probabilities), both left on
the evaluation device where the scores are computed, and describes itself in a `protocol` dict that goes with
every reported number.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
from pathlib import Path

import torch
import torch.nn.functional as F

from ganrun.errors import ConfigError
from ganrun.metrics.classifier import SmallClassifier, to_model_input

log = logging.getLogger(__name__)

INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_FILE = INCEPTION_URL.rsplit("/", 1)[1]
# SHA-256 of that file (95,628,359 bytes; the torch hub name carries its first 8 hex digits). The same bytes are
# pytorch-fid's pt_inception-2015-12-05-6726825d.pth.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, what: str, name: str, url: str, key: str) -> str:
    """The file's SHA-256, after checking it is (or, where only a prefix is published, starts with) `expected`:
    anything else (a tampered or truncated download, a pickle someone pointed `key` at) is refused before it is
    opened, naming the file, the digests and where to get the right one (`name` from `url`)."""
    actual = file_sha256(path)
    if not actual.startswith(expected):
        raise ConfigError(
            f"{what} {path}: SHA-256 {actual} is not the expected {expected} of {name}. "
            f"The file is damaged or not the standard weights; it was not loaded. Delete it and download {url} "
            f"again (or set {key} to the right file)."
        )
    return actual


def verify_inception_weights(path: Path) -> str:
    """torch-fidelity's Inception file, verified by its full SHA-256."""
    return verify_sha256(path, INCEPTION_SHA256, "Inception weights", INCEPTION_FILE, INCEPTION_URL,
                         "metrics.inception_weights")


@contextlib.contextmanager
def weights_only_loads():
    """torch-fidelity reads the weights with torch.load(weights_only=False); force weights_only=True while it
    builds the network, so even a verified file is read as tensors only, never unpickled as objects."""
    original = torch.load

    def load(*args, **kwargs):
        return original(*args, **{**kwargs, "weights_only": True})

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def hub_inception_path() -> Path:
    """Where torch-fidelity (and torchmetrics' KID/IS) look for the weights: the torch hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def download(url: str, destination: Path, timeout: float = 15.0) -> None:
    """torch.hub's downloader with a socket timeout, so an unreachable network fails instead of hanging."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(url, str(destination), progress=False)
    finally:
        socket.setdefaulttimeout(previous)


def find_weights(configured: str | None, key: str, cached: Path, url: str, verify, allow_download: bool,
                 download_key: str) -> tuple[Path | None, str]:
    """A weights file: the one `key` names, else `cached` (the torch hub cache), else a download of `url` into it
    (checked by `verify`; a bad download is deleted and refused), or None and why none could be had."""
    if configured:
        path = Path(configured).expanduser()
        if path.is_file():
            return path, ""
        return None, f"{key}={configured} does not exist"
    if cached.is_file():
        return cached, ""
    if not allow_download:
        return None, f"{cached} is absent and downloads are off ({download_key}=false)"
    try:
        download(url, cached)
        verify(cached)
        return cached, ""
    except ConfigError:
        cached.unlink(missing_ok=True)  # a bad download must not poison the cache for later runs
        raise
    except Exception as exc:  # offline: URLError, timeout, HTTP errors
        return None, f"{cached} is absent and downloading {url} failed ({exc})"


def find_inception_weights(configured: str | None, allow_download: bool) -> tuple[Path | None, str]:
    """The Inception weights file to use, or None and why none could be had."""
    return find_weights(configured, "metrics.inception_weights", hub_inception_path(), INCEPTION_URL,
                        verify_inception_weights, allow_download, "metrics.download")


class InceptionExtractor:
    """pool3 features and class probabilities of torch-fidelity's Inception-v3 (the TF FID network).

    Resizing uses torch-fidelity's TF1-compatible bilinear resize (`antialias=False` in torchmetrics), the
    protocol of the original TensorFlow FID that papers report; images are clamped before the uint8
    conversion so values slightly outside [-1, 1] cannot wrap around.
    """

    name = "inception"

    def __init__(self, weights: Path, device):
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.device = device
        digest = verify_inception_weights(weights)
        with weights_only_loads():
            self.net = NoTrainInceptionV3("inception-v3-compat", ["2048"],
                                          feature_extractor_weights_path=str(weights), antialias=False).to(device)
        self.protocol = {
            "extractor": "inception-v3-compat (torch-fidelity pt_inception-2015-12-05), pool3 2048-d",
            "weights_sha256": digest,
            "resize": "to 299 px, bilinear TF1-compatible (torch-fidelity), no antialias",
        }

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        features = self.net(x.to(self.device))  # torchmetrics returns the first requested feature only
        logits = features @ self.net.fc.weight.T  # torch-fidelity's "logits_unbiased", which its IS uses
        return features.float(), F.softmax(logits.double(), dim=1)


class ClassifierExtractor:
    """Penultimate features and predictions of ganrun's offline classifier (not Inception: tags say so)."""

    name = "offline_classifier"

    def __init__(self, model: SmallClassifier, protocol: dict, device):
        self.model, self.device = model.to(device).eval(), device
        self.protocol = protocol

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.clamp(-1, 1).to(self.device)
        features = self.model.features(x)
        return features.float(), F.softmax(self.model.head(features).double(), dim=1)

    def predict_uint8(self, images_u8: torch.Tensor) -> torch.Tensor:
        return self(to_model_input(images_u8))[1].argmax(1)
