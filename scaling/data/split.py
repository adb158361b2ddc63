"""Document-level train/validation split by content hash.

Splitting by a hash of each document (not by position in a token stream) means a
document is wholly in train or wholly in validation, so validation text is never
trained on, and the assignment does not change when documents are added,
removed or reordered.
"""

from __future__ import annotations

import hashlib

_HASH_SPACE = 2**64


def doc_hash(key: str | bytes) -> int:
    """A stable 64-bit hash of a document's identity (its text or a key)."""
    data = key.encode("utf-8", "surrogatepass") if isinstance(key, str) else key
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def is_validation_doc(key: str | bytes, val_fraction: float) -> bool:
    """True when the document belongs to the validation split."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    return doc_hash(key) < val_fraction * _HASH_SPACE
