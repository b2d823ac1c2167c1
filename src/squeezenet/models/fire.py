"""The Fire module (paper section 3.2) with optional bypass (section 6 / Table 3)."""
from __future__ import annotations

import torch
from torch import nn


class Fire(nn.Module):
    """squeeze 1x1 (+ReLU) -> [expand 1x1 (+ReLU) | expand 3x3 pad 1 (+ReLU)] -> concat.

    Attribute names follow torchvision (``squeeze``, ``expand1x1``, ``expand3x3``), so the
    state_dict keys match every published checkpoint.

    ``bypass``: ``"none"``; ``"identity"`` adds the input to the output (simple bypass,
    needs equal channel counts); ``"conv"`` adds a 1x1 convolution of the input (complex
    bypass, stored as ``shortcut``). The sum is taken after the expand ReLUs, as in the
    released SqueezeNet-Residual prototxt.

    >>> f = Fire(96, 16, 64, 64)
    >>> f(torch.zeros(1, 96, 55, 55)).shape
    torch.Size([1, 128, 55, 55])
    """

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int,
                 expand3x3_planes: int, bypass: str = "none", batch_norm: bool = False) -> None:
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)
        # optional BatchNorm after each conv (before its ReLU) (not in the paper; trains the
        # small-image network several times faster from scratch)
        bn = (lambda c: nn.BatchNorm2d(c)) if batch_norm else (lambda c: nn.Identity())
        self.squeeze_bn, self.expand1x1_bn, self.expand3x3_bn = (
            bn(squeeze_planes), bn(expand1x1_planes), bn(expand3x3_planes))
        out = expand1x1_planes + expand3x3_planes
        if bypass == "identity" and inplanes != out:
            raise ValueError(f"identity bypass needs equal channels, got {inplanes} -> {out}")
        if bypass not in ("none", "identity", "conv"):
            raise ValueError(f"bypass must be none|identity|conv, got {bypass!r}")
        self.bypass = bypass
        self.shortcut = nn.Conv2d(inplanes, out, kernel_size=1) if bypass == "conv" else None
        # the complex bypass's conv gets its BatchNorm too: without it the unnormalised
        # shortcut sums grow module by module and training stalls at chance (measured on CIFAR-10)
        self.shortcut_bn = nn.BatchNorm2d(out) if (batch_norm and bypass == "conv") else nn.Identity()

    @property
    def out_channels(self) -> int:
        return self.expand1x1.out_channels + self.expand3x3.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze_activation(self.squeeze_bn(self.squeeze(x)))
        y = torch.cat([self.expand1x1_activation(self.expand1x1_bn(self.expand1x1(s))),
                       self.expand3x3_activation(self.expand3x3_bn(self.expand3x3(s)))], 1)
        if self.bypass == "identity":
            y = y + x
        elif self.shortcut is not None:
            y = y + self.shortcut_bn(self.shortcut(x))
        return y
