"""What every `python -m vae_hub.X` command does first: parse, pin threads, and remember how it was called."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable

import torch


def start(prog: str, parse_args: Callable[[list[str]], argparse.Namespace],
          argv: list[str] | None) -> tuple[argparse.Namespace, str]:
    """Parse ``argv``, apply ``--threads`` if the command has it, and return the args and the command line
    (reports print it, so every generated number says how it was made)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return args, f"python -m {prog} " + " ".join(shlex.quote(a) for a in argv)
