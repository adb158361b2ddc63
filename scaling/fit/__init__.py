"""Fitting scaling laws to run records: Kaplan, Chinchilla Approaches 1-3, bootstrap uncertainty.

Submodules are imported on demand (``scaling.fit.approach3``, ``scaling.fit.bootstrap``, ...) so that
``import scaling.fit`` stays cheap for the CLI.
"""
