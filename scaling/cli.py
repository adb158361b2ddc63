"""The ``scaling`` command: one entry point with a subcommand per stage.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; its one-line help is in :data:`SUBCOMMANDS`. Only the chosen
subcommand's module is imported, so ``scaling plan`` does not pay for importing
torch and ``scaling --help`` imports none of them (about 0.1 s instead of 1-2 s).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NamedTuple

from scaling.errors import OneLineArgumentParser, report_user_errors


class Subcommand(NamedTuple):
    """Where a subcommand lives and its one-line help (here, so that ``scaling --help`` imports nothing)."""

    module: str
    help: str


SUBCOMMANDS: dict[str, Subcommand] = {
    "plan": Subcommand(
        "scaling.plan.cli",
        "Plan a run for a FLOP budget: compute-optimal N and D, a model shape, GPU-hours (published or fitted law).",
    ),
    "predict": Subcommand(
        "scaling.plan.predict",
        "Predict the loss (with its 95% CI) of a fitted law at given N, D: rows of a CSV or --n/--d.",
    ),
    "fit": Subcommand(
        "scaling.fit.cli", "Fit Kaplan and Chinchilla (Approaches 1-3) scaling laws to run records or a CSV."
    ),
    "collect": Subcommand(
        "scaling.collect", "Collect run records (or finished W&B runs) into one Parquet/CSV table for fitting."
    ),
    "prepare": Subcommand(
        "scaling.data.prepare_cli",
        "Tokenize a Hugging Face dataset (hub or local files) into sharded token memmaps for training.",
    ),
    "compare": Subcommand(
        "scaling.compare", "Compare fitted laws (scaling fit --json files) with bootstrap uncertainty."
    ),
    "explore": Subcommand(
        "scaling.explore.cli",
        "Write one self-contained HTML page (offline, no server) to explore your runs, fits and plans.",
    ),
}


def _build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = OneLineArgumentParser(prog="scaling", description="Measure, fit and plan neural scaling laws.")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, object] = {}
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, text) in SUBCOMMANDS.items():
        # Import only the chosen subcommand: `scaling --help` lists them all from SUBCOMMANDS alone.
        if wanted != name:
            subs.add_parser(name, help=text.replace("%", "%%"), description=text)  # help is %-formatted
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue  # subcommand not installed in this build
            raise
        sub = subs.add_parser(name, help=text.replace("%", "%%"), description=text)  # help is %-formatted
        module.add_arguments(sub)
        modules[name] = module
    return parser, modules


@report_user_errors
def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand."""
    argv = sys.argv[1:] if argv is None else argv
    parser, modules = _build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(modules[args.command].run(args) or 0)  # type: ignore[attr-defined]


if __name__ == "__main__":
    raise SystemExit(main())
