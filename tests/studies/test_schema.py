import pytest

from superconverge.studies.schema import (MEASURED, RUN_METRICS, SpecError, check_config_keys, check_grid, check_keys,
                                          check_metric, check_verdict, metrics_produced)


def test_unknown_keys_are_named_with_the_closest_known_one():
    with pytest.raises(SpecError, match=r"unknown top-level key 'armz' \(did you mean 'arms'\?\)"):
        check_keys({"armz": []}, ("arms", "grid"), "top-level key")
    with pytest.raises(SpecError, match=r"unknown config key 'max_lrr'.*did you mean 'max_lr'"):
        check_config_keys({"max_lrr": 0.1}, "[base]")
    with pytest.raises(SpecError, match="unknown measure 'lr-find'"):
        check_config_keys({"measure": ["lr-find"]}, "[base]")


def test_a_grid_needs_non_empty_lists():
    assert check_grid({"max_lr": [0.1, 0.2]}, "[grid]") == {"max_lr": (0.1, 0.2)}
    with pytest.raises(SpecError, match="max_lr must be a non-empty list"):
        check_grid({"max_lr": 0.1}, "[grid]")


def test_measured_metrics_exist_only_when_measured():
    plain = metrics_produced([{}])
    measured = metrics_produced([{}, {"measure": ["lr_find"]}])
    assert set(RUN_METRICS) <= set(plain) and not set(MEASURED["lr_find"]) & set(plain)
    assert set(MEASURED["lr_find"]) <= set(measured)
    with pytest.raises(SpecError, match=r"runs need measure = \['lr_find'\]"):
        check_metric("lr_find_suggestion", plain, "metrics")
    check_metric("lr_find_suggestion", measured, "metrics")


def test_a_verdict_check_names_real_arms_and_an_expectation():
    produced = metrics_produced([{}])
    check = {"a": "x", "b": "y", "metric": "test_accuracy", "expect": "higher"}
    assert check_verdict(check, {"x", "y"}, produced, "s")["check"] == "compare"
    with pytest.raises(SpecError, match="verdict names arm 'z', which does not exist"):
        check_verdict({**check, "b": "z"}, {"x", "y"}, produced, "s")
    with pytest.raises(SpecError, match="expect must be one of"):
        check_verdict({**check, "expect": "up"}, {"x", "y"}, produced, "s")
