"""``scaling prepare``: the command line of the corpus preparation pipeline.

Flags become ``data.<key>=...`` overrides of a ``scaling/configs/data`` preset
(``hf`` when none is given), composed by Hydra, so a command line describes the
same ``data`` node a training run would and the schema checks it; the result is
handed to :func:`scaling.data.prepare.prepare_corpus`. Kept apart from the
pipeline because training runs that pipeline too (``ensure_prepared``) and has
no command line: each file then holds one job.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scaling.config import HFDataConfig
from scaling.data.hf import SourceSpec
from scaling.data.prepare import prepare_corpus, source_stem
from scaling.data.settings import data_overrides, load_preset
from scaling.data.shards import open_prepared, read_manifest
from scaling.errors import ScalingError

_CLI_KEYS = {
    "name": "name",
    "path": "path",
    "data_files": "data_files",
    "subset": "config",
    "split": "split",
    "text_field": "text_field",
    "revision": "revision",
    "streaming": "streaming",
    "tokenizer": "tokenizer",
    "val_fraction": "val_fraction",
    "max_documents": "max_documents",
    "max_tokens": "max_tokens",
    "shard_tokens": "shard_tokens",
    "num_proc": "num_proc",
    "out": "prepared_dir",
    "hf_cache_dir": "hf_cache_dir",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", help="data preset from scaling/configs/data (e.g. fineweb_edu, tinystories)")
    parser.add_argument(
        "--config-dir",
        help="hydra config folder holding data/ (default: the package's scaling/configs, or $SCALING_CONFIG_DIR)",
    )
    parser.add_argument("--name", help="corpus name recorded in run records")
    parser.add_argument("--path", help="hub dataset name, local folder, or builder: parquet | json | text | csv")
    parser.add_argument("--data-files", nargs="+", help="files (globs allowed) for a local builder")
    parser.add_argument("--subset", "--config", dest="subset", help="dataset subset/config name, e.g. sample-10BT")
    parser.add_argument("--split", help="dataset split (default train)")
    parser.add_argument("--text-field", help="column holding the document text (default text)")
    parser.add_argument("--revision", help="dataset revision: branch, tag, commit or refs/convert/parquet")
    parser.add_argument("--streaming", action=argparse.BooleanOptionalAction, default=None, help="stream from the hub")
    parser.add_argument("--tokenizer", help="HF tokenizer name or local path (default: the preset's, gpt2)")
    parser.add_argument("--val-fraction", type=float, help="held-out document fraction (default: the preset's)")
    parser.add_argument("--max-documents", help="stop after this many source documents (e.g. 1e6)")
    parser.add_argument("--max-tokens", help="stop once the train split holds this many tokens (e.g. 1e9)")
    parser.add_argument("--shard-tokens", help="tokens per shard, e.g. 2**26 (default: the preset's)")
    parser.add_argument("--num-proc", type=int, help="tokenizer processes (default: min(cores, 16))")
    parser.add_argument("--out", help="output folder (default: $SCALING_DATA_DIR/<source>-<hash>)")
    parser.add_argument("--hf-cache-dir", help="datasets cache folder (default: the datasets default)")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="tqdm bar (default: when a TTY)"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="re-hash every shard against the manifest's sha256s (with only --out: check that folder, prepare nothing)",
    )


def config_from_args(args: argparse.Namespace) -> HFDataConfig:
    """The data config the CLI describes: a preset (or hf.yaml) with each given flag a ``data.<key>`` override."""
    if not args.preset and not args.path:
        raise ScalingError("give --preset NAME or --path (hub dataset, local folder, or parquet/json/text builder)")
    values = {key: getattr(args, arg) for arg, key in _CLI_KEYS.items() if getattr(args, arg, None) is not None}
    if args.path and not args.preset and args.name is None:
        values["name"] = source_stem(SourceSpec(path=args.path, data_files=args.data_files))
    return load_preset(args.preset or "hf", args.config_dir, data_overrides(values))


def verify(folder: Path) -> str:
    """Re-hash every shard of a prepared folder; the one line that says it is intact (ScalingError if not)."""
    prepared = open_prepared(folder, verify=True)
    shards = sum(len(prepared.manifest["splits"][s]["shards"]) for s in ("train", "val"))
    return f"verified {folder}: {shards} shards, {prepared.train_tokens + prepared.val_tokens:,} tokens, every sha256 matches"


def run(args: argparse.Namespace) -> int:
    """Prepare (or resume) the corpus; print one JSON summary line, or exit 130 on Ctrl-C with shards kept."""
    if args.verify and args.out and not (args.preset or args.path):
        print(verify(Path(args.out)))
        return 0
    try:
        out = prepare_corpus(config_from_args(args), None, progress_bar=args.progress)
    except KeyboardInterrupt:
        print("\ninterrupted: completed shards are kept; run the same command again to resume", file=sys.stderr)
        return 130
    manifest = read_manifest(out)
    summary = {
        "prepared_dir": str(out),
        "train_tokens": manifest["splits"]["train"]["tokens"],
        "val_tokens": manifest["splits"]["val"]["tokens"],
        "documents": manifest["documents_read"],
        "fingerprint": manifest["fingerprint"],
    }
    print(json.dumps(summary))
    if args.verify:
        print(verify(out), file=sys.stderr)
    return 0
