import pytest

from superconverge.speedrun import builtin_names, load_recipe
from superconverge.speedrun.recipe import Recipe, from_dict, to_dict


def test_builtin_recipes_load_and_round_trip():
    assert {"airbench94", "cpu94"} <= set(builtin_names())
    for name in builtin_names():
        recipe = load_recipe(name)
        assert recipe.name == name
        assert from_dict(to_dict(recipe)) == recipe


def test_reference_recipe_holds_the_published_settings():
    r = load_recipe("airbench94")
    assert (r.widths, r.batch_size, r.momentum, r.label_smoothing) == ((64, 256, 256), 1024, 0.85, 0.2)
    # 11.5 "per kilostep" (summed loss over 1024 images, momentum 0.85) is 1.5 for the mean loss
    assert r.lr == pytest.approx(11.5 / (1 + 1 / (1 - 0.85)), rel=1e-2)


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ValueError, match="did you mean 'batch_size'"):
        from_dict({"batchsize": 512})


def test_unknown_recipe_name_suggests_the_closest():
    with pytest.raises(ValueError, match="did you mean 'cpu94'"):
        load_recipe("cpu49")


def test_recipe_from_a_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nwidths = [8, 16, 16]\nepochs = 2\n')
    assert load_recipe(path) == Recipe(name="mine", widths=(8, 16, 16), epochs=2)
    with pytest.raises(FileNotFoundError):
        load_recipe(tmp_path / "missing.toml")


@pytest.mark.parametrize("bad", [{"widths": (8, 16)}, {"pct_start": 1.0}, {"momentum": 1.0},
                                 {"flip": "sometimes"}, {"whiten_width": 30}, {"epochs": 0},
                                 {"tta_translate": 5}, {"tta": False, "tta_translate": 1},
                                 {"tta_translate_below": -0.5}, {"tta_translate_below": float("nan")},
                                 {"tta_translate_weight": 0}, {"tta_translate_weight": float("inf")},
                                 {"skip_easy": 0.6}, {"skip_easy": -0.1}, {"skip_from_epoch": 0},
                                 {"whiten_eps": 0}, {"whiten_eps": float("inf")}, {"convs": (2, 2)},
                                 {"convs": (2, 0, 2)}, {"muon_ns_steps": 0}])
def test_invalid_values_are_rejected(bad):
    with pytest.raises(ValueError, match="recipe"):
        Recipe(**bad)
