"""Run by test_distributed.py under torchrun: the same fit, data-parallel over the ranks."""

from __future__ import annotations

import sys

import torch

from superconverge.schedules import one_cycle
from superconverge.train import distributed
from superconverge.train.feed import ArrayFeed
from superconverge.train.loop import FitOptions, fit


def main(out: str) -> None:
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from test_loop import blobs, mlp

    torch.set_num_threads(1)
    assert distributed.setup_from_env() and distributed.world() == 2
    images, labels = blobs()
    feed = ArrayFeed(images, labels, 32, seed=1)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = fit(model, opt, one_cycle(2 * len(feed), 0.05), feed, epochs=2,
                  test=ArrayFeed(*blobs(seed=5), 64, shuffle=False),
                  options=FitOptions(progress=False, precision="fp32"))
    torch.save({"model": model.state_dict(), "epochs": history.epochs}, f"{out}.rank{distributed.rank()}")
    torch.distributed.barrier()  # both ranks done before either tears gloo down
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
