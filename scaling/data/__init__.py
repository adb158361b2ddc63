"""Corpora, tokenizers and token storage."""
