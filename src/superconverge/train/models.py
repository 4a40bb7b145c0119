"""Image classifiers for 32x32 CIFAR-10 inputs, selectable by name through `build_model`.

Parameter counts at 10 classes (the published figure in brackets):

    resnet20  269,722 (0.27M)   resnet32  464,154 (0.46M)   resnet44  658,586 (0.66M)
    resnet56  853,018 (0.85M)   resnet110 1,727,962 (1.7M)  preact_resnet18 11,172,170 (11.2M)
    resnet9   6,573,120 (6.5M)  tiny      24,346 (smoke-test net, no paper)

Every model is a plain stack of conv/BN/ReLU modules with no data-dependent Python control flow,
so it runs unchanged under `torch.autocast("cpu", dtype=torch.bfloat16)` and with inputs and
weights in `torch.channels_last`.

Example:
    >>> model = build_model("resnet20")
    >>> model(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import difflib
import os
from functools import partial
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MODEL_NAMES",
    "build_model",
    "count_parameters",
    "preact_resnet18",
    "resnet9",
    "resnet_cifar",
    "tiny",
]

Shortcut = Literal["A", "B"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with 'same' padding and no bias (a BN follows it)."""
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """conv3x3 -> BN -> ReLU, the unit of Page's ResNet-9 and of the tiny net."""
    return nn.Sequential(_conv3x3(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _kaiming_init(model: nn.Module) -> None:
    """He et al. 2015 normal init for conv weights; BN keeps PyTorch's 1 and 0 and the final
    linear layer PyTorch's default, whose small logits start the loss near ln(classes)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class _PadShortcut(nn.Module):
    """Option-A shortcut (He et al. 2016, sec. 4.2): stride-2 subsample, zero-pad new channels."""

    def __init__(self, extra_channels: int) -> None:
        super().__init__()
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.pad lists dims from the last: (W, W, H, H, C, C); pad half the new channels each side.
        half = self.extra_channels // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.extra_channels - half))


class _BasicBlock(nn.Module):
    """Basic block (He et al. 2016): relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int, shortcut: Shortcut) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = _conv3x3(c_out, c_out), nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            if shortcut == "A":
                self.shortcut = _PadShortcut(c_out - c_in)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _ResNetCifar(nn.Module):
    """ResNet for CIFAR (He et al. 2016, "Deep Residual Learning", sec. 4.2)."""

    def __init__(self, blocks_per_stage: int, num_classes: int, shortcut: Shortcut) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv3x3(3, 16), nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        c_in = 16
        for stage, c_out in enumerate((16, 32, 64)):
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(_BasicBlock(c_in, c_out, stride, shortcut))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))


def resnet_cifar(depth: int, num_classes: int = 10, shortcut: Shortcut = "A") -> nn.Module:
    """CIFAR ResNet-`depth` (He et al. 2016, "Deep Residual Learning", sec. 4.2), depth = 6n + 2.

    3x3 conv 16 -> three stages of n basic blocks at 16, 32, 64 channels (stride 2 at the start of
    stages 2 and 3) -> global average pool -> linear. Shortcuts use option A by default, as in the
    paper's CIFAR experiments: parameter-free stride-2 subsampling plus zero-padded channels, which
    gives the paper's parameter counts. `shortcut="B"` uses 1x1 conv + BN projections instead.
    Weights use Kaiming (He et al. 2015) init.

    Example:
        >>> resnet_cifar(20)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    if depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 56, ...), got {depth}")
    if shortcut not in ("A", "B"):
        raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
    model = _ResNetCifar((depth - 2) // 6, num_classes, shortcut)
    _kaiming_init(model)
    return model


class _PreActBlock(nn.Module):
    """Full pre-activation block (He et al. 2016, "Identity Mappings"): x + F(relu(bn(x)))."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), _conv3x3(c_in, c_out, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), _conv3x3(c_out, c_out)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        # The projection sees the pre-activated input, as in the paper's full pre-activation unit.
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class _PreActResNet18(nn.Module):
    """Pre-activation ResNet-18, CIFAR variant (He et al. 2016, "Identity Mappings")."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.stem = _conv3x3(3, 64)  # 3x3 stem, no max pool: 32x32 inputs are already small
        blocks: list[nn.Module] = []
        c_in = 64
        for stage, c_out in enumerate((64, 128, 256, 512)):
            for i in range(2):
                blocks.append(_PreActBlock(c_in, c_out, 2 if stage > 0 and i == 0 else 1))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(512)  # the last block's output is not yet normalised
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(x.mean(dim=(2, 3)))


def preact_resnet18(num_classes: int = 10) -> nn.Module:
    """Pre-activation ResNet-18 for CIFAR (He et al. 2016, "Identity Mappings"), ~11.2M params.

    3x3 conv 64 stem (no max pool) -> four stages of two pre-activation blocks at 64, 128, 256,
    512 channels -> BN, ReLU -> global average pool -> linear. Kaiming init.

    Example:
        >>> preact_resnet18()(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    model = _PreActResNet18(num_classes)
    _kaiming_init(model)
    return model


class _Residual(nn.Module):
    """x + f(x), Page's residual wrapper."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.f = nn.Sequential(_conv_bn_relu(c, c), _conv_bn_relu(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


class _ResNet9(nn.Module):
    """Myrtle's ResNet-9 (David Page, "How to train your ResNet", 2018)."""

    def __init__(self, num_classes: int, scale: float) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn_relu(3, 64),  # prep
            _conv_bn_relu(64, 128), nn.MaxPool2d(2), _Residual(128),  # layer1
            _conv_bn_relu(128, 256), nn.MaxPool2d(2),  # layer2
            _conv_bn_relu(256, 512), nn.MaxPool2d(2), _Residual(512),  # layer3
        )
        self.fc = nn.Linear(512, num_classes, bias=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).amax(dim=(2, 3))  # global max pool (MaxPool2d(4) at 32x32 input)
        return self.fc(x) * self.scale


def resnet9(num_classes: int = 10, scale: float = 0.125) -> nn.Module:
    """Myrtle's ResNet-9 (David Page, "How to train your ResNet", 2018), ~6.57M params.

    prep conv 64 -> layer1 conv 128 + max pool + residual(2x conv 128) -> layer2 conv 256 + max
    pool -> layer3 conv 512 + max pool + residual(2x conv 512) -> global max pool -> linear 512->10
    without bias, output times `scale` (0.125 in the post). Each conv is conv-BN-ReLU, with the
    pool after the ReLU as in the post's DAWNBench code. PyTorch default init, as in the post.

    Example:
        >>> resnet9()(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return _ResNet9(num_classes, scale)


def tiny(num_classes: int = 10) -> nn.Module:
    """A ~24k-parameter conv net for smoke runs: three conv-BN-ReLU-maxpool at 16, 32, 64 channels.

    Not from a paper; it exists so a CPU run reaches well above chance in seconds.

    Example:
        >>> tiny()(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    model = nn.Sequential(
        _conv_bn_relu(3, 16), nn.MaxPool2d(2),  # 16x16
        _conv_bn_relu(16, 32), nn.MaxPool2d(2),  # 8x8
        _conv_bn_relu(32, 64), nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )
    _kaiming_init(model)
    with torch.no_grad():  # max-pooled features are large: shrink the head so the loss starts near ln(10)
        model[-1].weight.mul_(0.25)
    return model


# name -> builder(num_classes); partials of module-level functions, so the table pickles.
_BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    "resnet20": partial(resnet_cifar, 20),
    "resnet32": partial(resnet_cifar, 32),
    "resnet44": partial(resnet_cifar, 44),
    "resnet56": partial(resnet_cifar, 56),
    "resnet110": partial(resnet_cifar, 110),
    "preact_resnet18": preact_resnet18,
    "resnet9": resnet9,
    "tiny": tiny,
}

MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def _closest_name(name: str) -> str | None:
    """The model name most like `name`, or None if none is close (difflib's 0.6 cutoff)."""
    matches = difflib.get_close_matches(name, MODEL_NAMES, n=len(MODEL_NAMES))
    # difflib breaks ratio ties in reverse alphabetical order ("resnet2O" -> "resnet32");
    # break them by the longer shared prefix instead, which is what a typo usually keeps.
    def score(m: str) -> tuple[float, int]:
        return difflib.SequenceMatcher(None, m, name).ratio(), len(os.path.commonprefix([m, name]))

    return max(matches, key=score, default=None)


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    """Build the model called `name` (one of `MODEL_NAMES`) with `num_classes` outputs.

    Example:
        >>> build_model("tiny", num_classes=100)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 100])
    """
    if name not in _BUILDERS:
        close = _closest_name(name)
        hint = f"did you mean {close!r}? " if close else ""
        raise ValueError(f"unknown model {name!r}; {hint}choices: {', '.join(MODEL_NAMES)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return _BUILDERS[name](num_classes)
