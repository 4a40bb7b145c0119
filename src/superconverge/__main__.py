"""``python -m superconverge`` (what torchrun launches): the command line."""

from superconverge.cli import main

main()
