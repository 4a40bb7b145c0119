"""The Scheduler adapter: keys, groups, resume, state_dict round trips and clear errors."""

from __future__ import annotations

import io
import pickle

import pytest
import torch
from torch.optim.lr_scheduler import LRScheduler

from superconverge.optim import Scheduler, hf_wsd, step_lr
from superconverge.schedules import (
    PastEndError,
    PastEndWarning,
    constant,
    cosine,
    linear,
    one_cycle,
    reduce_on_plateau,
    trapezoid,
)


def two_groups(opt_cls=torch.optim.SGD, **kw):
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
    return opt_cls([{"params": a.parameters(), "lr": 0.1}, {"params": b.parameters(), "lr": 0.01}], **kw)


def trace(opt, sched, steps):
    out = []
    for _ in range(steps):
        out.append([(g["lr"], g.get("momentum", g.get("betas", (None,))[0]), g["weight_decay"])
                    for g in opt.param_groups])
        opt.step()
        sched.step()
    return out


def policy():
    p = one_cycle(200, 0.5)
    p["weight_decay"] = linear(5e-4, 0.0, 200)
    return p


def test_is_a_real_lr_scheduler():
    opt = two_groups(momentum=0.9)
    sched = Scheduler(opt, policy())
    assert isinstance(sched, LRScheduler)
    assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]
    assert sched.last_epoch == 0
    opt.step()
    sched.step()
    assert sched.last_epoch == 1


@pytest.mark.parametrize("via", ["state_dict", "torch.save", "pickle"])
def test_resume_reproduces_an_uninterrupted_run(via):
    full_opt = two_groups(momentum=0.9, weight_decay=5e-4)
    full = trace(full_opt, Scheduler(full_opt, policy()), 200)

    opt = two_groups(momentum=0.9, weight_decay=5e-4)
    sched = Scheduler(opt, policy())
    first = trace(opt, sched, 77)
    state = sched.state_dict()
    if via == "torch.save":
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        state = torch.load(buf, weights_only=True)
    elif via == "pickle":
        state = pickle.loads(pickle.dumps(state))

    opt2 = two_groups(momentum=0.9, weight_decay=5e-4)
    resumed = Scheduler(opt2, policy())
    resumed.load_state_dict(state)
    assert first + trace(opt2, resumed, 123) == full


def test_plateau_state_survives_a_round_trip():
    opt = two_groups(momentum=0.9)
    sched = Scheduler(opt, {"lr": reduce_on_plateau(0.1, patience=0, factor=0.5)})
    for m in [1.0, 2.0, 3.0]:
        sched.observe(m)
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    opt2 = two_groups(momentum=0.9)
    again = Scheduler(opt2, {"lr": reduce_on_plateau(0.1, patience=0, factor=0.5)})
    again.load_state_dict(torch.load(buf, weights_only=True))
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.025)
    again.observe(4.0)
    sched.observe(4.0)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_warmup_then_plateau():
    opt = two_groups(momentum=0.9)
    sched = Scheduler(opt, {"lr": reduce_on_plateau(0.1, warmup_steps=10, patience=0, factor=0.5)})
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        sched.observe(5.0)  # ignored during the warmup
        opt.step()
        sched.step()
    assert lrs == sorted(lrs) and lrs[0] == pytest.approx(0.001)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    sched.observe(5.0)
    sched.observe(5.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_discriminative_multipliers_and_initial_scale():
    opt = two_groups(momentum=0.9)
    Scheduler(opt, {"lr": constant(1.0)}, scale={"lr": [0.1, 1.0]})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    opt = two_groups(momentum=0.9)
    sched = Scheduler(opt, {"lr": trapezoid(100, 10, 10)}, scale={"lr": "initial"})
    for _ in range(50):
        opt.step()
        sched.step()
    # each group keeps its own base LR through the stable phase
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.01])


def test_per_group_schedules():
    opt = two_groups(momentum=0.9)
    Scheduler(opt, {"lr": [constant(0.3), constant(0.7)]})
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.7]


@pytest.mark.parametrize("opt_cls", [torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam])
def test_momentum_maps_to_beta1(opt_cls):
    opt = two_groups(opt_cls, betas=(0.9, 0.99))
    Scheduler(opt, {"momentum": constant(0.8)})
    assert all(g["betas"] == (0.8, 0.99) for g in opt.param_groups)


def test_any_numeric_key():
    opt = two_groups(torch.optim.AdamW, weight_decay=0.01, eps=1e-8)
    Scheduler(opt, {"weight_decay": constant(0.05), "eps": constant(1e-6), "beta2": constant(0.95)})
    g = opt.param_groups[0]
    assert (g["weight_decay"], g["eps"], g["betas"][1]) == (0.05, 1e-6, 0.95)


def test_tensor_lr_is_filled_in_place():
    opt = two_groups(torch.optim.Adam, lr=torch.tensor(0.1))
    lr_tensor = opt.param_groups[0]["lr"] = torch.tensor(0.1)
    Scheduler(opt, {"lr": constant(0.3)})
    assert opt.param_groups[0]["lr"] is lr_tensor and float(lr_tensor) == pytest.approx(0.3)


def test_past_end_warns_or_raises():
    opt = two_groups(momentum=0.9)
    sched = Scheduler(opt, {"lr": cosine(0.1, 0.0, 3)})
    for _ in range(3):
        sched.step()
    with pytest.warns(PastEndWarning):
        sched.step()
    strict = Scheduler(two_groups(momentum=0.9), {"lr": cosine(0.1, 0.0, 3)}, past_end="raise")
    for _ in range(3):
        strict.step()
    with pytest.raises(PastEndError):
        strict.step()


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Scheduler(two_groups(momentum=0.0), {"momentum": constant(0.9)}),
         "built with momentum=0; scheduling momentum would switch it on silently"),
        (lambda: Scheduler(two_groups(torch.optim.Adagrad), {"momentum": constant(0.9)}),
         "has neither 'momentum' nor 'betas'"),
        (lambda: Scheduler(two_groups(momentum=0.9), {"beta1": constant(0.9)}),
         "needs an Adam-family optimizer"),
        (lambda: Scheduler(two_groups(momentum=0.9), {"lrr": constant(0.9)}),
         "has no key 'lrr'; schedulable keys here: .*lr"),
        (lambda: Scheduler(two_groups(momentum=0.9), {"nesterov": constant(0.9)}),
         "not a number to schedule"),
        (lambda: Scheduler(two_groups(momentum=0.9), {"lr": [constant(0.1)] * 3}),
         "got 3 schedules for 2 param groups"),
        (lambda: Scheduler(two_groups(momentum=0.9), {"momentum": constant(1.2)}),
         r"momentum schedule gives 1.2 at step 0; it must lie in \[0, 1\)"),
        (lambda: Scheduler(two_groups(momentum=0.9), {"lr": constant(0.1)}, scale={"lr": [1.0]}),
         "1 factors for 2 param groups"),
        (lambda: Scheduler(two_groups(momentum=0.9), {}), "at least one key"),
        (lambda: Scheduler(two_groups(momentum=0.9), {"lr": constant(0.1)}, start_step=-1),
         "start_step must be a whole number"),
    ],
)
def test_clear_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_load_state_dict_rejects_a_different_scheduler():
    a = Scheduler(two_groups(momentum=0.9), {"lr": constant(0.1)})
    b = Scheduler(two_groups(momentum=0.9), {"lr": constant(0.1), "momentum": constant(0.9)})
    with pytest.raises(ValueError, match="build the Scheduler with the same keys"):
        b.load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="not a superconverge Scheduler state_dict"):
        a.load_state_dict({"last_epoch": 3})


def test_step_with_epoch_is_refused():
    sched = Scheduler(two_groups(momentum=0.9), {"lr": constant(0.1)})
    with pytest.raises(TypeError, match="takes no epoch"):
        sched.step(3)


def test_observe_without_a_plateau_is_refused():
    sched = Scheduler(two_groups(momentum=0.9), {"lr": constant(0.1)})
    with pytest.raises(ValueError, match="needs a reduce_on_plateau"):
        sched.observe(1.0)


def test_start_step_resumes_without_state():
    opt = two_groups(momentum=0.9)
    Scheduler(opt, one_cycle(100, 0.1), start_step=40)
    assert opt.param_groups[0]["lr"] == pytest.approx(one_cycle(100, 0.1)["lr"](40))


# -- resuming scale="initial": the factors come from the state dict, not the loaded optimizer ---------------


def base_groups():
    """Two groups with different base LRs and weight decays, plain SGD."""
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(2, 1)
    return torch.optim.SGD([{"params": a.parameters(), "lr": 0.1, "weight_decay": 1e-3},
                            {"params": b.parameters(), "lr": 0.02, "weight_decay": 4e-4}], momentum=0.9)


RELATIVE = {
    "step_lr": lambda opt: step_lr(opt, step_size=7, gamma=0.5),
    "hf_wsd trapezoid": lambda opt: hf_wsd(opt, num_warmup_steps=5, num_decay_steps=12, num_training_steps=40),
    "initial, two keys": lambda opt: Scheduler(opt, {"lr": trapezoid(40, 5, 12), "weight_decay": linear(1.0, 0.1, 40)},
                                               scale={"lr": "initial", "weight_decay": "initial"}),
}


def flat(rows):
    return [v for row in rows for group in row for v in group]


def round_trip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("order", ["optimizer first", "optimizer first, no initial_lr saved", "scheduler first"])
@pytest.mark.parametrize("build", RELATIVE.values(), ids=RELATIVE.keys())
def test_relative_schedules_resume_the_same_either_way(build, order):
    full_opt = base_groups()
    full = trace(full_opt, build(full_opt), 40)

    opt = base_groups()
    sched = build(opt)
    first = trace(opt, sched, 31)  # inside every decay phase, so a wrong base shows
    saved = round_trip({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()})
    if order == "optimizer first, no initial_lr saved":  # a checkpoint from before the Scheduler recorded it
        for group in saved["optimizer"]["param_groups"]:
            del group["initial_lr"]

    opt2 = base_groups()
    if order.startswith("optimizer first"):
        opt2.load_state_dict(saved["optimizer"])  # its groups now hold step 31's values
        resumed = build(opt2)
    else:
        resumed = build(opt2)
        opt2.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    rest = trace(opt2, resumed, 9)
    assert flat(first + rest) == pytest.approx(flat(full), rel=1e-12)


def test_a_relative_plateau_resumes_with_the_optimizer_loaded_first():
    def build(opt):
        return Scheduler(opt, {"lr": reduce_on_plateau(1.0, patience=0, factor=0.5)}, scale={"lr": "initial"})

    opt = base_groups()
    sched = build(opt)
    for metric in [1.0, 2.0, 3.0]:
        sched.observe(metric)
    saved = round_trip({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()})
    for group in saved["optimizer"]["param_groups"]:
        del group["initial_lr"]
    opt2 = base_groups()
    opt2.load_state_dict(saved["optimizer"])
    resumed = build(opt2)
    resumed.load_state_dict(saved["scheduler"])
    sched.observe(4.0)
    resumed.observe(4.0)
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([0.1 / 8, 0.02 / 8])


def test_a_state_dict_without_initial_factors_loads_as_before():
    opt = base_groups()
    sched = RELATIVE["step_lr"](opt)
    trace(opt, sched, 10)
    state = sched.state_dict()
    del state["initial"]  # as saved before the factors were kept
    opt2 = base_groups()
    resumed = RELATIVE["step_lr"](opt2)
    resumed.load_state_dict(state)
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([g["lr"] for g in opt.param_groups])


def test_saved_initial_factors_must_match_the_scale():
    opt = base_groups()
    state = Scheduler(opt, {"lr": constant(1.0)}, scale={"lr": "initial"}).state_dict()
    assert state["initial"] == {"lr": [0.1, 0.02]}
    absolute = Scheduler(base_groups(), {"lr": constant(1.0)})
    with pytest.raises(ValueError, match="build the Scheduler with the same scale"):
        absolute.load_state_dict(state)


# -- last_epoch and step(0), as torch's SequentialLR uses them ---------------------------------------------


def test_setting_last_epoch_moves_the_step_and_writes_its_values():
    opt = two_groups(momentum=0.9)
    sched = Scheduler(opt, one_cycle(100, 0.1))
    sched.last_epoch = 40
    assert sched.step_count == 40
    assert opt.param_groups[0]["lr"] == pytest.approx(one_cycle(100, 0.1)["lr"](40))
    sched.last_epoch -= 41  # SequentialLR's "undo": not started, nothing written
    assert sched.last_epoch == -1 and opt.param_groups[0]["lr"] == pytest.approx(one_cycle(100, 0.1)["lr"](40))
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(one_cycle(100, 0.1)["lr"](0))
    for bad in (-2, 1.5, True):
        with pytest.raises(ValueError, match="last_epoch must be a whole number >= -1"):
            sched.last_epoch = bad


def test_step_zero_restarts_and_other_epochs_are_refused():
    opt = two_groups(momentum=0.9)
    sched = Scheduler(opt, one_cycle(100, 0.1))
    for _ in range(30):
        sched.step()
    sched.step(0)  # what SequentialLR calls in torch 2.1 to 2.8
    assert sched.last_epoch == 0 and opt.param_groups[0]["lr"] == pytest.approx(0.004)
    with pytest.raises(TypeError, match="takes no epoch"):
        sched.step(1)


# -- momentum on an optimizer built without it --------------------------------------------------------------


@pytest.mark.parametrize("key", ["momentum", "beta1"])
@pytest.mark.parametrize("opt_cls", [torch.optim.Adam, torch.optim.AdamW, torch.optim.NAdam])
def test_momentum_onto_adam_with_beta1_zero_is_refused_as_for_sgd(opt_cls, key):
    with pytest.raises(ValueError, match=r"built with betas\[0\] \(beta1\) = 0; scheduling momentum would switch "
                                         r"it on silently") as err:
        Scheduler(two_groups(opt_cls, betas=(0.0, 0.999)), {key: constant(0.9)})
    assert "Adam(params, lr, betas=(0.9, 0.999))" in str(err.value)
    assert "--set cycle_momentum=false" in str(err.value)


def test_the_momentum_zero_refusal_speaks_to_python_and_the_command_line():
    with pytest.raises(ValueError) as err:
        Scheduler(two_groups(momentum=0.0), {"momentum": constant(0.9)})
    message = str(err.value)
    assert "In Python, build the optimizer with momentum > 0 (e.g. SGD(params, lr, momentum=0.9))" in message
    assert "on the command line, pass --set cycle_momentum=false, or a momentum > 0" in message
