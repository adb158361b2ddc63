"""``scaling-train``: the Hydra app that trains one config (or a multirun of them).

Config groups: model, data, optim, schedule, logging (``scaling/configs/``, typed by ``scaling.config``). Any field can
be overridden on the command line; ``-m`` sweeps. User mistakes print one line
and exit 2; an interrupted run exits 128+signal after checkpointing.
"""

from __future__ import annotations

import difflib
import os
import re
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from scaling.config import CONFIG_DIR, check_numbers
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
    check_numbers(container)  # type: ignore[arg-type]
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


#: Hydra flags that choose another config or only print something: the pre-check leaves those to Hydra.
_HYDRA_OWN = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun")
#: Sweep values the pre-check composes one by one; others (range(), glob(), quoted lists) are left to Hydra.
_PLAIN_VALUE = re.compile(r"^[\w.+\-/:]*$")


def _variants(overrides: list[str]) -> list[list[str]]:
    """Override lists that together try every value of every plain sweep once, each next to the others' first.

    Composing these finds an unknown option or key in any job of a sweep before Hydra starts it.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    base: list[str] = []
    sweeps: list[tuple[str, list[str]]] = []
    for override in parsed:
        if not override.is_sweep_override():
            base.append(override.input_line)
            continue
        values = [str(v) for v in override.sweep_string_iterator()]
        if not all(_PLAIN_VALUE.match(v) for v in values):
            continue
        prefix = "++" if override.is_force_add() else "+" if override.is_add() else ""
        package = f"@{override.package}" if override.package else ""
        sweeps.append((f"{prefix}{override.key_or_group}{package}", values))
    first = [f"{key}={values[0]}" for key, values in sweeps]
    variants = [base + first]
    for i, (key, values) in enumerate(sweeps):
        for value in values[1:]:
            variants.append(base + first[:i] + [f"{key}={value}"] + first[i + 1 :])
    return variants


def _one_line(err: Exception) -> str:
    """Hydra's 5-12-line composition error as one line that keeps the valid options or the nearest key."""
    from hydra.errors import MissingConfigException

    if isinstance(err, MissingConfigException) and err.missing_cfg_file and "/" in err.missing_cfg_file:
        group, _, name = err.missing_cfg_file.rpartition("/")
        options = ", ".join(err.options or []) or "none"
        return f"unknown {group} option {name!r}; {group} is one of: {options}"
    cause = err.__cause__
    full_key = getattr(cause, "full_key", None)
    parent = getattr(cause, "parent_node", None)
    if full_key and "Could not override" in str(err) and parent is not None:
        section, _, key = str(full_key).rpartition(".")
        keys = [str(k) for k in parent]
        near = difflib.get_close_matches(key, keys, n=1)
        dotted = f"{section}." if section else ""
        hint = f"did you mean {dotted}{near[0]}?" if near else f"{section or 'the config'} has: {', '.join(keys)}"
        return f"unknown key {full_key}; {hint}"
    if full_key and cause is not None:
        return f"bad value for {full_key}: {str(cause).splitlines()[0]}"
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def check_command_line(argv: list[str]) -> None:
    """Compose the config the way Hydra will and raise a one-line ScalingError for what it would refuse.

    Hydra reports an unknown group option, a misspelt key or a value of the wrong type in 5-12
    lines (with its search path) and exits 1; the project's promise is one ``error:`` line and exit
    2. Composing costs about 0.2 s per override list, once before Hydra composes for real.
    """
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.errors import HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if any(arg.split("=", 1)[0] in _HYDRA_OWN for arg in argv):
        return
    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:  # argparse's own usage error: Hydra prints it the same way
        return
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return
    try:
        variants = _variants(list(args.overrides))
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            for overrides in variants:
                compose(config_name="train", overrides=overrides, return_hydra_config=True)
    except OverrideParseException as err:
        raise ScalingError(f"cannot parse the overrides: {str(err).splitlines()[0]}") from None
    except (HydraException, OmegaConfBaseException) as err:
        raise ScalingError(_one_line(err)) from None


#: The main keys, one line each, for ``scaling-train --help`` (every key: ``--cfg job``; types: scaling.config).
MAIN_KEYS = (
    ("train.tokens | tokens_per_param | flops", "the budget: set exactly one, the others null"),
    ("train.flops_convention", "kaplan | six_n | exact: how train.flops is counted"),
    ("train.batch_size", "sequences per step; null = the hparams law of N"),
    ("train.device", "auto | cpu | cuda"),
    ("train.dry_run", "true: list the resolved run(s), train nothing"),
    ("model.d_model, n_layers, n_heads", "the shape (model.context: sequence length)"),
    ("model.target_params", "pick the shape for this parameter count instead"),
    ("optim.lr", "peak learning rate; null = the hparams law of N"),
    ("data.vocab_size", "the local BPE's vocabulary (data=pysource)"),
    ("logging.wandb", "true | false; offline without W&B credentials"),
    ("paths.results", "records go to <results>/<experiment_name>/runs/"),
    ("seed", "initialisation and data order"),
)
EXAMPLES = (
    ("scaling-train train.tokens=2e6 model.d_model=128 model.n_layers=4", "one small run"),
    ("scaling-train -m +experiment=demo hydra/launcher=packed", "the demo sweep, two runs at a time"),
    ("scaling-train -m +experiment=isoflop train.dry_run=true", "list an isoFLOP grid, train nothing"),
)


def help_text() -> str:
    """``scaling-train --help``: the config groups with their options (read from CONFIG_DIR), main keys, examples.

    Replaces Hydra's generic "powered by Hydra" page; Hydra's own flags stay under --hydra-help.
    """
    groups = sorted(p for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name != "hydra")
    width = max(len(g.name) for g in groups) + 2
    group_lines = [f"  {g.name + ':':<{width}}{', '.join(sorted(f.stem for f in g.glob('*.yaml')))}" for g in groups]
    key_width = max(len(k) for k, _ in MAIN_KEYS) + 2
    example_width = max(len(e) for e, _ in EXAMPLES) + 2
    return "\n".join(
        [
            "scaling-train: train one transformer (a sweep of them with -m) and write its run record",
            "to <paths.results>/<experiment_name>/runs/<run_id>.json, the input of `scaling fit`.",
            "",
            "usage: scaling-train [-m] [GROUP=OPTION ...] [KEY=VALUE ...]",
            "",
            "Config groups (GROUP=OPTION; a preset is added with +experiment=NAME):",
            *group_lines,
            "",
            "Main keys (KEY=VALUE; `scaling-train --cfg job` prints every key):",
            *(f"  {k:<{key_width}}{text}" for k, text in MAIN_KEYS),
            "",
            "Examples:",
            *(f"  {e:<{example_width}}# {text}" for e, text in EXAMPLES),
            "",
            "A mistake on the command line or in the config is one `error:` line and exit status 2.",
            "Hydra's own flags (--cfg, --multirun, --config-dir, ...): scaling-train --hydra-help",
        ]
    )


def main() -> None:
    """Console entry point: the command line is checked first, so a mistake is one line and exit 2."""
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        print(help_text())
        return
    try:
        check_command_line(sys.argv[1:])
    except ScalingError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT)
    _hydra_main()


if __name__ == "__main__":
    main()
