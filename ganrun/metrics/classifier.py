"""The offline feature extractor: a small CNN ganrun trains on the labelled training set.

Where the Inception weights cannot be had (offline machines, CPU runs where Inception is too slow), FID/KID
on this network's penultimate features still rank models of the same dataset, and its class predictions
measure class coverage. Its numbers are not comparable with papers' Inception FID, and are labelled so.
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger(__name__)

FEATURE_DIM = 128


class SmallClassifier(nn.Module):
    def __init__(self, channels: int, num_classes: int):
        super().__init__()

        def block(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(True)]

        self.features = nn.Sequential(
            *block(channels, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, FEATURE_DIM),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def to_model_input(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.float().div(127.5).sub(1.0)


def train_classifier(images, labels, test_images, test_labels, num_classes, device, epochs=3, batch_size=128,
                     seed=0) -> tuple[SmallClassifier, float]:
    """Train on uint8 images (N, C, H, W) with integer labels; returns the model and its test accuracy."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallClassifier(images.shape[1], num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), batch_size):
            idx = order[start : start + batch_size]
            x, y = to_model_input(images[idx]).to(device), labels[idx].to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        log.info("Offline classifier: epoch %d/%d, loss %.3f", epoch + 1, epochs, loss.item())
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(test_images), 512):
            x = to_model_input(test_images[start : start + 512]).to(device)
            correct += (model(x).argmax(1).cpu() == test_labels[start : start + 512]).sum().item()
    return model, correct / max(len(test_images), 1)
