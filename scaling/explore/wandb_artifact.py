"""Log the explorer page to Weights & Biases as an HTML artifact of the sweep.

The main job calls :func:`log_explorer` once the page is written, inside the sweep's W&B run (or,
given none, in a short run of its own in the sweep's group). The page is added both as a versioned
artifact file (type ``scaling-explorer``: download it and open it offline) and as a ``wandb.Html``
panel, so the W&B UI shows it in place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ARTIFACT_TYPE = "scaling-explorer"


def log_explorer(
    html_path: str | Path,
    *,
    run: Any = None,
    project: str | None = None,
    group: str | None = None,
    name: str = "explorer",
) -> Any:
    """Log ``html_path`` to ``run`` (or a new ``job_type="explore"`` run, finished here); returns the artifact."""
    import wandb

    path = Path(html_path)
    own = run is None
    if own:
        # dir passed every time: wandb reads $WANDB_DIR only once per process (as scaling.tracking does).
        wandb_dir = os.environ.get("WANDB_DIR") or None
        run = wandb.init(project=project, group=group, job_type="explore", dir=wandb_dir, reinit="finish_previous")
    try:
        artifact = wandb.Artifact(name, type=ARTIFACT_TYPE, description="scaling explore: self-contained HTML page")
        artifact.add_file(str(path), name=path.name)
        run.log_artifact(artifact)
        run.log({name: wandb.Html(path.read_text(encoding="utf-8"), inject=False)})
    finally:
        if own:
            run.finish()
    return artifact
