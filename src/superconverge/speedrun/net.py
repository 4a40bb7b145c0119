"""The speedrun network: patch whitening, then three conv-pool-BN-GELU blocks, then a linear head.

    x (3x32x32) -> whiten: frozen 2x2 conv, 24 ch (31x31) -> GELU
      -> block(w1) -> block(w2) -> block(w3) -> global max pool -> linear / 9

    block(c): conv3x3 -> maxpool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU
              (``convs`` per block: 2 each by default; every conv after the first adds conv3x3 -> BN -> GELU)

The whitening filters are the eigenvectors of the covariance of 2x2 input patches
scaled by 1/sqrt(eigenvalue), with their negatives (Jordan 2024): the first layer
starts decorrelated and never needs to learn it. BatchNorm keeps its scale fixed at
1 and learns only the shift. The first ``c_in`` filters of every conv start as the
identity (Dirac), so the net starts close to a shallow one.
"""

from __future__ import annotations

import torch
from torch import nn


class Whiten(nn.Conv2d):
    """A 2x2 conv whose weights come from :func:`whitening_filters` and stay frozen."""

    def __init__(self, width: int = 24) -> None:
        super().__init__(3, width, kernel_size=2, padding=0, bias=True)
        self.weight.requires_grad_(False)
        nn.init.zeros_(self.bias)

    @torch.no_grad()
    def fit(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the filters from normalised NCHW ``images`` (a few thousand are plenty)."""
        self.weight.copy_(whitening_filters(images, self.out_channels, eps).to(self.weight))


def whitening_filters(images: torch.Tensor, width: int = 24, eps: float = 5e-4) -> torch.Tensor:
    """``width`` 2x2 filters: ``+-V_i / sqrt(lambda_i + eps)`` for the largest eigenpairs of the patch covariance.

    With all 12 eigenvectors (width 24) the layer maps patches to white coordinates.
    """
    c = images.shape[1]
    patches = images.float().unfold(2, 2, 1).unfold(3, 2, 1)  # N, C, H-1, W-1, 2, 2
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * 4)
    patches = patches - patches.mean(0)
    cov = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov.double())  # ascending
    keep = width // 2
    eigenvalues, eigenvectors = eigenvalues.flip(0)[:keep], eigenvectors.flip(1)[:, :keep]
    filters = (eigenvectors / torch.sqrt(eigenvalues + eps)).T.reshape(keep, c, 2, 2).float()
    return torch.cat([filters, -filters])


def _bn(c: int, momentum: float) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c, momentum=momentum, eps=1e-12)
    bn.weight.requires_grad_(False)  # fixed scale 1; only the shift learns
    return bn


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(c_in, c_out)])
    return conv


def _block(c_in: int, c_out: int, momentum: float, convs: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = [_conv(c_in, c_out), nn.MaxPool2d(2), _bn(c_out, momentum), nn.GELU()]
    for _ in range(convs - 1):
        layers += [_conv(c_out, c_out), _bn(c_out, momentum), nn.GELU()]
    return nn.Sequential(*layers)


class SpeedNet(nn.Module):
    def __init__(self, widths: tuple[int, int, int] = (64, 256, 256), whiten_width: int = 24,
                 bn_momentum: float = 0.4, logit_scale: float = 1 / 9, num_classes: int = 10,
                 convs: tuple[int, int, int] = (2, 2, 2)) -> None:
        super().__init__()
        self.whiten = Whiten(whiten_width)
        w1, w2, w3 = widths
        n1, n2, n3 = convs
        self.body = nn.Sequential(
            nn.GELU(),
            _block(whiten_width, w1, bn_momentum, n1),
            _block(w1, w2, bn_momentum, n2),
            _block(w2, w3, bn_momentum, n3),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(w3, num_classes, bias=False)
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.whiten(x))) * self.logit_scale


def param_groups(net: SpeedNet) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters by role: conv ``filters``, the linear ``head``, BN ``biases``, the ``whiten_bias``."""
    groups: dict[str, list[nn.Parameter]] = {"filters": [], "head": [net.head.weight], "biases": [],
                                             "whiten_bias": [net.whiten.bias]}
    for module in net.body.modules():
        if isinstance(module, nn.Conv2d):
            groups["filters"].append(module.weight)
        elif isinstance(module, nn.BatchNorm2d):
            groups["biases"].append(module.bias)
    return groups


def flops_per_image(net: nn.Module, size: int = 32) -> dict[str, float]:
    """Forward and training (forward + backward) FLOPs for one image, counted by PyTorch."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    net = copy.deepcopy(net).train()  # a copy: a training-mode pass would move BN statistics
    x = torch.zeros(2, 3, size, size, device=next(net.parameters()).device)
    with FlopCounterMode(display=False) as counter:
        net(x).sum().backward()
    train = counter.get_total_flops() / 2
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x)
    return {"forward": counter.get_total_flops() / 2, "train": train}
