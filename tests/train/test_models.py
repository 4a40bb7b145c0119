"""Tests for superconverge.train.models: shapes, published parameter counts, bf16, channels_last."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from superconverge.train.models import (
    MODEL_NAMES,
    build_model,
    count_parameters,
    resnet_cifar,
)

# Published parameter counts: He et al. 2016 Table 6 (CIFAR ResNets), the usual 11.2M for the
# CIFAR pre-activation ResNet-18, and ~6.5M for Page's ResNet-9.
PUBLISHED_PARAMS = {
    "resnet20": 0.27e6,
    "resnet32": 0.46e6,
    "resnet44": 0.66e6,
    "resnet56": 0.85e6,
    "resnet110": 1.7e6,
    "preact_resnet18": 11.2e6,
    "resnet9": 6.5e6,
}


def _batch(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _model(name: str, num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, num_classes)


def test_model_names_cover_required() -> None:
    required = {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                "preact_resnet18", "resnet9", "tiny"}
    assert isinstance(MODEL_NAMES, tuple)
    assert required <= set(MODEL_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_backward(name: str) -> None:
    model = _model(name)
    out = model(_batch())
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_count_matches_paper(name: str) -> None:
    count = count_parameters(_model(name))
    assert count == pytest.approx(PUBLISHED_PARAMS[name], rel=0.02)


def test_tiny_is_small() -> None:
    assert 10_000 <= count_parameters(_model("tiny")) <= 100_000


def test_option_a_shortcut_is_parameter_free() -> None:
    # Option B adds two 1x1 projections (16->32, 32->64) and their BNs.
    extra = 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
    a, b = resnet_cifar(20, shortcut="A"), resnet_cifar(20, shortcut="B")
    assert count_parameters(b) - count_parameters(a) == extra
    assert b(_batch()).shape == (2, 10)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bf16_autocast_forward(name: str) -> None:
    model = _model(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(_batch())
    assert out.shape == (2, 10)
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_channels_last_matches_contiguous(name: str) -> None:
    model = _model(name).eval()  # eval: BN uses running stats, so both passes see the same model
    x = _batch()
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == (2, 10)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_channels_last_bf16_backward() -> None:
    model = _model("resnet20").to(memory_format=torch.channels_last)
    x = _batch().contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nn.functional.cross_entropy(model(x), torch.tensor([1, 7]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["resnet20", "resnet9", "tiny"])
def test_num_classes(name: str) -> None:
    assert _model(name, num_classes=100)(_batch()).shape == (2, 100)


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(ValueError) as info:
        build_model("resnet2O")
    message = str(info.value)
    assert "unknown model 'resnet2O'" in message
    assert "did you mean 'resnet20'?" in message
    assert all(name in message for name in MODEL_NAMES)


def test_unknown_name_without_close_match() -> None:
    with pytest.raises(ValueError, match="choices: resnet20") as info:
        build_model("transformer")
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize("depth", [0, 19, 21])
def test_bad_depth(depth: int) -> None:
    with pytest.raises(ValueError, match="6n \\+ 2"):
        resnet_cifar(depth)


def test_bad_num_classes() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        build_model("tiny", num_classes=0)


def test_models_pickle() -> None:
    model = _model("tiny").eval()
    clone = pickle.loads(pickle.dumps(model))
    x = _batch()
    torch.testing.assert_close(clone(x), model(x))
