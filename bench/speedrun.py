"""The speedrun record the way fast-training records are reported: several seeds, mean and spread.

Runs ``superconverge speedrun --json`` once per seed, each in a fresh process, alone on
the machine, and prints mean +- std of test accuracy (plain, with flip TTA and with flip +
translate TTA when the recipe asks for it), the median training, evaluation and total time, and
seconds/accuracy per epoch when measured; ``--markdown`` prints the per-seed table for
docs/SPEEDRUN.md instead.
Results are kept per seed in ``--results`` so an interrupted bench resumes (only with
results of the same recipe settings: a changed setting stops with a message instead of reusing them;
keys added to the recipe format after a result was kept count as their defaults there).

    python bench/speedrun.py --data ../shared/datasets/cifar10-jpeg.tar.gz --seeds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path

from superconverge.speedrun import Recipe, load_recipe
from superconverge.speedrun.recipe import to_dict
from superconverge.speedrun.run import with_overrides


def recipe_config(args: argparse.Namespace) -> dict:
    """The recipe the runs will train (with ``--set`` applied), as the runs record it."""
    changes: dict = {}
    for item in args.set:
        changes.update(tomllib.loads(item))
    return to_dict(with_overrides(load_recipe(args.recipe), **changes))


def different_keys(kept: dict, config: dict) -> list[str]:
    """Recipe keys whose values differ; a key newer than the kept run counts as its default there.
    The recipe's name and description are labels, not settings, and do not count."""
    defaults = to_dict(Recipe())
    return sorted(k for k in (config.keys() | kept.keys()) - {"name", "description"}
                  if kept.get(k, defaults.get(k)) != config.get(k, defaults.get(k)))


def run_seed(args: argparse.Namespace, seed: int, path: Path, config: dict) -> dict:
    if path.is_file():  # resume, but only with results of the same recipe
        kept = json.loads(path.read_text())
        changed = different_keys(kept.get("config", {}), config)
        if changed:
            sys.exit(f"{path} holds a run of a different recipe (differs in: {', '.join(changed)}); "
                     f"move it away or pass another --results folder")
        return kept
    cmd = [sys.executable, "-m", "superconverge", "speedrun", "--data", args.data, "--recipe", args.recipe,
           "--seed", str(seed), "--out", str(path), "--json", "--quiet"]
    cmd += ["--holdout", str(args.holdout)] if args.holdout else []
    cmd += ["--eval-each-epoch"] if args.eval_each_epoch else []
    for item in args.set:
        cmd += ["--set", item]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(path.read_text())


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.2f} +- {100 * std:.2f} %"


def markdown_table(results: list[dict]) -> str:
    """One row per seed and a mean +- std / median row, as docs/SPEEDRUN.md shows the record."""
    translate = results[0].get("test_accuracy_tta_translate") is not None
    flip = results[0]["test_accuracy_tta"] is not None
    head = ["seed", "plain"] + (["flip TTA"] if flip else []) + (
        ["flip + translate TTA", "images translated"] if translate else []) + ["train s", "eval s", "total s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in results:
        row = [str(r["seed"]), f"{100 * r['test_accuracy_plain']:.2f} %"]
        row += [f"{100 * r['test_accuracy_tta']:.2f} %"] if flip else []
        row += [f"{100 * r['test_accuracy_tta_translate']:.2f} %",
                f"{100 * r['tta_translated_share']:.1f} %"] if translate else []
        row += [f"{r[k]:.1f}" for k in ("train_seconds", "eval_seconds", "total_seconds")]
        lines.append("| " + " | ".join(row) + " |")
    summary = [f"**{results[0]['recipe']}, {len(results)} seeds**",
               f"**{spread([r['test_accuracy_plain'] for r in results])}**"]
    summary += [spread([r["test_accuracy_tta"] for r in results])] if flip else []
    summary += [f"**{spread([r['test_accuracy_tta_translate'] for r in results])}**", ""] if translate else []
    summary += [f"median {statistics.median(r[k] for r in results):.1f}"
                for k in ("train_seconds", "eval_seconds")]
    summary += [f"median **{statistics.median(r['total_seconds'] for r in results):.1f}**"]
    lines.append("| " + " | ".join(summary) + " |")
    rates = [r["train_gflops_per_second"] for r in results]
    lines.append(f"\n{results[0]['train_flops'] / 1e12:.1f} TFLOP of training per run at a median "
                 f"{statistics.median(rates):.0f} GFLOP/s ({min(rates):.0f}-{max(rates):.0f} per seed).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--recipe", default="cpu94")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--holdout", type=int, default=0)
    parser.add_argument("--eval-each-epoch", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--results", default="runs/bench-speedrun")
    parser.add_argument("--markdown", action="store_true", help="print the per-seed table for docs/SPEEDRUN.md")
    args = parser.parse_args()

    tag = args.recipe.replace("/", "_") + "".join(f"_{s}" for s in args.set) + (f"_holdout{args.holdout}"
                                                                                   if args.holdout else "")
    folder = Path(args.results) / tag.replace(" ", "").replace("=", "-")
    folder.mkdir(parents=True, exist_ok=True)
    config = recipe_config(args)
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = run_seed(args, seed, folder / f"seed{seed}.json", config)
        results.append(r)
        if args.markdown:
            continue
        tta = r["test_accuracy_tta"]
        print(f"seed {seed}: {100 * r['test_accuracy_plain']:.2f} % plain, "
              + (f"{100 * tta:.2f} % TTA, " if tta is not None else "")
              + (f"{100 * r['test_accuracy_tta_translate']:.2f} % TTA+translate, "
                 if r.get("test_accuracy_tta_translate") is not None else "")
              + f"train {r['train_seconds']:.1f} s, total {r['total_seconds']:.1f} s", flush=True)

    if args.markdown:
        print(markdown_table(results))
        return
    first = results[0]
    where = "held-out split" if args.holdout else "test set"
    print(f"\nrecipe {first['recipe']} ({first['epochs']} epochs, {first['device']}, {first['precision']}, "
          f"{first['threads']} threads), {len(results)} seeds, {where}:")
    print(f"  accuracy plain     {spread([r['test_accuracy_plain'] for r in results])}")
    if first["test_accuracy_tta"] is not None:
        print(f"  accuracy flip TTA  {spread([r['test_accuracy_tta'] for r in results])}")
    if first.get("test_accuracy_tta_translate") is not None:
        print(f"  flip+translate TTA {spread([r['test_accuracy_tta_translate'] for r in results])}")
    print(f"  train seconds      median {statistics.median(r['train_seconds'] for r in results):.1f} "
          f"(min {min(r['train_seconds'] for r in results):.1f}, max {max(r['train_seconds'] for r in results):.1f})")
    print(f"  eval seconds       median {statistics.median(r['eval_seconds'] for r in results):.1f}")
    print(f"  total seconds      median {statistics.median(r['total_seconds'] for r in results):.1f}")
    print(f"  training FLOPs     {first['train_flops'] / 1e12:.1f} TFLOP, "
          f"median {statistics.median(r['train_gflops_per_second'] for r in results):.0f} GFLOP/s")
    if first["per_epoch"] and "accuracy" in first["per_epoch"][0]:
        print("  per epoch (seconds / plain accuracy, mean over seeds):")
        for i, row in enumerate(first["per_epoch"]):
            secs = statistics.fmean(r["per_epoch"][i]["seconds"] for r in results)
            acc = statistics.fmean(r["per_epoch"][i]["accuracy"] for r in results)
            print(f"    epoch {row['epoch']:>2}: {secs:7.1f} s  {100 * acc:.2f} %")


if __name__ == "__main__":
    main()
