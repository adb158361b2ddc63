"""Weights & Biases logging: one W&B run per training run (rank 0 only).

What a run logs (see README, "Weights & Biases"):

* config: the resolved Hydra config, plus ``derived``: the shape, parameter
  counts and hyperparameters actually trained (the config may leave them to
  ``model.target_params`` or the ``hparams`` laws);
* history: one row per held-out evaluation with ``tokens`` as the default x-axis
  and ``flops_exact`` / ``flops_six_n`` / ``flops_kaplan`` as alternative x-axes,
  so the UI plots loss against data and against compute under each convention;
* summary: N under each count, D, C under each convention, the final loss and
  the status (``finished`` / ``diverged`` / ``interrupted``);
* WSD cooldown branches: each branch is its own (N, D) point with its own run
  record, but is logged *inside* the stable run's W&B run (a second
  ``wandb.init`` would end the first): a summary entry ``wsd_branches[branch_id]``
  holding the branch's full table row, plus a ``wsd/*`` history row (end point of
  the branch, x-axis ``wsd/tokens``). ``scaling collect --wandb`` expands them.

The W&B run id is the run id, with ``resume="allow"``, so a resumed run continues
its W&B run. Offline mode cannot resume (W&B ignores ``resume`` offline and a
resumed attempt writes a second offline directory of the same id, which older
``wandb sync`` versions let replace the first, wandb/wandb#3841), so a resumed run
replays the curve of its on-disk record first: the last offline directory of a
run always holds the whole curve.

Without credentials (``WANDB_API_KEY``, ``WANDB_IDENTITY_TOKEN_FILE`` or a netrc
entry for the W&B host) and no ``WANDB_MODE``, runs are logged offline for a later
``wandb sync``. ``logging.wandb=false`` or ``WANDB_MODE=disabled`` turns W&B off.
Tracking never stops training: the run record is the durable result, so a W&B
failure costs one warning line, not the run.
"""

from __future__ import annotations

import math
import netrc
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scaling.config import LoggingConfig, from_node
from scaling.errors import ScalingError
from scaling.records import (
    COLUMNS,
    FLOP_CONVENTIONS,
    HISTORY_KEYS,
    RESULT_COLUMNS,
    STATIC_COLUMNS,
    curve_point,
    read_record,
    record_to_row,
    run_paths,
)

DEFAULT_HOST = "https://api.wandb.ai"
OFF_MODES = ("disabled",)
ENV_MODES = {"dryrun": "offline", "run": "online"}  # legacy WANDB_MODE spellings
CURVE_AXES = ("tokens", "flops_exact", "flops_six_n", "flops_kaplan")
CURVE_METRICS = ("val_loss", "train_loss", "lr", "step")
BRANCH_PREFIX = "wsd"


# -- mode and credentials -----------------------------------------------------------------


def _netrc_path(env: Mapping[str, str]) -> Path | None:
    if env.get("NETRC"):
        return Path(env["NETRC"]).expanduser()
    for name in ("~/.netrc", "~/_netrc"):
        path = Path(name).expanduser()
        if path.exists():
            return path
    return None


def has_credentials(env: Mapping[str, str] | None = None) -> bool:
    """Whether W&B could log in without a prompt: an API key in the environment or in netrc.

    Mirrors where ``wandb login`` stores the key (netrc, machine = the W&B host),
    without asking the server, so that deciding on offline mode costs nothing.
    """
    env = os.environ if env is None else env
    if env.get("WANDB_API_KEY") or env.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    path = _netrc_path(env)
    if path is None:
        return False
    host = urlsplit(env.get("WANDB_BASE_URL") or DEFAULT_HOST).netloc
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def wandb_mode(logging_cfg: Mapping[str, Any], env: Mapping[str, str] | None = None) -> str | None:
    """The ``mode`` for ``wandb.init``: None (W&B off), ``"online"``, ``"offline"`` (or ``"shared"``).

    ``WANDB_MODE`` wins when set; without it, no credentials means offline. The
    environment is read for every run, since wandb itself reads it once per process.
    """
    env = os.environ if env is None else env
    enabled = logging_cfg["wandb"]
    if enabled is False or str(enabled).lower() in ("false", "0", "no", "off"):
        return None
    mode = env.get("WANDB_MODE", "").strip().lower()
    if mode in OFF_MODES or env.get("WANDB_DISABLED", "").lower() in ("true", "1"):
        return None
    if mode:
        return ENV_MODES.get(mode, mode)
    return "online" if has_credentials(env) else "offline"


# -- what is logged -----------------------------------------------------------------------


def size_tag(n: float) -> str:
    """``N=1.2e5``: a short, sortable-by-eye size tag (two significant digits)."""
    mantissa, exponent = f"{float(n):.1e}".split("e")
    return f"N={mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def derived_config(spec: Any) -> dict[str, Any]:
    """The trained shape, counts and hyperparameters (the table's static columns)."""
    params, fpt = spec.params.as_dict(), spec.flops_per_token.as_dict()
    return {
        "family": spec.shape.family,
        **spec.shape.as_dict(),
        "N_non_embedding": params["non_embedding"],
        "N_with_head": params["with_head"],
        "N_total": params["total"],
        "N_active": params["active"],
        "flops_per_token": fpt,
        "lr": spec.lr,
        "batch_size": spec.batch_size,
        "micro_batch_size": spec.micro_batch_size,
        "tokens_per_step": spec.tokens_per_step,
        "warmup_steps": spec.warmup_steps,
        "steps": spec.steps,
        "tokens": spec.tokens,
        "schedule": spec.schedule.name,
    }


def result_summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """The summary entries of a finished or stopped run, from its table row."""
    summary = {k: row.get(k) for k in RESULT_COLUMNS if row.get(k) is not None}
    summary["diverged"] = row.get("status") == "diverged"
    return summary


# -- the tracker --------------------------------------------------------------------------


class WandbTracker:
    """Logs one training run to one W&B run; ``finish`` must be called exactly once (idempotent)."""

    def __init__(self, run: Any, cfg: Mapping[str, Any], run_id: str) -> None:
        self.run = run
        self.cfg = cfg
        self.run_id = run_id
        self.last_step = 0
        self.branches: dict[str, dict[str, Any]] = {}
        self.closed = False
        self.failed = False  # W&B broke mid-run (e.g. its offline folder was damaged): reported once, then off
        self._define_axes()

    def _safely(self, what: str, call: Any, *args: Any) -> None:
        """Run one W&B call; the first failure is one warning line and ends tracking, never the training."""
        if self.failed:
            return
        try:
            call(*args)
        except Exception as err:
            self.failed = True
            _warn(f"W&B logging off for run {self.run_id}: {what} failed: {_first_line(err)}")

    def _define_axes(self) -> None:
        for axis in CURVE_AXES:
            self.run.define_metric(axis)
        for name in CURVE_METRICS:
            self.run.define_metric(name, step_metric="tokens")
        self.run.define_metric(f"{BRANCH_PREFIX}/tokens")
        self.run.define_metric(f"{BRANCH_PREFIX}/*", step_metric=f"{BRANCH_PREFIX}/tokens")

    # hooks called by scaling.train.run ---------------------------------------------------

    def log_eval(self, point: Mapping[str, Any]) -> None:
        """Log one eval point; a point at or before the last logged step (a resume) is skipped."""
        step = int(point["step"])
        if step <= self.last_step:
            return
        self.last_step = step
        self._safely("logging an eval point", self.run.log, curve_point(point))

    def log_branch(self, record: Mapping[str, Any]) -> None:
        """Log a WSD cooldown branch (never raises: see :meth:`_safely`)."""
        self._safely("logging a WSD branch", self._log_branch, record)

    def _log_branch(self, record: Mapping[str, Any]) -> None:
        """A summary row under ``wsd_branches`` and a ``wsd/*`` end point."""
        row = record_to_row(record)
        if row["run_id"] in self.branches:
            return
        self.branches[row["run_id"]] = {k: v for k, v in row.items() if v is not None}
        self.run.summary["wsd_branches"] = self.branches
        self.run.log(
            {
                f"{BRANCH_PREFIX}/tokens": row["D"],
                f"{BRANCH_PREFIX}/val_loss": row["loss"],
                f"{BRANCH_PREFIX}/train_loss": row["train_loss"],
                **{f"{BRANCH_PREFIX}/flops_{c}": row[f"C_{c}"] for c in FLOP_CONVENTIONS},
            }
        )

    def finish(self, record: Mapping[str, Any] | None, exit_code: int = 0) -> None:
        """Write the summary and end the W&B run (also on interrupt or divergence).

        ``run.py`` passes no record when a run stops early, but it has just written
        the stopped run's record (status ``diverged`` or ``running``), so that is read
        back for D, C, the loss so far and the reason.
        """
        if self.closed:
            return
        self.closed = True
        try:
            if record is None:
                record = self._record_on_disk()
            if record is not None:
                row = record_to_row(record)
                if exit_code and row["status"] == "running":
                    row["status"] = "interrupted"
                self.run.summary.update(result_summary(row))
                if row["status"] == "interrupted":
                    self.run.mark_preempting()  # the UI shows it as preempted, to be resumed
            elif exit_code:
                self.run.summary["status"] = "interrupted"
        except Exception as err:  # the summary is best effort; ending the run is not
            _warn(f"could not write the W&B summary of run {self.run_id}: {err}")
        finally:
            try:  # attempted even after a failure, so W&B's service lets the process exit
                self.run.finish(exit_code=exit_code)
            except Exception as err:
                if not self.failed:
                    _warn(f"could not end the W&B run {self.run_id}: {_first_line(err)}")

    # resume --------------------------------------------------------------------------------

    def _record_on_disk(self) -> dict[str, Any] | None:
        path, _ = run_paths(self.cfg, self.run_id)
        try:
            return read_record(path) if path.exists() else None
        except ScalingError:
            return None

    def replay(self) -> None:
        """Log what an interrupted earlier attempt logged, so this W&B run holds the whole curve.

        Online, a resumed W&B run already has the points up to its summary's
        ``step``; offline it has nothing (W&B cannot resume offline runs).
        """
        record = self._record_on_disk()
        if record is None or record.get("status") != "running":
            return
        try:
            self.last_step = int(self.run.summary.get("step") or 0)
            done = set(dict(self.run.summary.get("wsd_branches") or {}))
        except (TypeError, ValueError):
            done = set()
        for point in record.get("curve") or []:
            if all(point.get(k) is not None and math.isfinite(point[k]) for k in ("val_loss", "train_loss")):
                self.log_eval(point)
        for branch in self._branch_records():
            if branch["run_id"] in done:
                self.branches[branch["run_id"]] = {k: v for k, v in record_to_row(branch).items() if v is not None}
            else:
                self.log_branch(branch)

    def _branch_records(self) -> list[dict[str, Any]]:
        from scaling.runid import run_id_for

        out = []
        for fraction in sorted({float(f) for f in self.cfg["schedule"]["branches"]}):
            path, _ = run_paths(self.cfg, run_id_for(self.cfg, {"wsd_branch": fraction}))
            try:
                branch = read_record(path) if path.exists() else None
            except ScalingError:
                continue
            if branch and branch.get("branch_of") == self.run_id:
                out.append(branch)
        return out


def _warn(message: str) -> None:
    print(f"wandb: warning: {message}", file=sys.stderr, flush=True)


def _init(cfg: Mapping[str, Any], run_id: str, spec: Any, mode: str) -> Any:
    import wandb

    logging_cfg = from_node(LoggingConfig, cfg["logging"])
    family = spec.shape.family
    tags = [family, size_tag(spec.params.non_embedding), *[str(t) for t in logging_cfg.tags]]
    if spec.shape.variant:
        tags.insert(1, f"variant={spec.shape.variant}")  # scaling collect --wandb reads it back from the config
    config = {**cfg, "run_id": run_id, "derived": derived_config(spec)}
    offline = mode == "offline"
    # Passed every time: wandb reads $WANDB_DIR only once per process. Created first, or
    # wandb warns that a missing folder is no git root.
    wandb_dir = logging_cfg.dir or os.environ.get("WANDB_DIR") or None
    if wandb_dir:
        Path(wandb_dir).mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=logging_cfg.project,
        entity=logging_cfg.entity or None,
        group=str(logging_cfg.group),
        job_type="train",
        name=f"{family}-{size_tag(spec.params.non_embedding)[2:]}-{run_id}",
        id=run_id,
        resume="allow",
        tags=list(dict.fromkeys(tags)),
        config=config,
        dir=wandb_dir,
        mode=mode,
        reinit="finish_previous",  # a run that crashed without finish() must not swallow this one
        # Offline, our one line replaces W&B's banner; online, W&B still prints the run URL.
        settings=wandb.Settings(silent=True) if offline else wandb.Settings(quiet=True),
    )


# Set when W&B could not start online in this process: later runs (a Hydra sweep) go offline
# at once instead of waiting for the same network timeout again.
_online_failed = False


def _teardown() -> None:
    import wandb

    try:
        wandb.teardown()
    except Exception as err:
        _warn(f"wandb.teardown failed: {_first_line(err)}")


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def tracker_factory(cfg: dict[str, Any], run_id: str, spec: Any) -> WandbTracker | None:
    """Start the W&B run of this training run, or return None when W&B is off.

    Called on the main process only. A failure to start W&B online falls back to
    offline; a failure offline disables tracking for this run (one warning line).
    """
    global _online_failed
    mode = wandb_mode(cfg["logging"])
    if mode is None:
        return None
    if _online_failed:
        mode = "offline"
    try:
        run = _init(cfg, run_id, spec, mode)
    except Exception as err:
        if mode == "offline":
            _warn(f"W&B logging off for run {run_id}: {_first_line(err)}")
            return None
        _warn(f"could not start W&B online ({_first_line(err)}); logging offline")
        _online_failed = True
        _teardown()  # the failed run keeps its id registered: "run ID ... is in use"
        return tracker_factory(cfg, run_id, spec)
    if run.offline:
        auto = not os.environ.get("WANDB_MODE") and not _online_failed
        why = "no W&B credentials, " if auto else ""
        # One write of the whole line, flushed: the workers of a packed sweep share this stream, and a
        # line printed in two pieces (text, then newline) interleaves with another worker's.
        sys.stdout.write(
            f"wandb: {why}offline run {run.name} in {run.sync_dir}; upload it with: wandb sync {run.sync_dir}\n"
        )
        sys.stdout.flush()
    tracker = WandbTracker(run, cfg, run_id)
    tracker.replay()
    return tracker


# -- reading W&B runs back (scaling collect --wandb) ---------------------------------------


def wandb_run_to_rows(
    run_id: str, config: Mapping[str, Any], summary: Mapping[str, Any], history: Iterable[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(run rows, curve rows) of one W&B run, from what the public API returns.

    ``config`` is ``Run.config`` (the resolved Hydra config plus ``derived``, the
    shape and hyperparameters the tracker resolved), ``summary`` is
    ``Run.summary_metrics`` (results, and ``wsd_branches``: one full row per
    cooldown branch), ``history`` is ``Run.scan_history()`` rows. Rows without a
    ``val_loss`` (the ``wsd/*`` branch end points) are not curve points.
    """
    derived = config.get("derived") or {}
    row: dict[str, Any] = {c: derived.get(c) for c in STATIC_COLUMNS}
    row.update({c: summary[c] for c in RESULT_COLUMNS if summary.get(c) is not None})
    row["run_id"] = summary.get("run_id") or run_id
    row["experiment"] = config.get("experiment_name")
    row["seed"] = config.get("seed")
    row.setdefault("status", "finished")
    rows = [{c: row.get(c) for c in COLUMNS}]
    branches = summary.get("wsd_branches") or {}
    for branch_id in sorted(branches):
        branch = {**row, "reason": None, **dict(branches[branch_id])}
        branch["run_id"] = branch.get("run_id") or branch_id
        rows.append({c: branch.get(c) for c in COLUMNS})
    curve = [
        {"run_id": row["run_id"], **{k: point.get(k) for k in HISTORY_KEYS}}
        for point in history
        if point.get("val_loss") is not None and point.get("tokens") is not None
    ]
    curve.sort(key=lambda p: (p["tokens"], p["step"] or 0))
    return rows, curve


def collect_wandb(path: str, group: str, api: Any = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(run rows, curve rows) of the finished W&B runs of ``group`` in ``ENTITY/PROJECT``.

    The curve comes from ``Run.scan_history`` because ``Run.history`` samples at most 500 rows.
    """
    import wandb

    if api is None and not has_credentials():
        raise ScalingError("no W&B credentials: set WANDB_API_KEY or run `wandb login` to collect from W&B")
    runs_out: list[dict[str, Any]] = []
    curves_out: list[dict[str, Any]] = []
    try:
        api = api or wandb.Api(timeout=30)
        for run in api.runs(path, filters={"group": group, "state": "finished"}):
            history = run.scan_history(keys=list(HISTORY_KEYS))
            rows, curve = wandb_run_to_rows(run.id, run.config, run.summary_metrics, history)
            runs_out.extend(rows)
            curves_out.extend(curve)
    except ScalingError:
        raise
    except Exception as err:  # network, auth, unknown project: one line, not a traceback
        raise ScalingError(f"cannot read W&B runs of {path} group {group!r}: {_first_line(err)}") from None
    if not runs_out:
        raise ScalingError(f"no finished W&B runs in {path} with group {group!r}")
    return runs_out, curves_out
