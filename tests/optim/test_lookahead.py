import pytest
import torch

from superconverge.optim.lookahead import Lookahead


def _setup():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, opt


def _step(model, opt):
    model(torch.randn(8, 4)).pow(2).sum().backward()
    opt.step()
    opt.zero_grad()


def test_zero_decay_changes_nothing():
    model, opt = _setup()
    ref_model, ref_opt = _setup()
    la = Lookahead(model, opt, decay=lambda t: 0.0, every=2)
    torch.manual_seed(1)
    for _ in range(6):
        _step(model, opt)
    torch.manual_seed(1)
    for _ in range(6):
        _step(ref_model, ref_opt)
    la.finish()  # decay 1: back to the slow copy, which equals the last sync (step 6)
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        assert torch.equal(a, b)


def test_pull_interpolates_every_k_steps():
    model, opt = _setup()
    ref_model, ref_opt = _setup()
    start = model[0].weight.detach().clone()
    la = Lookahead(model, opt, decay=lambda t: 0.75, every=3)
    torch.manual_seed(1)
    for _ in range(3):
        _step(model, opt)
    torch.manual_seed(1)
    for _ in range(3):
        _step(ref_model, ref_opt)  # the fast weights without lookahead
    expected = 0.75 * start + 0.25 * ref_model[0].weight.detach()
    assert torch.allclose(model[0].weight, expected, atol=1e-6)
    assert torch.allclose(la.slow[0], expected, atol=1e-6)
    # BatchNorm statistics are averaged too
    assert torch.allclose(model[1].running_mean, 0.25 * ref_model[1].running_mean, atol=1e-6)
    with pytest.raises(ValueError):
        la.pull(1.5)
