"""Preflight of ``hydra/launcher=slurm``: fail in one line before anything is submitted.

The launcher itself is hydra-submitit-launcher's (submission, job arrays, and the
requeue through submitit's checkpoint hook are the plugin's). Hydra accepts
launcher classes only from the ``hydra_plugins`` package, so what this project adds
runs as a Hydra callback that the ``slurm`` preset registers; it runs in the head
process before the sweeper and the launcher are even built:

* without ``sbatch`` on the PATH the plugin would die deep inside submitit with a
  traceback about ``srun``; here the sweep stops with one line naming the cause,
  and nothing is submitted;
* a partition the cluster does not have fails the same way (sbatch's own message
  would come wrapped in a traceback);
* a head process that itself runs inside a SLURM job (``slurm/sweep.sbatch``, an
  ``salloc`` shell) would pass that job's ``SLURM_*`` variables on to every job it
  submits, and ``srun`` in those jobs then fails (e.g. on conflicting
  ``SLURM_MEM_PER_*``); the head forgets them before submitting.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from scaling.errors import USER_ERROR_EXIT

SLURM_COMMANDS = ("sbatch", "srun", "scontrol")
# Variables SLURM sets inside a job; SLURM_CONF is the user's own and must stay.
_JOB_ENV_PREFIXES = ("SLURM_", "SLURMD_", "SRUN_", "SUBMITIT_")
_KEEP = frozenset({"SLURM_CONF"})


def missing_slurm_commands() -> list[str]:
    """The SLURM client commands submission needs that are not on the PATH."""
    return [cmd for cmd in SLURM_COMMANDS if shutil.which(cmd) is None]


def slurm_missing_message(missing: Sequence[str]) -> str:
    verb = "is" if len(missing) == 1 else "are"
    return (
        f"hydra/launcher=slurm needs SLURM's {', '.join(missing)}, which {verb} not on the PATH: run the sweep on a "
        "cluster's login node, start a local cluster with `sudo bash slurm/local-cluster.sh`, or leave out "
        "hydra/launcher=slurm to run it on this machine; nothing was submitted"
    )


def unknown_partitions(requested: str | None) -> list[str]:
    """Partitions in ``requested`` (comma-separated) that ``sinfo`` does not list.

    Empty when nothing was requested or sinfo cannot answer (then sbatch will judge).
    """
    if not requested:
        return []
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    known = {line.strip() for line in out.stdout.splitlines() if line.strip()}
    if out.returncode != 0 or not known:
        return []
    return [p for p in (part.strip() for part in str(requested).split(",")) if p and p not in known]


def forget_enclosing_job() -> list[str]:
    """Drop the current SLURM job's variables from this process's environment; return their names."""
    names = [k for k in os.environ if k.startswith(_JOB_ENV_PREFIXES) and k not in _KEEP]
    for name in names:
        del os.environ[name]
    return names


class SlurmPreflight(Callback):
    """Registered by ``scaling/configs/hydra/launcher/slurm.yaml``; acts once, at the start of a multirun."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        missing = missing_slurm_commands()
        if missing:
            print(f"error: {slurm_missing_message(missing)}", file=sys.stderr, flush=True)
            sys.exit(USER_ERROR_EXIT)
        unknown = unknown_partitions(config.hydra.launcher.get("partition"))
        if unknown:
            print(
                f"error: hydra.launcher.partition: no partition {', '.join(unknown)} on this cluster "
                "(`sinfo -s` lists them); nothing was submitted",
                file=sys.stderr,
                flush=True,
            )
            sys.exit(USER_ERROR_EXIT)
        if os.environ.get("SLURM_JOB_ID"):
            forget_enclosing_job()
