"""Study specs: the built-ins resolve at every scale, expansion and hashing, and clear errors for bad input."""

from __future__ import annotations

import dataclasses

import pytest

from superconverge.studies.budget import study_seconds
from superconverge.studies.spec import SCALES, SpecError, builtin_names, expand, load_raw, load_spec, resolve

BUILTINS = ["batch-size", "cyclical-momentum", "forgetting-vs-curvature", "lr-momentum-grid", "optimizers",
            "schedulers", "super-convergence", "weight-decay-finder"]


def minimal(**changes):
    raw = {"name": "t", "claim": "c.", "design": "d.", "base": {"model": "tiny", "epochs": 1},
           "arms": [{"name": "a", "max_lr": 0.1}, {"name": "b", "max_lr": 0.2}],
           "verdict": [{"a": "a", "b": "b", "metric": "test_accuracy", "expect": "higher"}]}
    raw.update(changes)
    return raw


def test_the_eight_builtin_studies_are_shipped():
    assert builtin_names() == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("scale", SCALES)
def test_every_builtin_resolves_and_expands_at_every_scale(name, scale):
    spec = load_spec(name, scale)
    runs = expand(spec)
    assert runs and len({r.hash for r in runs}) == len(runs)
    assert spec.claim.endswith(".") and spec.claim.count(". ") == 0  # one sentence
    if scale == "smoke":
        assert {r.config["model"] for r in runs} == {"tiny"} and spec.seeds == 1
        assert all(r.config.get("train_subset", 5000) <= 500 and r.config["epochs"] <= 2 for r in runs)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", BUILTINS)
def test_cpu_scale_fits_about_an_hour_on_two_cores(name, precision):
    minutes = study_seconds(expand(load_spec(name, "cpu")), auto=precision) / 60
    assert 5 < minutes <= 60


def test_the_estimate_uses_the_precision_auto_resolves_to_here():
    from superconverge.train.runtime import pick_device, resolve_precision

    runs = expand(load_spec("batch-size", "cpu"))
    here = resolve_precision("auto", pick_device("cpu"))
    assert study_seconds(runs) == study_seconds(runs, auto=here)
    assert study_seconds(runs, auto="bf16") < study_seconds(runs, auto="fp32") / 1.4  # ResNet-20: 750 vs 518 img/s
    pinned = [dataclasses.replace(r, config={**r.config, "precision": "fp32"}) for r in runs]
    assert study_seconds(pinned, auto="bf16") == study_seconds(runs, auto="fp32")  # a run's own precision wins


def test_grid_is_crossed_with_every_arm_and_seeds():
    runs = expand(resolve(minimal(grid={"weight_decay": [1e-4, 1e-3]}, seeds=2), "smoke"))
    assert len(runs) == 2 * 2 * 2
    assert runs[0].label == "a weight_decay=0.0001" and runs[0].seed == 0 and runs[-1].seed == 1
    assert [r.position for r in runs] == list(range(8))


def test_scale_overlay_merges_base_grid_arms_and_seeds():
    raw = minimal(grid={"weight_decay": [1e-4, 1e-3]},
                  scale={"cpu": {"seeds": 3, "base": {"epochs": 5}, "grid": {"weight_decay": [0.1]},
                                 "arms": {"b": {"max_lr": 0.3}}}})
    spec = resolve(raw, "cpu")
    runs = expand(spec)
    assert spec.seeds == 3 and len(runs) == 2 * 1 * 3
    assert {r.config["epochs"] for r in runs} == {5}
    assert {r.config["max_lr"] for r in runs if r.arm == "b"} == {0.3}


def test_hash_ignores_threads_and_changes_with_the_config():
    a = expand(resolve(minimal(), "smoke"))
    b = expand(resolve(minimal(base={"model": "tiny", "epochs": 1, "threads": 7}), "smoke"))
    c = expand(resolve(minimal(base={"model": "tiny", "epochs": 2}), "smoke"))
    assert [r.hash for r in a] == [r.hash for r in b]
    assert not {r.hash for r in a} & {r.hash for r in c}


def test_batch_scaling_rules():
    raw = minimal(base={"model": "tiny", "max_lr": 0.4, "weight_decay": 5e-4, "reference_batch": 128},
                  arms=[{"name": "a", "batch_size": 128}, {"name": "lin", "batch_size": 512, "batch_scaling": "linear"},
                        {"name": "b", "batch_size": 512, "batch_scaling": "sqrt"}])
    runs = {r.arm: r.config for r in expand(resolve(raw, "smoke"))}
    assert runs["lin"]["max_lr"] == pytest.approx(1.6) and runs["lin"]["weight_decay"] == pytest.approx(5e-4)
    assert runs["b"]["max_lr"] == pytest.approx(0.8) and runs["b"]["weight_decay"] == pytest.approx(1e-3)


def test_unknown_config_key_names_the_closest():
    with pytest.raises(SpecError, match="unknown config key 'max_lrr'.*did you mean 'max_lr'"):
        resolve(minimal(base={"max_lrr": 0.1}), "smoke")


def test_unknown_top_level_key():
    with pytest.raises(SpecError, match="unknown top-level key 'gird'.*did you mean 'grid'"):
        resolve(minimal(gird={}), "smoke")


def test_empty_grid_is_an_error():
    with pytest.raises(SpecError, match=r"\[grid\] of study t is empty"):
        resolve(minimal(grid={}), "smoke")
    with pytest.raises(SpecError, match="weight_decay must be a non-empty list"):
        resolve(minimal(grid={"weight_decay": []}), "smoke")
    with pytest.raises(SpecError, match="grid of arm 'a' of study t is empty"):
        resolve(minimal(arms=[{"name": "a", "grid": {}}]), "smoke")


def test_unknown_study_suggests_the_closest():
    with pytest.raises(SpecError, match="unknown study 'super-convergance'; did you mean 'super-convergence'"):
        load_raw("super-convergance")


def test_unknown_scale_and_arm_errors():
    with pytest.raises(SpecError, match="unknown scale 'cpus'.*did you mean 'cpu'"):
        resolve(minimal(), "cpus")
    with pytest.raises(SpecError, match=r"\[scale.cpu.arms.c\] names no arm"):
        resolve(minimal(scale={"cpu": {"arms": {"c": {"epochs": 2}}}}), "cpu")
    with pytest.raises(SpecError, match="verdict names arm 'bb'.*did you mean 'b'"):
        resolve(minimal(verdict=[{"a": "a", "b": "bb", "metric": "test_accuracy", "expect": "higher"}]), "smoke")


def test_unknown_verdict_key_names_the_closest():
    typo = {"a": "a", "b": "b", "metric": "test_accuracy", "expect": "higher", "marign": 0.01}
    with pytest.raises(SpecError, match=r"unknown key 'marign' in a compare \[\[verdict.*did you mean 'margin'"):
        resolve(minimal(verdict=[typo]), "smoke")
    with pytest.raises(SpecError, match=r"unknown key 'tolerence' in a wd-pick \[\[verdict.*did you mean 'tolerance'"):
        resolve(minimal(verdict=[{"check": "wd-pick", "tolerence": 0.1}]), "smoke")


def test_unknown_metric_names_the_closest():
    check = {"a": "a", "b": "b", "metric": "test_acuracy", "expect": "higher"}
    with pytest.raises(SpecError, match=r"metric 'test_acuracy' in a \[\[verdict.*did you mean 'test_accuracy'"):
        resolve(minimal(verdict=[check]), "smoke")
    check = {"a": "a", "a_metric": "test_loss", "b_metric": "train_los", "expect": "lower"}
    with pytest.raises(SpecError, match="unknown metric 'train_los'.*did you mean 'train_loss'"):
        resolve(minimal(verdict=[check]), "smoke")
    with pytest.raises(SpecError, match="unknown metric 'val_nosie' in metrics of study t.*did you mean 'val_noise'"):
        resolve(minimal(metrics=["test_accuracy", "val_nosie"]), "smoke")
    with pytest.raises(SpecError, match=r"unknown metric 'recent_loss' .*\(runs need measure = \['forgetting'\]"):
        resolve(minimal(metrics=["recent_loss"]), "smoke")
    measured = minimal(base={"model": "tiny", "epochs": 1, "measure": ["forgetting"]}, metrics=["recent_loss"])
    assert resolve(measured, "smoke").metrics == ("recent_loss",)
    assert resolve(minimal(metrics=["weight_decay", "val_noise"]), "smoke").metrics  # config values, derived


def test_no_arms_is_an_error():
    with pytest.raises(SpecError, match="arms is empty, so the study has no runs"):
        resolve(minimal(arms=[], verdict=[{"check": "wd-pick"}]), "smoke")


def test_bad_values_and_duplicate_runs_are_errors():
    with pytest.raises(SpecError, match="arm 'a'.*epochs must be a positive whole number"):
        expand(resolve(minimal(arms=[{"name": "a", "epochs": 0}, {"name": "b"}]), "smoke"))
    with pytest.raises(SpecError, match="compute the same thing"):
        expand(resolve(minimal(arms=[{"name": "a"}, {"name": "b"}]), "smoke"))
    with pytest.raises(SpecError, match="unknown measure 'forgeting'"):
        resolve(minimal(base={"measure": ["forgeting"]}), "smoke")


def test_spec_file_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nclaim = "x."\ndesign = "y."\n[[verdict]]\na = "base"\nmetric = "test_accuracy"\n'
                    'expect = "not-lower"\n')
    assert expand(load_spec(path, "smoke"))[0].arm == "base"
    with pytest.raises(SpecError, match="does not exist"):
        load_raw(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("name = ")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_raw(tmp_path / "bad.toml")


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("scale", SCALES)
def test_every_run_builds_its_schedule(name, scale):
    """Catch a schedule that cannot be built (too few warm-up steps, bad args) before hours are spent."""
    import math

    from superconverge.train.recipe import build_policy, from_dict

    for run in expand(load_spec(name, scale)):
        config = from_dict(run.config)
        n = config.train_subset or (5000 if config.data == "sample" else 50000)
        build_policy(config, math.ceil(min(n, 50000) / config.batch_size))
