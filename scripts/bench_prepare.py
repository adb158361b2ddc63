"""Throughput of ``scaling prepare`` against ``num_proc`` (tokenizer processes), offline.

Corpus: paragraphs of this interpreter's standard-library source (the only large
text available offline), written to a local Parquet file; tokenizer: a byte-level
BPE (GPT-2's pre-tokenizer regex) trained on it. Each setting runs in a fresh
subprocess (so the Rust thread-pool setting applies) and the best of ``--repeats``
is reported, because the machine is shared.

    python scripts/bench_prepare.py --mb 24 --repeats 2 > results/bench/prepare_num_proc.txt
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
from scaling.data.prepare import prepare_corpus
from scaling.data.settings import data_overrides, load_preset
from scaling.data.tokenizer import load_tokenizer_info
cfg, out, batch = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
tok = load_tokenizer_info(cfg["tokenizer"])
data = load_preset("hf", overrides=data_overrides(cfg))
t = time.perf_counter()
prepare_corpus(data, out, tokenizer=tok, progress_bar=False, batch_docs=batch)
m = json.load(open(out + "/manifest.json"))
tokens = m["splits"]["train"]["tokens"] + m["splits"]["val"]["tokens"]
print(json.dumps({"seconds": time.perf_counter() - t, "tokens": tokens, "fingerprint": m["fingerprint"]}))
"""


def make_corpus(folder: Path, megabytes: float) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scaling.data.tokenizer import train_bpe

    docs: list[str] = []
    size = 0
    for file in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            text = file.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for para in text.split("\n\n\n"):
            if para.strip():
                docs.append(para)
                size += len(para)
        if size > megabytes * 1e6:
            break
    pq.write_table(pa.table({"text": docs}), folder / "docs.parquet", row_group_size=2000)
    train_bpe(docs[:4000], 8192, folder / "tok")
    return folder / "docs.parquet", folder / "tok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=24.0, help="corpus size in MB of text")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-docs", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data, tok = make_corpus(folder, args.mb)
        settings = [
            ("1", "true", False),
            ("1", "false", False),
            ("2", "false", False),
            ("2", "false", True),
            ("3", "false", False),
        ]
        print(f"# python scripts/bench_prepare.py --mb {args.mb} --repeats {args.repeats}")
        print(f"# cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
        print(f"# corpus: {data.stat().st_size / 1e6:.1f} MB parquet of stdlib source paragraphs, BPE vocab 8192")
        print(f"{'num_proc':>8} {'rust_threads':>12} {'streaming':>9} {'tokens':>11} {'best_s':>7} {'Mtok/s':>7}  fp")
        results: dict[tuple[str, str, bool], list[float]] = {key: [] for key in settings}
        tokens_of: dict[tuple[str, str, bool], tuple[int, str]] = {}
        for rep in range(args.repeats):  # round-robin, so a burst of load hits every setting alike
            for num_proc, parallel, streaming in settings:
                cfg = {
                    "path": "parquet",
                    "data_files": str(data),
                    "tokenizer": str(tok),
                    "num_proc": int(num_proc),
                    "streaming": streaming,
                    "val_fraction": 0.005,
                    "shard_tokens": 2**22,
                    "hf_cache_dir": str(folder / "hf"),
                }
                out = folder / f"out-{num_proc}-{parallel}-{streaming}-{rep}"
                env = {**os.environ, "TOKENIZERS_PARALLELISM": parallel, "HF_DATASETS_OFFLINE": "1"}
                proc = subprocess.run(
                    [sys.executable, "-c", CHILD, json.dumps(cfg), str(out), str(args.batch_docs)],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                )
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                results[(num_proc, parallel, streaming)].append(result["seconds"])
                tokens_of[(num_proc, parallel, streaming)] = (result["tokens"], result["fingerprint"][:12])
        for key in settings:
            num_proc, parallel, streaming = key
            best = min(results[key])
            tokens, fp = tokens_of[key]
            print(
                f"{num_proc:>8} {parallel:>12} {streaming!s:>9} {tokens:>11,} {best:>7.2f} "
                f"{tokens / best / 1e6:>7.2f}  {fp}",
                flush=True,
            )
        print(f"# load average at end: {os.getloadavg()[0]:.2f}; finished {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
