import pytest
import torch

from superconverge.speedrun.net import SpeedNet, flops_per_image, param_groups, whitening_filters


def test_whitening_filters_decorrelate_patches():
    torch.manual_seed(0)
    mix = torch.randn(12, 12)
    # images whose 2x2 patches are strongly correlated
    images = torch.randn(200, 3, 8, 8)
    images = images + 0.8 * images.roll(1, 2) + 0.5 * images.roll(1, 1)
    filters = whitening_filters(images, 24, eps=0.0)
    assert filters.shape == (24, 3, 2, 2)
    assert torch.allclose(filters[12:], -filters[:12])
    out = torch.nn.functional.conv2d(images, filters[:12])
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.eye(12), atol=1e-3), cov
    del mix


def test_speednet_shapes_groups_and_frozen_parts():
    net = SpeedNet((8, 16, 16))
    assert net(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    groups = param_groups(net)
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    grouped = [id(p) for ps in groups.values() for p in ps]
    assert sorted(grouped) == sorted(trainable) and len(set(grouped)) == len(grouped)
    assert not net.whiten.weight.requires_grad
    assert all(not m.weight.requires_grad for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_flop_count_matches_the_conv_arithmetic_and_leaves_the_net_alone():
    net = SpeedNet((8, 16, 16), whiten_width=4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flops = flops_per_image(net)
    # multiply-adds of the convs and the head, counted by hand (x2 for FLOPs)
    macs = (31 * 31 * 4 * 12 + 31 * 31 * 8 * 4 * 9 + 15 * 15 * 8 * 8 * 9 + 15 * 15 * 16 * 8 * 9
            + 7 * 7 * 16 * 16 * 9 + 7 * 7 * 16 * 16 * 9 + 3 * 3 * 16 * 16 * 9 + 16 * 10)
    assert flops["forward"] == 2 * macs
    assert 2 * flops["forward"] < flops["train"] <= 3 * flops["forward"]
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_epoch_flops_count_resolution_and_the_learning_whitening_bias():
    from superconverge.speedrun import Recipe
    from superconverge.speedrun.run import epoch_flops

    net = SpeedNet((8, 16, 16))
    recipe = Recipe(widths=(8, 16, 16), epochs=5, low_res_epochs=2, low_res=16, whiten_bias_epochs=2.5)
    flops = epoch_flops(net, recipe)
    full = flops_per_image(net)["train"]
    net.whiten.bias.requires_grad_(False)
    frozen = flops_per_image(net)["train"]
    net.whiten.bias.requires_grad_(True)
    assert flops[0] == flops[1] < flops[2] and frozen < full
    assert flops[2] == pytest.approx(0.5 * full + 0.5 * frozen)  # half of epoch 3 still learns the bias
    assert flops[3] == flops[4] == pytest.approx(frozen) and net.whiten.bias.requires_grad


def test_convs_per_block_adds_identity_initialised_conv_bn_gelu_layers():
    deep = SpeedNet((8, 16, 16), convs=(2, 2, 3))
    base = SpeedNet((8, 16, 16))
    convs = [m for m in deep.body[3].modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3 and len([m for m in base.body[3].modules() if isinstance(m, torch.nn.Conv2d)]) == 2
    assert torch.equal(convs[2].weight[:, :, 1, 1], torch.eye(16))  # Dirac: the new conv starts as the identity
    assert len(param_groups(deep)["filters"]) == len(param_groups(base)["filters"]) + 1
    assert len(param_groups(deep)["biases"]) == len(param_groups(base)["biases"]) + 1
    # the extra conv works on the last block's 3x3 maps: 3*3*16*16*9 more multiply-adds per image
    assert flops_per_image(deep)["forward"] - flops_per_image(base)["forward"] == 2 * 3 * 3 * 16 * 16 * 9
    assert deep(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    one = SpeedNet((8, 16, 16), convs=(1, 1, 1))  # conv -> pool -> BN -> GELU only
    assert len(param_groups(one)["filters"]) == 3
