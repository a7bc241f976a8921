"""Losses that fail on purpose, selected from the command line with loss._target_=faulty_losses.NaNAfter."""

import torch

from ganrun.losses import NonSaturating


class NaNAfter(NonSaturating):
    """Non-saturating loss whose D loss becomes NaN from its `calls`-th call on."""

    def __init__(self, calls: int = 5, **settings):
        super().__init__(**settings)
        self.calls, self.seen = calls, 0

    def d_loss(self, real, fake):
        self.seen += 1
        loss = super().d_loss(real, fake)
        return loss * torch.nan if self.seen >= self.calls else loss
