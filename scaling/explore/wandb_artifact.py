"""Log the explorer page to Weights & Biases as an HTML artifact of the sweep.

``scaling explore ... --wandb`` (the main job passes it unless W&B is off) calls
:func:`log_explorer_of_sweep` once the page is written: a short ``job_type="explore"`` run in the
sweep's W&B project and group, so the page sits beside the training runs it draws. Its mode follows
scaling-train's (:func:`scaling.tracking.wandb_mode`): ``WANDB_MODE`` wins (``disabled`` skips), and
without credentials the run is written offline for a later ``wandb sync``. :func:`log_explorer` adds
the page both as a versioned artifact file (type ``scaling-explorer``: download it and open it
offline) and as a ``wandb.Html`` panel, so the W&B UI shows it in place.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scaling.config import CONFIG_DIR

ARTIFACT_TYPE = "scaling-explorer"


def log_explorer(
    html_path: str | Path,
    *,
    run: Any = None,
    project: str | None = None,
    group: str | None = None,
    name: str = "explorer",
    mode: str | None = None,
) -> Any:
    """Log ``html_path`` to ``run`` (or a new ``job_type="explore"`` run, finished here); returns the artifact."""
    import wandb

    path = Path(html_path)
    own = run is None
    if own:
        # dir passed every time: wandb reads $WANDB_DIR only once per process (as scaling.tracking does).
        wandb_dir = os.environ.get("WANDB_DIR") or None
        # As scaling.tracking: offline, the caller's one line replaces W&B's banner; online, W&B prints the URL.
        settings = wandb.Settings(silent=True) if mode == "offline" else wandb.Settings(quiet=True)
        run = wandb.init(
            project=project,
            group=group,
            job_type="explore",
            dir=wandb_dir,
            mode=mode,
            settings=settings,
            reinit="finish_previous",
        )
    try:
        artifact = wandb.Artifact(name, type=ARTIFACT_TYPE, description="scaling explore: self-contained HTML page")
        artifact.add_file(str(path), name=path.name)
        run.log_artifact(artifact)
        run.log({name: wandb.Html(path.read_text(encoding="utf-8"), inject=False)})
    finally:
        if own:
            run.finish()
    return artifact


def _default_project() -> str:
    """scaling-train's ``logging.project`` default (scaling/configs/logging/default.yaml)."""
    from omegaconf import OmegaConf

    return str(OmegaConf.load(CONFIG_DIR / "logging" / "default.yaml").project)


def sweep_project_and_group(paths: Sequence[str | Path]) -> tuple[str, str | None]:
    """Where scaling-train logged the runs of the first input: its ``logging.project`` and experiment name."""
    from scaling.explore.inputs import load_variant

    records = load_variant(paths[0]).records
    config = (records[0].get("config") or {}) if records else {}
    project = (config.get("logging") or {}).get("project") or _default_project()
    experiment = (records[0].get("experiment") or config.get("experiment_name")) if records else None
    return str(project), (str(experiment) if experiment else None)


def log_explorer_of_sweep(
    html_path: str | Path, paths: Sequence[str | Path], *, project: str | None = None, group: str | None = None
) -> bool:
    """Log the page in the sweep's project and group, in scaling-train's W&B mode, and print one line.

    Returns whether it was logged. A W&B failure is a warning line on stderr, not an error: the page
    on disk is the result (as in scaling.tracking, where W&B never stops training).
    """
    from scaling.tracking import wandb_mode

    mode = wandb_mode({"wandb": True})
    if mode is None:
        print("wandb: off (WANDB_MODE=disabled); the explorer page was not logged")
        return False
    if project is None or group is None:
        found_project, found_group = sweep_project_and_group(paths)
        project, group = project or found_project, group or found_group
    try:
        log_explorer(html_path, project=project, group=group, mode=mode)
    except Exception as err:  # any W&B failure: one line, the page stays written
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        print(f"wandb: warning: could not log the explorer page: {first}", file=sys.stderr)
        return False
    where = f"project {project}" + (f", group {group}" if group else "")
    offline = "offline " if mode == "offline" else ""
    sync = "; upload with `wandb sync`" if mode == "offline" else ""
    print(f"wandb: explorer page logged {offline}as a {ARTIFACT_TYPE} artifact ({where}){sync}")
    return True
