import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from click.testing import CliRunner

from superconverge.cli import main
from superconverge.speedrun import Recipe, holdout_split, load_recipe, speedrun
from superconverge.optim.lookahead import Lookahead
from superconverge.speedrun.recipe import to_dict
from superconverge.speedrun.run import build, epoch_batches, evaluate_tta, load_model
from superconverge.train.augment import to_input
from superconverge.train.cifar import Cifar10
from superconverge.train.run import load_data

SMALL = Recipe(name="small", widths=(8, 16, 16), epochs=2, batch_size=500)


@pytest.fixture(scope="module")
def sample():
    return load_data("sample")


@pytest.fixture(scope="module")
def small(sample):
    """2,000 training and 500 test images of the sample: enough to learn something in seconds."""
    return Cifar10(sample.train_images[:2000], sample.train_labels[:2000], sample.test_images[:500],
                   sample.test_labels[:500])


def test_holdout_split_is_disjoint_and_never_uses_the_test_set(sample):
    split = holdout_split(sample, 1000)
    assert len(split.train_labels) == 4000 and len(split.test_labels) == 1000
    rows = lambda a: {r.tobytes() for r in a.reshape(len(a), -1)}  # noqa: E731
    assert not rows(split.train_images) & rows(split.test_images)
    assert rows(split.test_images) <= rows(sample.train_images)
    with pytest.raises(ValueError, match="holdout"):
        holdout_split(sample, 5000)


def test_schedule_scales_each_group_and_stops_the_whitening_bias(sample):
    recipe = SMALL.replace(epochs=10, whiten_bias_epochs=3)
    images = torch.from_numpy(sample.train_images)
    _, optimizer, sched = build(recipe, images, steps=100, seed=0, device=torch.device("cpu"))
    lrs = np.array([sched.values_at(t)["lr"] for t in range(100)])
    weights, biases, whiten = lrs.T
    assert weights[0] == pytest.approx(recipe.lr / recipe.div_factor)
    assert weights.max() == pytest.approx(recipe.lr) and weights.argmax() == 22  # pct_start 0.23 of 100
    assert weights[-1] == pytest.approx(recipe.lr * recipe.final_fraction)
    assert np.allclose(biases, weights * recipe.bias_lr_scale)
    assert np.allclose(whiten[:30], weights[:30]) and not whiten[30:].any()
    decays = [g["weight_decay"] for g in optimizer.param_groups]
    assert decays == pytest.approx([recipe.weight_decay, recipe.weight_decay / recipe.bias_lr_scale,
                                    recipe.weight_decay])


def test_whiten_eps_caps_the_gain_of_the_weakest_patch_directions(sample):
    images = torch.from_numpy(sample.train_images)
    gains = {}
    for eps in (5e-4, 5e-2):
        net, _, _ = build(SMALL.replace(whiten_eps=eps), images, steps=10, seed=0, device=torch.device("cpu"))
        w = net.whiten.weight.detach().reshape(SMALL.whiten_width, -1)
        gains[eps] = w.norm(dim=1)  # 1 / sqrt(eigenvalue + eps) per filter
    assert (gains[5e-2] < gains[5e-4]).all()
    assert gains[5e-2].max() <= 1 / 5e-2**0.5 + 1e-4
    # the strongest direction (eigenvalue ~10 on normalised images) hardly notices eps; the weakest is capped
    assert gains[5e-2][0] / gains[5e-4][0] > 0.99 and gains[5e-2][11] / gains[5e-4][11] < 0.5


def test_recipe_sets_the_architecture_and_muon_iterations(sample, tmp_path):
    images = torch.from_numpy(sample.train_images)
    recipe = SMALL.replace(optimizer="muon", convs=[2, 3, 2], muon_ns_steps=3)
    net, optimizer, _ = build(recipe, images, steps=10, seed=0, device=torch.device("cpu"))
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.body[2].modules()) == 3
    assert optimizer.param_groups[0]["ns_steps"] == 3 and optimizer.param_groups[0]["orthogonalize"]
    path = tmp_path / "model.pt"
    torch.save({"recipe": to_dict(recipe), "seed": 0, "state_dict": net.state_dict()}, path)
    loaded, again = load_model(path)
    assert again.convs == (2, 3, 2) and sum(p.numel() for p in loaded.parameters()) == sum(
        p.numel() for p in net.parameters())


def test_the_whitening_bias_stops_taking_gradients_when_its_lr_reaches_zero(sample):
    recipe = SMALL.replace(epochs=10, whiten_bias_epochs=3, lookahead_every=0)
    images = torch.from_numpy(sample.train_images)
    net, optimizer, sched = build(recipe, images, steps=100, seed=0, device=torch.device("cpu"))
    Lookahead(net, optimizer, lambda t: 0.0, every=5)  # another step hook runs after the freezing one
    x, y = to_input(images[:8]), torch.from_numpy(sample.train_labels[:8]).long()
    seen = []
    for _ in range(32):
        F.cross_entropy(net(x), y).backward()
        seen.append(net.whiten.bias.grad is not None)
        before = net.whiten.bias.detach().clone()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sched.step()
    assert seen == [True] * 30 + [False] * 2  # steps 0..29 learn (LR > 0), then no gradient at all
    assert torch.equal(net.whiten.bias, before)
    frozen = build(recipe.replace(whiten_bias_epochs=0), images, steps=100, seed=0, device=torch.device("cpu"))[0]
    assert not frozen.whiten.bias.requires_grad


def test_a_small_speedrun_learns_and_reports_its_figures(small):
    result = speedrun(SMALL.replace(batch_size=250, lookahead_every=0), small, seed=1, eval_each_epoch=True)
    assert result["steps"] == 2 * 8 and result["train_images"] == 2000 and result["test_images"] == 500
    assert 0.2 < result["test_accuracy_plain"] <= 1 and result["test_accuracy"] == result["test_accuracy_tta"]
    assert result["test_accuracy_tta_translate"] is None  # not asked for
    assert [r["epoch"] for r in result["per_epoch"]] == [1, 2]
    assert result["per_epoch"][-1]["accuracy"] == result["test_accuracy_plain"]  # same weights: no lookahead
    assert result["per_epoch"][0]["seconds"] < result["per_epoch"][1]["seconds"] <= result["train_seconds"]
    assert result["total_seconds"] == pytest.approx(result["train_seconds"] + result["eval_seconds"])
    assert result["train_flops"] > 0 and result["train_gflops_per_second"] > 0
    json.dumps(result)  # plain data


def test_translated_tta_averages_six_views(sample):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 10, 5), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    images, labels = torch.from_numpy(sample.test_images[:300]), torch.from_numpy(sample.test_labels[:300]).long()
    x = to_input(images)
    net(x)  # materialise the lazy layer
    out = evaluate_tta(net, images, labels, device=torch.device("cpu"), precision="fp32", channels_last=False,
                       batch_size=128, translate=2)
    with torch.no_grad():
        both = lambda v: (net(v) + net(v.flip(3))) / 2  # noqa: E731
        padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
        expect = both(x) / 2 + (both(padded[..., :32, :32]) + both(padded[..., 4:, 4:])) / 4
    assert out["accuracy_tta_translate"] == pytest.approx(float((expect.argmax(1) == labels).float().mean()))
    assert out["accuracy_tta"] == pytest.approx(float((both(x).argmax(1) == labels).float().mean()))
    plain = evaluate_tta(net, images, labels, device=torch.device("cpu"), precision="fp32", channels_last=False)
    assert set(plain) == {"accuracy", "accuracy_tta"} and plain["accuracy_tta"] == out["accuracy_tta"]
    whole = evaluate_tta(net, images, labels, device=torch.device("cpu"), precision="fp32", channels_last=False,
                         batch_size=len(images), translate=2)
    assert whole == pytest.approx(out)  # the batch size changes speed, not the figures


def test_translated_views_weighted(sample):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 10, 5), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    images, labels = torch.from_numpy(sample.test_images[:300]), torch.from_numpy(sample.test_labels[:300]).long()
    x = to_input(images)
    with torch.no_grad():
        net(x)
        pair = lambda v: net(v) + net(v.flip(3))  # noqa: E731
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        shifted = pair(padded[..., :32, :32]) + pair(padded[..., 2:, 2:])
        predicted = {w: (pair(x) + w * shifted).argmax(1) for w in (0.5, 3.0)}
    assert (predicted[0.5] != predicted[3.0]).any()  # the weight matters on these images
    for w, guess in predicted.items():
        out = evaluate_tta(net, images, labels, device=torch.device("cpu"), precision="fp32", channels_last=False,
                           translate=1, translate_weight=w)
        assert out["accuracy_tta_translate"] == pytest.approx(float((guess == labels).float().mean()))
    default = evaluate_tta(net, images, labels, device=torch.device("cpu"), precision="fp32", channels_last=False,
                           translate=1)
    assert default["accuracy_tta_translate"] == pytest.approx(float((predicted[0.5] == labels).float().mean()))


@pytest.mark.parametrize("channels_last", [False, True])
def test_translated_views_only_for_undecided_images(sample, channels_last):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 10, 5), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    images, labels = torch.from_numpy(sample.test_images[:300]), torch.from_numpy(sample.test_labels[:300]).long()
    x = to_input(images)
    net(x)
    kw = dict(device=torch.device("cpu"), precision="fp32", channels_last=channels_last, batch_size=128, translate=2)
    with torch.no_grad():
        both = lambda v: (net(v) + net(v.flip(3))) / 2  # noqa: E731
        padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
        flip = both(x)
        full = flip / 2 + (both(padded[..., :32, :32]) + both(padded[..., 4:, 4:])) / 4
    top2 = flip.topk(2, dim=1).values
    gap = top2[:, 0] - top2[:, 1]
    threshold = float(gap.median())
    out = evaluate_tta(net, images, labels, translate_below=threshold, **kw)
    unsure = gap < threshold
    expect = torch.where(unsure[:, None], full, flip)
    assert out["translated_share"] == pytest.approx(float(unsure.float().mean())) and 0 < out["translated_share"] < 1
    assert out["accuracy_tta_translate"] == pytest.approx(float((expect.argmax(1) == labels).float().mean()))
    everyone = evaluate_tta(net, images, labels, **kw)
    assert everyone["translated_share"] == 1.0
    assert evaluate_tta(net, images, labels, translate_below=float(gap.max()) + 1, **kw) == pytest.approx(everyone)
    nobody = evaluate_tta(net, images, labels, translate_below=float(gap.min()) / 2, **kw)
    assert nobody["translated_share"] == 0 and nobody["accuracy_tta_translate"] == nobody["accuracy_tta"]

def test_muon_takes_the_filters_and_sgd_the_rest(small):
    recipe = SMALL.replace(optimizer="muon", batch_size=250, lookahead_every=0)
    images = torch.from_numpy(small.train_images)
    net, optimizer, sched = build(recipe, images, steps=16, seed=0, device=torch.device("cpu"))
    filters, head, biases, whiten = optimizer.param_groups
    assert filters["orthogonalize"] and not any(g["orthogonalize"] for g in (head, biases, whiten))
    assert all(p.dim() == 4 for p in filters["params"]) and head["params"] == [net.head.weight]
    assert filters["lr"] == pytest.approx(recipe.muon_lr / recipe.div_factor)
    assert biases["lr"] == pytest.approx(recipe.lr * recipe.bias_lr_scale / recipe.div_factor)
    result = speedrun(recipe, small, seed=1)
    assert result["test_accuracy_plain"] > 0.2


def test_same_seed_same_result(small):
    recipe = SMALL.replace(epochs=1, batch_size=250, tta_translate=1)
    a, b = (speedrun(recipe, small, seed=3) for _ in range(2))
    assert a["test_accuracy_plain"] == b["test_accuracy_plain"]
    assert a["test_accuracy"] == a["test_accuracy_tta_translate"]  # the headline: the fullest TTA asked for


def test_cli_json_and_errors(tmp_path):
    runner = CliRunner()
    out = tmp_path / "r.json"
    args = ["speedrun", "--data", "sample", "--epochs", "1", "--set", "epochs=1", "--set", "widths=[8,16,16]",
            "--set", "batch_size=500",
            "--holdout", "1000", "--target", "0.1", "--json", "--out", str(out)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures == json.loads(out.read_text())
    for key in ("test_accuracy", "train_seconds", "total_seconds", "epochs"):
        assert key in figures
    assert figures["holdout"] == 1000 and figures["test_images"] == 1000 and figures["recipe"] == "cpu94*"
    assert figures["config"]["low_res_epochs"] == 0  # cpu94's low-resolution epochs scale to 0 of 1
    bad = runner.invoke(main, ["speedrun", "--data", "sample", "--set", "widht=[8,16,16]"])
    assert bad.exit_code == 2 and "did you mean 'widths'" in bad.output
    bad = runner.invoke(main, ["speedrun", "--data", "sample", "--recipe", "fastest"])
    assert bad.exit_code == 2 and "built-in recipes" in bad.output
    bad = runner.invoke(main, ["speedrun", "--data", "sample", "--epochs", "2", "--set", "epochs=3"])
    assert bad.exit_code == 2 and "--epochs 2 and --set epochs=3 disagree" in bad.output


def test_overrides_rename_only_a_changed_recipe():
    from superconverge.speedrun.run import with_overrides

    cpu94 = load_recipe("cpu94")
    same = with_overrides(cpu94, convs=list(cpu94.convs), epochs=cpu94.epochs, lr=cpu94.lr, translate=None)
    assert same == cpu94 and same.name == "cpu94"
    shorter = with_overrides(cpu94, epochs=6)
    assert shorter.name == "cpu94*" and shorter.epochs == 6
    assert shorter.low_res_epochs == round(cpu94.low_res_epochs * 6 / cpu94.epochs)
    assert with_overrides(cpu94, epochs=6, name="short").name == "short"


def test_progressive_resizing_downscales_early_epochs_only(small):
    from superconverge.speedrun.run import ResizedFeed
    from superconverge.train.feed import ArrayFeed

    images, labels = torch.from_numpy(small.train_images[:64]), torch.from_numpy(small.train_labels[:64])
    feed = ResizedFeed(ArrayFeed(images, labels, 32, shuffle=False), size=24, until_epoch=2)
    assert len(feed) == 2
    (x1, y1), _ = list(feed(1))
    (x2, y2), _ = list(feed(2))
    assert x1.shape == (32, 3, 24, 24) and x2.shape == (32, 3, 32, 32)
    assert x1.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y1, y2)
    # a downscaled image is the antialiased bilinear resize of the full one
    assert torch.allclose(x1, torch.nn.functional.interpolate(x2, size=24, mode="bilinear", antialias=True), atol=1e-5)
    result = speedrun(SMALL.replace(batch_size=250, low_res_epochs=1, epochs=2), small, seed=0)
    per_image = result["train_flops"] / result["train_images"]
    from superconverge.speedrun.net import SpeedNet, flops_per_image

    net = SpeedNet(SMALL.widths)
    assert per_image == pytest.approx(flops_per_image(net, 24)["train"] + flops_per_image(net, 32)["train"])


def test_crop_mode_cuts_random_windows_at_full_scale(small):
    from superconverge.speedrun.run import ResizedFeed
    from superconverge.train.feed import ArrayFeed

    images, labels = torch.from_numpy(small.train_images[:64]), torch.from_numpy(small.train_labels[:64])
    feed = ResizedFeed(ArrayFeed(images, labels, 32, shuffle=False), size=24, until_epoch=2, mode="crop", seed=3)
    (c1, _), (c1b, _) = list(feed(1))
    (full, _), _ = list(feed(2))
    assert c1.shape == (32, 3, 24, 24) and c1.is_contiguous(memory_format=torch.channels_last)
    # each window is an exact 24x24 piece of its image (found at some offset), not a resampling
    windows = full.unfold(2, 24, 1).unfold(3, 24, 1)  # (N, C, 9, 9, 24, 24)
    offsets = set()
    for i in range(len(c1)):
        hit = (windows[i] == c1[i][:, None, None]).flatten(3).all(-1).all(0)  # (9, 9)
        assert hit.any(), f"image {i} is not a window of its full-size image"
        offsets.add(tuple(torch.nonzero(hit)[0].tolist()))
    assert len(offsets) > 8  # offsets drawn per image, not one per batch
    # the same (seed, epoch, batch) gives the same windows, also when resuming mid-epoch
    (again, _), _ = list(feed(1))
    ((resumed, _),) = list(feed(1, start_batch=1))
    assert torch.equal(c1, again) and torch.equal(c1b, resumed)
    (other, _), _ = list(ResizedFeed(feed.feed, 24, 2, "crop", seed=4)(1))
    assert not torch.equal(c1, other)
    with pytest.raises(ValueError, match="low_res_mode"):
        SMALL.replace(low_res_mode="shrink")


def test_saved_model_reloads_to_the_reported_accuracy(tmp_path, sample):
    from superconverge.speedrun.run import load_model

    path = tmp_path / "net.pt"
    args = ["speedrun", "--data", "sample", "--epochs", "1", "--set", "epochs=1", "--set", "widths=[8,16,16]",
            "--set", "batch_size=500",
            "--holdout", "1000", "--json", "--quiet", "--save-model", str(path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    net, recipe = load_model(path)
    assert recipe.widths == (8, 16, 16) and recipe.epochs == 1
    held = holdout_split(sample, 1000)
    again = evaluate_tta(net, torch.from_numpy(held.test_images), torch.from_numpy(held.test_labels),
                         device=torch.device("cpu"), precision=figures["precision"],
                         channels_last=recipe.channels_last, translate=recipe.tta_translate,
                         translate_below=recipe.tta_translate_below, translate_weight=recipe.tta_translate_weight)
    assert again["accuracy"] == figures["test_accuracy_plain"]
    assert again["accuracy_tta_translate"] == figures["test_accuracy_tta_translate"]
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a model saved by a speedrun"):
        load_model(tmp_path / "other.pt")


def test_skipping_easy_images_shortens_later_epochs_and_counts_them(small):
    recipe = SMALL.replace(epochs=3, batch_size=250, skip_easy=0.25, skip_from_epoch=1, lookahead_every=0)
    assert epoch_batches(recipe, 2000) == [8, 6, 6]
    result = speedrun(recipe, small, seed=1, eval_each_epoch=True)
    assert result["steps"] == 20 and result["test_accuracy_plain"] > 0.2
    full = speedrun(recipe.replace(skip_easy=0.0), small, seed=1)
    assert result["train_flops"] == pytest.approx(full["train_flops"] * (2000 + 2 * 1500) / 6000)


def test_a_middle_resolution_stage_sits_between_the_low_and_the_full(small):
    from superconverge.speedrun.net import SpeedNet, flops_per_image
    from superconverge.speedrun.run import epoch_size

    recipe = SMALL.replace(batch_size=250, epochs=4, low_res_epochs=1, mid_res_epochs=2, mid_res=28)
    assert [epoch_size(recipe, e) for e in range(4)] == [24, 28, 28, 32]
    sizes = []
    result = speedrun(recipe, small, seed=0, eval_each_epoch=True,
                      on_epoch=lambda row: sizes.append(row["epoch"]))
    assert sizes == [1, 2, 3, 4] and result["test_accuracy_plain"] > 0.2
    net = SpeedNet(SMALL.widths)
    # the whitening bias learns for the first 3 epochs: the input's gradient is counted there only
    learning = {s: flops_per_image(net, s)["train"] for s in (24, 28)}
    net.whiten.bias.requires_grad_(False)
    frozen = flops_per_image(net, 32)["train"]
    expected = learning[24] + 2 * learning[28] + frozen
    assert result["train_flops"] / result["train_images"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="mid_res_epochs"):
        SMALL.replace(epochs=3, low_res_epochs=1, mid_res_epochs=2)


def test_stacked_resized_feeds_give_each_epoch_its_stage(small):
    from superconverge.speedrun.run import ResizedFeed
    from superconverge.train.feed import ArrayFeed

    images, labels = torch.from_numpy(small.train_images[:64]), torch.from_numpy(small.train_labels[:64])
    full = ArrayFeed(images, labels, 32, shuffle=False)
    feed = ResizedFeed(ResizedFeed(full, 24, until_epoch=1), 28, until_epoch=3, from_epoch=1)
    assert [next(iter(feed(e)))[0].shape[-1] for e in range(4)] == [24, 28, 28, 32]
    x28, x32 = next(iter(feed(1)))[0], next(iter(full(1)))[0]
    assert torch.allclose(x28, F.interpolate(x32, size=28, mode="bilinear", antialias=True), atol=1e-5)
