import pytest
import torch

from superconverge.optim.muon import Muon, orthogonalize


@pytest.mark.parametrize("shape", [(16, 64), (64, 16), (32, 8, 3, 3)])
def test_orthogonalize_flattens_the_singular_values(shape):
    torch.manual_seed(0)
    # a badly conditioned update: singular values spread over two decades
    u, _, v = torch.linalg.svd(torch.randn(shape[0], int(torch.tensor(shape[1:]).prod())), full_matrices=False)
    s = torch.logspace(0, -2, min(u.shape[1], v.shape[0]))
    update = (u * s) @ v
    out = orthogonalize(update.reshape(shape))
    assert out.shape == shape and out.dtype == update.dtype
    singular = torch.linalg.svdvals(out.reshape(shape[0], -1).double())
    assert singular.min() > 0.3 and singular.max() < 1.3  # every direction moves at about the same rate
    assert singular.max() / singular.min() < 4  # from a condition number of 100


def test_sgd_groups_step_exactly_like_torch_sgd():
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(5)), torch.nn.Parameter(torch.randn(3, 4))]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    ours = Muon([dict(params=a, orthogonalize=False)], lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)
    ref = torch.optim.SGD(b, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)
    for step in range(4):
        grads = [torch.randn_like(p) for p in a]
        for p, q, g in zip(a, b, grads):
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    for p, q in zip(a, b):
        assert torch.allclose(p, q, atol=1e-6)


def test_a_muon_step_moves_a_normalised_weight_along_the_orthogonalised_momentum():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(8, 4, 3, 3))
    opt = Muon([w], lr=0.05, momentum=0.5, nesterov=False, normalize=False)
    before = w.detach().clone()
    g = torch.randn_like(w)
    w.grad = g
    opt.step()
    assert torch.allclose(w, before - 0.05 * orthogonalize(g), atol=1e-6)
    opt = Muon([w], lr=0.05)
    w.grad = torch.randn_like(w)
    opt.step()
    assert w.norm().item() == pytest.approx(8**0.5, rel=1e-5)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="orthogonalize=False"):
        Muon([torch.nn.Parameter(torch.zeros(4))])
    with pytest.raises(ValueError, match="momentum"):
        Muon([torch.nn.Parameter(torch.zeros(4, 4))], momentum=1.0)


def test_a_wide_fan_out_scales_the_step_and_nesterov_looks_ahead():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(12, 3))  # rows > fan-in: the step grows by sqrt(12 / 3) = 2
    opt = Muon([w], lr=0.01, momentum=0.5, nesterov=True, normalize=False)
    g1, g2 = torch.randn_like(w), torch.randn_like(w)
    w.grad = g1
    opt.step()
    before = w.detach().clone()
    w.grad = g2
    opt.step()
    buf = 0.5 * g1 + g2  # momentum buffer after two steps (the first step's buffer is the gradient)
    assert torch.allclose(w, before - 0.01 * 2 * orthogonalize(g2 + 0.5 * buf), atol=1e-6)


def test_weight_decay_on_a_normalised_orthogonal_group_is_refused_also_when_added_later():
    with pytest.raises(ValueError, match="normalize=True.*set normalize=False"):
        Muon([torch.nn.Parameter(torch.zeros(4, 4))], weight_decay=1e-4)
    opt = Muon([torch.nn.Parameter(torch.zeros(4, 4))])
    with pytest.raises(ValueError, match="normalize=True"):
        opt.add_param_group(dict(params=[torch.nn.Parameter(torch.zeros(4, 4))], weight_decay=1e-4))
    with pytest.raises(ValueError, match="2\\+ dimensions"):
        opt.add_param_group(dict(params=[torch.nn.Parameter(torch.zeros(4))]))


def test_without_normalize_weight_decay_is_decoupled():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(6, 6))
    before = w.detach().clone()
    opt = Muon([w], lr=0.1, momentum=0.0, normalize=False, weight_decay=0.5)
    w.grad = torch.randn_like(w)
    opt.step()
    assert torch.allclose(w, before * (1 - 0.1 * 0.5) - 0.1 * orthogonalize(w.grad), atol=1e-6)
