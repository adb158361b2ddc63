"""The embedded default corpus: the running interpreter's own Python source.

Every ``.py`` file under ``sysconfig.get_paths()["stdlib"]`` (site-packages
excluded) is real text and code, about 30 MB on a full install, present on every
machine with Python (the GPU node's included) and needs no download. Extra roots
(``site-packages`` or any folder) add hundreds of MB for offline GPU machines.

Files are read in sorted order of their path relative to their root, so the
corpus and its fingerprint are the same on every run; each file is one document
for the document-level train/validation split.
"""

from __future__ import annotations

import hashlib
import sysconfig
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from scaling.errors import ScalingError

ROOT_ALIASES = {"stdlib": "stdlib", "site-packages": "purelib", "purelib": "purelib", "platlib": "platlib"}


def resolve_root(root: str) -> Path:
    """A root folder, or an alias: ``stdlib``, ``site-packages`` (purelib), ``platlib``."""
    path = Path(sysconfig.get_paths()[ROOT_ALIASES[root]]) if root in ROOT_ALIASES else Path(root).expanduser()
    if not path.is_dir():
        raise ScalingError(f"corpus root is not a readable folder: {root!r} -> {path}")
    return path


@dataclass(frozen=True)
class Document:
    key: str  # "<root label>/<relative path>": the identity used for the split
    path: Path


@dataclass(frozen=True)
class PySourceCorpus:
    """An ordered list of source files and a content fingerprint over all of them."""

    roots: tuple[str, ...]
    documents: tuple[Document, ...]
    fingerprint: str
    n_bytes: int

    @property
    def name(self) -> str:
        return "pysource:" + "+".join(self.roots)

    def texts(self, docs: Sequence[Document] | None = None) -> Iterator[str]:
        """Yield document texts (undecodable bytes replaced, so every file is usable)."""
        for doc in self.documents if docs is None else docs:
            yield doc.path.read_bytes().decode("utf-8", errors="replace")


def _list_root(label: str, root: Path, max_bytes: int | None) -> list[Document]:
    site_parts = {"site-packages", "dist-packages"}
    docs = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if label == "stdlib" and site_parts & set(rel.parts):
            continue
        if path.is_file():
            docs.append(Document(f"{label}/{rel.as_posix()}", path))
    docs.sort(key=lambda d: d.key)
    return docs


def load_pysource_corpus(roots: Sequence[str] = ("stdlib",), max_bytes: int | None = None) -> PySourceCorpus:
    """List the corpus files and fingerprint their content (sha256 over key and bytes).

    ``max_bytes`` keeps a deterministic prefix of the sorted file list (for quick tests).
    """
    if not roots:
        raise ScalingError("data.roots is empty: name at least one corpus root (e.g. stdlib)")
    documents: list[Document] = []
    seen: set[Path] = set()
    for root in roots:
        resolved = resolve_root(root)
        for doc in _list_root(root, resolved, max_bytes):
            real = doc.path.resolve()
            if real not in seen:  # a root nested in another must not count twice
                seen.add(real)
                documents.append(doc)
    digest = hashlib.sha256()
    kept: list[Document] = []
    total = 0
    for doc in documents:
        try:
            data = doc.path.read_bytes()
        except OSError as err:
            raise ScalingError(f"cannot read corpus file {doc.path}: {err.strerror}") from None
        if max_bytes is not None and total + len(data) > max_bytes and kept:
            break
        digest.update(doc.key.encode())
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
        total += len(data)
        kept.append(doc)
    if not kept:
        raise ScalingError(f"no .py files found under corpus roots {list(roots)}")
    return PySourceCorpus(tuple(roots), tuple(kept), digest.hexdigest(), total)
