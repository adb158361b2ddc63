"""The ``scaling`` command: one entry point with a subcommand per stage.

Each subcommand lives in its own module exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported lazily
so that ``scaling plan`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from scaling.errors import report_user_errors

SUBCOMMANDS: dict[str, str] = {
    "plan": "scaling.plan.cli",
    "fit": "scaling.fit.cli",
    "collect": "scaling.collect",
    "prepare": "scaling.data.prepare_cli",
    "compare": "scaling.compare",
    "explore": "scaling.explore.cli",
}


def _build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(prog="scaling", description="Measure, fit and plan neural scaling laws.")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, object] = {}
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, module_name in SUBCOMMANDS.items():
        # Import only the chosen subcommand (or all of them for --help).
        if wanted is not None and wanted in SUBCOMMANDS and wanted != name:
            subs.add_parser(name)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                continue  # subcommand not installed in this build
            raise
        sub = subs.add_parser(name, help=module.HELP, description=module.HELP)
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
