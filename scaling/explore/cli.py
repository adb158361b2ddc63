"""``scaling explore PATH... -o explorer.html``: one self-contained, interactive page from your runs and fits."""

from __future__ import annotations

import argparse
import sys

from scaling.explore import build_explorer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="results folder (runs/ and the fit.json of `scaling fit --json`) or a fit JSON; several = variants",
    )
    parser.add_argument("-o", "--output", default="explorer.html", help="HTML file to write (default explorer.html)")
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also log the page to W&B as an HTML artifact of the sweep (offline without credentials; "
        "WANDB_MODE=disabled skips it)",
    )
    parser.add_argument(
        "--wandb-project",
        metavar="P",
        default=None,
        help="W&B project (default: the runs' logging.project, else scaling-train's default)",
    )
    parser.add_argument(
        "--wandb-group",
        metavar="G",
        default=None,
        help="W&B group (default: the runs' experiment name, the group scaling-train logged them in)",
    )


def run(args: argparse.Namespace) -> int:
    out = build_explorer(args.paths, args.output)
    size = out.stat().st_size
    print(f"wrote {out} ({size / 1e6:.1f} MB, self-contained: open it in a browser, no network needed)")
    if args.wandb:
        from scaling.explore.wandb_artifact import log_explorer_of_sweep

        log_explorer_of_sweep(out, args.paths, project=args.wandb_project, group=args.wandb_group)
    elif args.wandb_project or args.wandb_group:
        print(
            "note: --wandb-project and --wandb-group only apply with --wandb; the page was not logged", file=sys.stderr
        )
    return 0
