"""Accuracy of test-time augmentation schemes on saved speedrun models, side by side.

A model saved by ``superconverge speedrun --save-model PATH`` is evaluated once on each of
18 views of every image (shifted by -1, 0 or +1 pixel in each direction, reflection padded,
each also mirrored); each scheme then combines some of those logits:

    z = z(x) + z(flip x) + w * sum over shifts s of (z(x+s) + z(flip(x+s)))

``--scales 28 24`` adds views of the whole image downscaled to that many pixels a side (as the
recipe's low-resolution epochs see it), mirrored too, on top of cpu94's scheme at weight 1/2 or 1.

Because every scheme reads the same model on the same images, their differences are paired:
no training-seed noise, only which views are averaged. A second table gives cpu94's six views
applied selectively (the recipe key ``tta_translate_below``): only images whose flip-TTA logit
gap (top class minus runner-up, mean of the two views) is below a threshold get the four
translated views (of cpu94's scheme, or of ``--selective``'s); the rest keep the flip TTA answer.
It prints the share of images that need them (the evaluation time it costs) and the accuracy
against ``--baseline``'s views for every image (default cpu94's six, each of weight 1).
``--time-below T`` also times the package's evaluation (``evaluate_tta``) of each model with
all six views and with ``translate_below=T``, alternately, best of three. Choose on the held-out split
(``--holdout 5000``, the split the recipes were tuned on); the test set is for reporting.

    superconverge speedrun --holdout 5000 --save-model runs/tta/s0.pt ...
    python bench/speedrun_tta.py --data ../shared/datasets/cifar10-jpeg.tar.gz --holdout 5000 runs/tta/s0.pt
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from superconverge.speedrun import holdout_split
from superconverge.speedrun.run import evaluate_tta, load_model
from superconverge.train.augment import to_input
from superconverge.train.run import load_data
from superconverge.train.runtime import autocast, pick_device, resolve_precision

DIAGONAL = [(-1, -1), (1, 1)]
DIAGONALS = DIAGONAL + [(-1, 1), (1, -1)]
CROSS = [(0, -1), (0, 1), (-1, 0), (1, 0)]
CPU94 = "flip + 1 diagonal, w 1 (cpu94)"
SCHEMES: dict[str, tuple[list[tuple[int, int]], float]] = {
    "plain": ([], 0.0),
    "flip": ([], 0.0),
    "flip + 1 diagonal, w 1/2": (DIAGONAL, 0.5),
    "flip + 1 diagonal, w 3/4": (DIAGONAL, 0.75),
    CPU94: (DIAGONAL, 1.0),
    "flip + 2 diagonals, w 1/4": (DIAGONALS, 0.25),
    "flip + 2 diagonals, w 1/2": (DIAGONALS, 0.5),
    "flip + 4 neighbours, w 1/4": (CROSS, 0.25),
    "flip + all 8 shifts, w 1/8": (DIAGONALS + CROSS, 0.125),
    "flip + all 8 shifts, w 1/4": (DIAGONALS + CROSS, 0.25),
    "flip + all 8 shifts, w 1": (DIAGONALS + CROSS, 1.0),
}


@torch.no_grad()
def view_logits(net: torch.nn.Module, images: torch.Tensor, device: torch.device, precision: str,
                batch: int = 250) -> dict[tuple[int, int, bool], torch.Tensor]:
    """Logits of every (dy, dx, mirrored) view, dy and dx in {-1, 0, 1}."""
    out: dict[tuple[int, int, bool], list[torch.Tensor]] = {}
    for start in range(0, len(images), batch):
        x = to_input(images[start:start + batch]).to(device).contiguous(memory_format=torch.channels_last)
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                view = padded[..., 1 + dy:33 + dy, 1 + dx:33 + dx].contiguous(memory_format=torch.channels_last)
                for mirrored in (False, True):
                    with autocast(device, precision):  # type: ignore[arg-type]
                        z = net(view.flip(3) if mirrored else view).float().cpu()
                    out.setdefault((dy, dx, mirrored), []).append(z)
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def scaled_logits(net: torch.nn.Module, images: torch.Tensor, size: int, device: torch.device, precision: str,
                  batch: int = 250) -> torch.Tensor:
    """Logits of each image downscaled to ``size`` pixels a side, plus those of its mirror."""
    out = []
    for start in range(0, len(images), batch):
        x = to_input(images[start:start + batch]).to(device)
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):  # type: ignore[arg-type]
            out.append((net(x).float() + net(x.flip(3)).float()).cpu())
    return torch.cat(out)


def scheme_logits(views: dict[tuple[int, int, bool], torch.Tensor], name: str) -> torch.Tensor:
    if name not in SCHEMES:  # "cpu94 + S px, w V": cpu94's six views and the two at S px, weight V
        size, weight = name.removeprefix("cpu94 + ").split(" px, w ")
        return scheme_logits(views, CPU94) + float(weight) * views[int(size), 0, True]
    shifts, weight = SCHEMES[name]
    z = views[0, 0, False].clone()
    if name == "plain":
        return z
    z += views[0, 0, True]
    for dy, dx in shifts:
        z += weight * (views[dy, dx, False] + views[dy, dx, True])
    return z


def time_selective(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                   precision: str, translate: int, below: float, weight: float) -> None:
    """Print the time of ``evaluate_tta`` with every image translated and with ``translate_below=below``."""
    best: dict[float, float] = {0.0: float("inf"), below: float("inf")}
    out: dict[float, dict[str, float]] = {}
    for _ in range(3):
        for threshold in best:
            start = time.perf_counter()
            out[threshold] = evaluate_tta(net, images, labels, device=device, precision=precision, channels_last=True,
                                          translate=translate, translate_below=threshold, translate_weight=weight)
            best[threshold] = min(best[threshold], time.perf_counter() - start)
    for threshold, seconds in best.items():
        r = out[threshold]
        print(f"  evaluate_tta translate_below={threshold:g}: {seconds:.2f} s, {100 * r['translated_share']:.1f} % "
              f"translated, {100 * r['accuracy_tta_translate']:.2f} % (flip {100 * r['accuracy_tta']:.2f} %)")
    print(f"  selective / all: {best[below] / best[0.0]:.2f}x the time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="files written by speedrun --save-model")
    parser.add_argument("--data", required=True)
    parser.add_argument("--holdout", type=int, default=0, help="evaluate on this held-out split (seed 0)")
    parser.add_argument("--gaps", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0],
                        help="thresholds on the flip-TTA logit gap for the selective table")
    parser.add_argument("--selective", nargs="+", default=[CPU94], choices=list(SCHEMES)[2:],
                        help="the schemes whose translated views the selective tables apply below each gap")
    parser.add_argument("--baseline", default=CPU94, choices=list(SCHEMES),
                        help="the scheme the other rows are compared with (default: cpu94's)")
    parser.add_argument("--scales", type=int, nargs="*", default=[],
                        help="also try cpu94's views plus the whole image downscaled to these sizes")
    parser.add_argument("--time-below", type=float, default=0.0,
                        help="also time evaluate_tta with all six views and with translate_below at this gap")
    args = parser.parse_args()
    device = pick_device("auto")
    data = load_data(args.data)
    if args.holdout:
        data = holdout_split(data, args.holdout)
    images, labels = torch.from_numpy(data.test_images), torch.from_numpy(data.test_labels)
    where = f"{len(labels)} {'held-out' if args.holdout else 'test'} images"
    scaled = [f"cpu94 + {size} px, w {weight}" for size in args.scales for weight in (0.5, 1)]
    table: dict[str, list[float]] = {name: [] for name in [*SCHEMES, *scaled]}
    selective: dict[tuple[str, float], list[tuple[float, float]]] = {
        (name, gap): [] for name in args.selective for gap in args.gaps}
    for path in args.models:
        net, recipe = load_model(path, device)
        precision = resolve_precision(recipe.precision, device)
        start = time.perf_counter()
        views = view_logits(net, images, device, precision)
        print(f"{path}: 18 views of {where} in {time.perf_counter() - start:.1f} s ({precision})")
        for size in args.scales:
            views[size, 0, True] = scaled_logits(net, images, size, device, precision)
        for name in table:
            table[name].append(float((scheme_logits(views, name).argmax(1) == labels).float().mean()))
        if args.time_below:
            time_selective(net, images, labels, device, precision, recipe.tta_translate or 1, args.time_below,
                           recipe.tta_translate_weight)
        flip = scheme_logits(views, "flip")
        top2 = (flip / 2).topk(2, dim=1).values
        unsure = (top2[:, 0] - top2[:, 1])[:, None]
        for name, threshold in selective:
            chosen = torch.where(unsure < threshold, scheme_logits(views, name), flip)
            selective[name, threshold].append((float((unsure < threshold).float().mean()),
                                               float((chosen.argmax(1) == labels).float().mean())))
    base = table[args.baseline]
    print(f"\n| scheme | views | {' | '.join(args.models)} | mean | vs {args.baseline} | models up / down |")
    print("|---|---:|" + "---:|" * len(args.models) + "---:|---:|---:|")
    for name, accs in table.items():
        views = 1 if name == "plain" else 2 + 2 * len(SCHEMES[name][0]) if name in SCHEMES else 8
        mean = sum(accs) / len(accs)
        diff = mean - sum(base) / len(base)
        print(f"| {name} | {views} | " + " | ".join(f"{100 * a:.2f} %" for a in accs)
              + f" | {100 * mean:.2f} % | {100 * diff:+.2f} | {sum(a > b for a, b in zip(accs, base))} / "
              f"{sum(a < b for a, b in zip(accs, base))} |")

    for name in args.selective:
        print(f"\n{name}: its translated views only below a flip-TTA logit gap of")
        print(f"\n| gap | share of images | accuracy | vs {args.baseline} for every image |")
        print("|---:|---:|---:|---:|")
        for threshold in args.gaps:
            rows = selective[name, threshold]
            share = sum(r[0] for r in rows) / len(rows)
            acc = sum(r[1] for r in rows) / len(rows)
            diff = acc - sum(base) / len(base)
            print(f"| {threshold:g} | {100 * share:.1f} % | {100 * acc:.2f} % | {100 * diff:+.2f} |")


if __name__ == "__main__":
    main()
