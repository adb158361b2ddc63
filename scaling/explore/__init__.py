"""The scaling explorer: ``scaling explore`` writes one self-contained, interactive HTML page.

:mod:`~scaling.explore.inputs` reads results folders and fit JSONs (one variant each),
:mod:`~scaling.explore.data` computes what the page draws, :mod:`~scaling.explore.page` inlines it
with Plotly's JS and the page logic (``explorer.js``, ``page.html``), and
:mod:`~scaling.explore.wandb_artifact` logs the page to W&B.
"""

from __future__ import annotations

from pathlib import Path


def build_explorer(paths: list[str | Path], out: str | Path) -> Path:
    """Read ``paths`` (results folders or fit JSONs) and write the explorer page to ``out``."""
    from scaling.explore.data import explorer_data
    from scaling.explore.inputs import load_variants
    from scaling.explore.page import write_page

    return write_page(explorer_data(load_variants(list(paths))), out)
