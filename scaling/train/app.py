"""``scaling-train``: the Hydra app that trains one config (or a multirun of them).

Config groups: model, data, optim, schedule, logging (``scaling/configs/``, typed by ``scaling.config``). Any field can
be overridden on the command line; ``-m`` sweeps. User mistakes print one line
and exit 2; an interrupted run exits 128+signal after checkpointing.
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from scaling.config import CONFIG_DIR
from scaling.errors import USER_ERROR_EXIT, ScalingError


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def train_task(cfg: DictConfig) -> str:
    """Hydra task: resolve the config, train, and report one line (with train.dry_run: resolve and list only)."""
    from scaling.tracking import tracker_factory
    from scaling.train.run import run_training

    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:  # interpolation errors name the key
        raise ScalingError(f"bad config: {err}".splitlines()[0]) from None
    if container["train"]["dry_run"]:  # type: ignore[index]
        from scaling.train.dry_run import dry_run_table, resolve_job

        print(dry_run_table([resolve_job(container, [])]), flush=True)  # type: ignore[arg-type]
        return "dry_run"
    outcome = run_training(container, tracker_factory)  # type: ignore[arg-type]
    if int(os.environ.get("RANK", "0")) == 0:
        print(outcome.message, flush=True)
    if outcome.exit_code and not (_is_multirun() and outcome.status == "diverged"):
        sys.exit(outcome.exit_code)
    return outcome.status


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> str:
    try:
        return train_task(cfg)
    except ScalingError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT)


def main() -> None:
    """Console entry point."""
    _hydra_main()


if __name__ == "__main__":
    main()
