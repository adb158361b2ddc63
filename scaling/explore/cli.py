"""``scaling explore PATH... -o explorer.html``: one self-contained, interactive page from your runs and fits."""

from __future__ import annotations

import argparse

from scaling.explore import build_explorer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="results folder (runs/ and the fit.json of `scaling fit --json`) or a fit JSON; several = variants",
    )
    parser.add_argument("-o", "--output", default="explorer.html", help="HTML file to write (default explorer.html)")


def run(args: argparse.Namespace) -> int:
    out = build_explorer(args.paths, args.output)
    size = out.stat().st_size
    print(f"wrote {out} ({size / 1e6:.1f} MB, self-contained: open it in a browser, no network needed)")
    return 0
