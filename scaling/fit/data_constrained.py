"""``scaling fit PATH --form data-constrained``: fit R_D* and R_N* of Muennighoff et al. 2023.

The law is :class:`scaling.laws.DataConstrainedLaw` (arXiv 2305.16264, eq. 5-7). Its base (E, A, B, α, β)
is either held, at the C4 constants of the paper or at a ``scaling fit --json`` Approach 3 fit
(``--base``), with only the two decay constants fitted, or fitted jointly with them (``--joint``).

Objectives (``--objective``), each summed over runs with Huber δ (default 1e-3):

* ``log-huber`` (default): Huber of log L̂ - log L, the objective of Hoffmann et al. 2022 (App. D.2) that
  Approach 3 uses, and the one in the datablations notebook (huggingface/datablations,
  utils/parametric_fit.ipynb, the R_D*/R_N* cell). Minimised to convergence in float64: a grid over
  log R_D* × log R_N* (0.01 .. 1e4), then L-BFGS-B from the best cell.
* ``raw-huber``: Huber of L̂ - L (residuals in nats, not relative).
* ``datablations``: the notebook's procedure as published: the log-huber objective in float32, PyTorch
  L-BFGS (lr 0.1, history 10, 20 iterations a step, strong-Wolfe line search) for 50 steps from each
  (R_D*, R_N*) in {0, 20/3, 40/3, 20}² (starts at 0 divide by zero and are dropped), the lowest kept.
  In float32 the objective is flat to its last digits along a valley in (R_D*, R_N*), so L-BFGS stops
  where rounding hides any further decrease: R_D* ≈ 15.4, R_N* ≈ 5.3 on the paper's 182 runs, while
  the float64 minimum of the same objective lies near R_D* ≈ 95, R_N* ≈ 1.7 (objective 0.13% lower).
  It is offered to reproduce the published constants; the README reports how far apart the three lie.

The bootstrap resamples runs with replacement and refits each replicate with the same objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scaling.errors import ScalingError
from scaling.intervals import bootstrap_se, percentile_ci
from scaling.laws import MUENNIGHOFF2023, ChinchillaLaw, DataConstrainedLaw
from scaling.records import PARAM_COUNTS, atomic_write_json, iter_record_paths, read_record

OBJECTIVES = ("log-huber", "raw-huber", "datablations")
#: Columns of bootstrap samples and of the fit JSON's ``samples``.
DATA_CONSTRAINED_PARAMS: tuple[str, ...] = ("E", "A", "B", "alpha", "beta", "R_D", "R_N")
#: Search box of the decay constants (natural units; R beyond 1e4 repetitions means "no decay seen").
R_BOUNDS = (1e-2, 1e4)
DATABLATIONS_STARTS = tuple(np.linspace(0.0, 20.0, 4))


@dataclass(frozen=True)
class RepeatPoints:
    """Final losses of runs with their N, D and U (unique tokens), one point per run."""

    n: np.ndarray
    d: np.ndarray
    u: np.ndarray
    loss: np.ndarray
    run_id: np.ndarray
    source: str

    @property
    def epochs(self) -> np.ndarray:
        return self.d / self.u

    def take(self, index: np.ndarray) -> RepeatPoints:
        return RepeatPoints(
            self.n[index], self.d[index], self.u[index], self.loss[index], self.run_id[index], self.source
        )


# ----------------------------------------------------------------------------- input


def load_repeat_points(path: str | Path, *, params: str = "with_head", only: str | None = None) -> RepeatPoints:
    """Records (U = the capped training split a run drew from, ``corpus.train_tokens``, at most D) or a
    CSV / Parquet table with columns N, D, U and loss (``only``: keep rows whose boolean column is true)."""
    if params not in PARAM_COUNTS:
        raise ScalingError(f"--params must be one of {', '.join(PARAM_COUNTS)}, got {params!r}")
    path = Path(path)
    if not path.exists():
        raise ScalingError(f"no such file or directory: {path}")
    if path.is_dir() or path.suffix.lower() == ".json":
        if only:
            raise ScalingError("--only selects rows of a table; records have no such column")
        return _from_records(path, params)
    if path.suffix.lower() in (".csv", ".parquet", ".pq", ".tsv"):
        return _from_table(path, only)
    raise ScalingError(f"cannot read {path}: expected a directory of run records, a .json record, .csv or .parquet")


def _from_records(path: Path, params: str) -> RepeatPoints:
    rows = []
    for p in iter_record_paths(path):
        rec = read_record(p)
        if rec["status"] != "finished":
            continue
        loss = (rec.get("final") or {}).get("val_loss")
        train_tokens = (rec.get("corpus") or {}).get("train_tokens")
        if loss is None or train_tokens is None:
            raise ScalingError(f"{p}: a data-constrained fit needs final.val_loss and corpus.train_tokens")
        d = float(rec["tokens"])
        rows.append((float(rec["params"][params]), d, min(d, float(train_tokens)), float(loss), str(rec["run_id"])))
    if not rows:
        raise ScalingError(f"no finished run records (runs/*.json) under {path}")
    n, d, u, loss, run_id = zip(*rows, strict=True)
    return _checked(np.array(n), np.array(d), np.array(u), np.array(loss), np.array(run_id, dtype=object), str(path))


def _from_table(path: Path, only: str | None) -> RepeatPoints:
    from scaling.fit.points import _read_frame

    frame = _read_frame(path)
    if only:
        if only not in frame.columns:
            raise ScalingError(f"{path} has no column {only!r} for --only")
        keep = frame[only].astype(str).str.lower().isin(("true", "1", "yes"))
        frame = frame[keep.to_numpy()]
    if "U" not in frame.columns:
        raise ScalingError(
            f"{path} has no U column (unique tokens); --form data-constrained needs N, D, U and loss columns"
        )
    missing = [c for c in ("N", "D", "loss") if c not in frame.columns]
    if missing:
        raise ScalingError(f"{path} lacks column(s) {', '.join(missing)}; --form data-constrained needs N, D, U, loss")
    if frame.empty:
        raise ScalingError(f"{path}: no rows to fit" + (f" with --only {only}" if only else ""))
    import pandas as pd

    cols = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float) for c in ("N", "D", "U", "loss")}
    ids = frame["run_id"] if "run_id" in frame.columns else frame["name"] if "name" in frame.columns else None
    run_id = np.array([str(v) for v in (ids if ids is not None else frame.index)], dtype=object)
    lines = frame.index.to_numpy() + 2  # header is line 1
    for name in ("N", "D", "loss"):
        bad = ~np.isfinite(cols[name]) | (cols[name] <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ScalingError(f"{path} line {lines[i]}: {name} must be positive and finite, got {cols[name][i]}")
    bad = ~np.isfinite(cols["U"]) | (cols["U"] <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ScalingError(f"{path} line {lines[i]}: U (unique tokens) must be positive, got {cols['U'][i]}")
    return _checked(cols["N"], cols["D"], cols["U"], cols["loss"], run_id, str(path), lines)


def _checked(
    n: np.ndarray,
    d: np.ndarray,
    u: np.ndarray,
    loss: np.ndarray,
    run_id: np.ndarray,
    source: str,
    lines: np.ndarray | None = None,
) -> RepeatPoints:
    over = u > d
    if over.any():
        i = int(np.flatnonzero(over)[0])
        where = f"line {lines[i]}" if lines is not None else f"run {run_id[i]}"
        raise ScalingError(
            f"{source} {where}: U = {u[i]:.6g} exceeds D = {d[i]:.6g}; a run cannot see more unique tokens than it trains on"
        )
    return RepeatPoints(n, d, u, loss, run_id, source)


def require_identified(points: RepeatPoints, base: ChinchillaLaw) -> None:
    """One-line errors when the data cannot tell the decay constants: no repeated data (R_D*) or no model
    larger than its unique tokens support (R_N*). A fit would return a number; it would mean nothing."""
    if not np.any(points.d > points.u * (1 + 1e-9)):
        raise ScalingError(
            "R_D* is not identified: no run repeats its data (every D <= U); train some runs for more than "
            "one epoch (data.unique_tokens, +experiment=repetition)"
        )
    u_n = DataConstrainedLaw(base, 1.0, 1.0).unique_params(points.u)
    if not np.any(points.n > np.asarray(u_n) * (1 + 1e-9)):
        raise ScalingError(
            "R_N* is not identified: no run has more parameters than its unique tokens support "
            "(N > U_N = G (G U)^(beta/alpha) under the base law)"
        )


# ----------------------------------------------------------------------------- objectives


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def _law(theta: np.ndarray) -> DataConstrainedLaw:
    """theta (..., 7): log A, log B, log E, α, β, log R_D*, log R_N*."""
    t = np.moveaxis(np.asarray(theta, dtype=float), -1, 0)
    return DataConstrainedLaw(
        ChinchillaLaw(np.exp(t[2]), np.exp(t[0]), np.exp(t[1]), t[3], t[4]), np.exp(t[5]), np.exp(t[6])
    )


def objective_values(
    theta: np.ndarray, points: RepeatPoints, objective: str, delta: float, counts: np.ndarray | None = None
) -> np.ndarray:
    """The summed Huber objective for each row of theta (K, 7) at once (counts: bootstrap multiplicities)."""
    law = _law(np.asarray(theta)[:, None, :])
    with np.errstate(all="ignore"):
        pred = np.asarray(law.loss(points.n, points.d, points.u))
        r = np.log(pred) - np.log(points.loss) if objective != "raw-huber" else pred - points.loss
        h = _huber(r, delta)
    h = np.where(np.isfinite(h), h, np.inf)
    return h.sum(axis=1) if counts is None else (h * counts).sum(axis=1)


def _base_theta(base: ChinchillaLaw) -> np.ndarray:
    return np.array([math.log(base.A), math.log(base.B), math.log(base.E), base.alpha, base.beta], dtype=float)


def _minimise(
    points: RepeatPoints, base: ChinchillaLaw, objective: str, delta: float, joint: bool, counts: np.ndarray | None
) -> tuple[np.ndarray, float, bool]:
    """Float64 minimum: a 25x25 grid over log R_D* x log R_N*, then L-BFGS-B (the base too when ``joint``)."""
    from scipy.optimize import minimize

    lo, hi = (math.log(b) for b in R_BOUNDS)
    g = np.linspace(lo, hi, 25)
    rd, rn = np.meshgrid(g, g, indexing="ij")
    b0 = _base_theta(base)
    grid = np.column_stack([np.tile(b0, (rd.size, 1)), rd.ravel(), rn.ravel()])
    f = objective_values(grid, points, objective, delta, counts)
    start = grid[int(np.argmin(f))]

    def fun(x: np.ndarray) -> float:
        theta = x if joint else np.concatenate([b0, x])
        return float(objective_values(theta[None, :], points, objective, delta, counts)[0])

    box = [(lo, hi), (lo, hi)]
    if joint:
        box = [(-10.0, 30.0), (-10.0, 30.0), (-5.0, 3.0), (1e-3, 3.0), (1e-3, 3.0), *box]
    x0 = start if joint else start[5:]
    res = minimize(fun, x0, method="L-BFGS-B", bounds=box, options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12})
    x = res.x if res.fun <= fun(x0) else x0
    theta = x if joint else np.concatenate([b0, x])
    return theta, float(fun(x)), bool(res.success)


def _minimise_datablations(points: RepeatPoints, base: ChinchillaLaw, delta: float) -> tuple[np.ndarray, float, bool]:
    """The datablations notebook's procedure (see the module docstring): float32 PyTorch L-BFGS, 4x4 starts."""
    import torch

    b0 = _base_theta(base)
    a, b, e, alpha, beta = (float(v) for v in b0)
    u_n = np.minimum(points.n, np.asarray(DataConstrainedLaw(base, 1.0, 1.0).unique_params(points.u)))
    cols = np.stack(
        [u_n, points.u, np.maximum(points.d / points.u - 1, 0), np.maximum(points.n / u_n - 1, 0), points.loss], 1
    )
    x = torch.tensor(cols, dtype=torch.float32)
    target = torch.log(x[:, 4])

    def objective(p: torch.Tensor) -> torch.Tensor:
        r_d, r_n = p[0], p[1]
        n_eff = x[:, 0] + x[:, 0] * r_n * (1 - torch.exp(-x[:, 3] / r_n))
        d_eff = x[:, 1] + x[:, 1] * r_d * (1 - torch.exp(-x[:, 2] / r_d))
        terms = torch.stack([a - alpha * torch.log(n_eff), b - beta * torch.log(d_eff), torch.full_like(n_eff, e)])
        return torch.nn.functional.huber_loss(torch.logsumexp(terms, 0), target, delta=delta, reduction="sum")

    best, best_f = None, math.inf
    for r_d0 in DATABLATIONS_STARTS:
        for r_n0 in DATABLATIONS_STARTS:
            if r_d0 == 0 or r_n0 == 0:
                continue  # exp(-R/0): NaN from the first step
            p = torch.nn.Parameter(torch.tensor([r_d0, r_n0], dtype=torch.float32))
            opt = torch.optim.LBFGS([p], lr=0.1, history_size=10, max_iter=20, line_search_fn="strong_wolfe")

            def closure(p: torch.nn.Parameter = p, opt: torch.optim.LBFGS = opt) -> torch.Tensor:
                opt.zero_grad()
                value = objective(p)
                value.backward()
                return value

            for _ in range(50):
                opt.step(closure)
            with torch.no_grad():
                f = float(objective(p))
            if math.isfinite(f) and f < best_f and bool(torch.all(p > 0)):
                best, best_f = p.detach().double().numpy().copy(), f
    if best is None:
        raise ScalingError("the datablations procedure found no finite optimum from its 4x4 starts")
    theta = np.concatenate([b0, np.log(best)])
    return theta, float(objective_values(theta[None, :], points, "log-huber", delta)[0]), True


# ----------------------------------------------------------------------------- fit


@dataclass
class DataConstrainedFit:
    """R_D*, R_N* (and the base law, held or fitted) with the objective, its value and the bootstrap."""

    law: DataConstrainedLaw
    objective: str
    value: float  # the float64 summed objective at the estimate
    joint: bool
    base_source: str
    n_points: int
    delta: float
    converged: bool
    warnings: list[str] = field(default_factory=list)
    samples: np.ndarray | None = None  # (K, 7) columns DATA_CONSTRAINED_PARAMS
    n_failed: int = 0

    def row(self) -> np.ndarray:
        base = self.law.base
        return np.array([base.E, base.A, base.B, base.alpha, base.beta, self.law.r_d, self.law.r_n], dtype=float)

    @property
    def ci95(self) -> dict[str, tuple[float, float]]:
        if self.samples is None:
            return {}
        return {k: percentile_ci(self.samples[:, i]) for i, k in enumerate(DATA_CONSTRAINED_PARAMS)}

    @property
    def se(self) -> dict[str, float]:
        if self.samples is None:
            return {}
        return {k: bootstrap_se(self.samples[:, i]) for i, k in enumerate(DATA_CONSTRAINED_PARAMS)}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(zip(DATA_CONSTRAINED_PARAMS, map(float, self.row()), strict=True))
        settings = ("objective", "value", "delta", "joint", "base_source", "n_points", "converged")
        out.update({key: getattr(self, key) for key in settings}, warnings=list(self.warnings))
        if self.samples is not None:
            out.update(
                n_boot=int(self.samples.shape[0]),
                n_failed=self.n_failed,
                se=self.se,
                ci95={k: list(v) for k, v in self.ci95.items()},
                samples=self.samples.tolist(),
            )
        return out


def fit_data_constrained(
    points: RepeatPoints,
    *,
    base: ChinchillaLaw | None = None,
    base_source: str = "C4 constants (Muennighoff et al. 2023)",
    objective: str = "log-huber",
    joint: bool = False,
    delta: float = 1e-3,
) -> DataConstrainedFit:
    """Fit R_D*, R_N* with ``base`` held (default: the paper's C4 base), or everything when ``joint``."""
    if objective not in OBJECTIVES:
        raise ScalingError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if objective == "datablations" and joint:
        raise ScalingError("--objective datablations holds the base law (as the notebook does); drop --joint")
    base = base or MUENNIGHOFF2023.base
    require_identified(points, base)
    if len(points.n) < (7 if joint else 2) + 1:
        raise ScalingError(f"a data-constrained fit needs more runs than parameters, got {len(points.n)}")
    if objective == "datablations":
        theta, value, ok = _minimise_datablations(points, base, delta)
    else:
        theta, value, ok = _minimise(points, base, objective, delta, joint, None)
    law = _law(theta)
    fitted = DataConstrainedLaw(
        ChinchillaLaw(*(float(v) for v in (law.base.E, law.base.A, law.base.B, law.base.alpha, law.base.beta))),
        float(law.r_d),
        float(law.r_n),
        name="fit:data-constrained",
        description=f"data-constrained fit ({objective}{', joint' if joint else ', base held'})",
    )
    warnings = []
    for key, value_r in (("R_D*", fitted.r_d), ("R_N*", fitted.r_n)):
        if not R_BOUNDS[0] * 1.001 < value_r < R_BOUNDS[1] / 1.001:
            warnings.append(f"{key} = {value_r:.4g} sits on the search bound {R_BOUNDS}: not determined by the data")
    return DataConstrainedFit(
        fitted, objective, value, joint, "fitted jointly" if joint else base_source, len(points.n), delta, ok, warnings
    )


def bootstrap_data_constrained(
    fit: DataConstrainedFit, points: RepeatPoints, base: ChinchillaLaw, n_boot: int, seed: int = 0
) -> DataConstrainedFit:
    """Refit on ``n_boot`` resamples of the runs (with replacement), same objective and base."""
    if n_boot < 2:
        raise ScalingError(f"bootstrap needs at least 2 resamples, got {n_boot}")
    labels, inverse = np.unique(points.run_id.astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    rows, failed = [], 0
    for _ in range(n_boot):
        draw = rng.integers(0, labels.size, labels.size)
        counts = np.bincount(draw, minlength=labels.size)[inverse].astype(float)
        try:
            if fit.objective == "datablations":
                theta, _, _ = _minimise_datablations(
                    points.take(np.repeat(np.arange(len(counts)), counts.astype(int))), base, fit.delta
                )
            else:
                require_identified(points.take(counts > 0), base)
                theta, _, _ = _minimise(points, base, fit.objective, fit.delta, fit.joint, counts)
        except ScalingError:
            failed += 1
            continue
        law = _law(theta)
        rows.append(
            [
                float(law.base.E),
                float(law.base.A),
                float(law.base.B),
                float(law.base.alpha),
                float(law.base.beta),
                float(law.r_d),
                float(law.r_n),
            ]
        )
    fit.samples = np.array(rows, dtype=float).reshape(-1, len(DATA_CONSTRAINED_PARAMS))
    fit.n_failed = failed
    return fit


# ----------------------------------------------------------------------------- report


def render(fit: DataConstrainedFit, points: RepeatPoints) -> str:
    ci = fit.ci95

    def value(key: str, v: float) -> str:
        lo_hi = f"  [95% CI {ci[key][0]:.4g} .. {ci[key][1]:.4g}]" if key in ci else ""
        return f"{v:.6g}{lo_hi}"

    base = fit.law.base
    lines = [
        f"Data-constrained law (Muennighoff et al. 2023) on {fit.n_points} runs from {points.source}",
        f"  objective   {fit.objective} (summed Huber, delta {fit.delta:g}); value {fit.value:.10g}",
        f"  base        {fit.base_source}: E {base.E:.5g}, A {base.A:.5g}, B {base.B:.5g}, alpha {base.alpha:.5g}, beta {base.beta:.5g}",
        f"  R_D*        {value('R_D', float(fit.law.r_d))}",
        f"  R_N*        {value('R_N', float(fit.law.r_n))}",
        f"  epochs      {points.epochs.min():.3g} .. {points.epochs.max():.3g}",
    ]
    if fit.samples is not None:
        lines.append(f"  bootstrap   {fit.samples.shape[0]} resamples of runs ({fit.n_failed} could not be refitted)")
    lines += [f"  WARNING     {w}" for w in fit.warnings]
    return "\n".join(lines)


def plot_repetition(fit: DataConstrainedFit, points: RepeatPoints, path: str | Path) -> Path:
    """Loss against epochs at fixed compute: one series per (N, D) of the runs, with the law's curve
    L(N, D, D/epochs) drawn through each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = sorted({(float(n), float(d)) for n, d in zip(points.n, points.d, strict=True)})
    colours = plt.cm.viridis(np.linspace(0, 0.9, max(len(keys), 1)))
    for (n, d), colour in zip(keys, colours, strict=True):
        sel = (points.n == n) & (points.d == d)
        if sel.sum() < 2:
            continue
        ep = points.epochs[sel]
        ax.plot(ep, points.loss[sel], "o", color=colour, label=f"N={n:.3g}, D={d:.3g} (C={6 * n * d:.2g})")
        grid = np.geomspace(1.0, ep.max() * 1.2, 200)
        ax.plot(grid, np.asarray(fit.law.loss(n, d, d / grid)), "-", color=colour, lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("epochs D/U (fixed N and D: fixed compute)")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title(f"Repeated data: R_D* = {float(fit.law.r_d):.3g}, R_N* = {float(fit.law.r_n):.3g} ({fit.objective})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def load_base(path: str | Path | None) -> tuple[ChinchillaLaw, str]:
    """The base law to hold: an Approach 3 fit from ``scaling fit --json`` or the paper's C4 constants."""
    if path is None:
        return MUENNIGHOFF2023.base, "C4 constants (Muennighoff et al. 2023)"
    from scaling.plan.fitted_law import load_fit

    return load_fit(path).law, f"Approach 3 fit {path}"


def run(args: Any) -> int:
    """The ``--form data-constrained`` branch of ``scaling fit``."""
    points = load_repeat_points(args.path, params=args.params, only=args.only)
    base, source = load_base(args.base)
    fit = fit_data_constrained(
        points, base=base, base_source=source, objective=args.objective, joint=args.joint, delta=args.delta
    )
    if args.bootstrap:
        bootstrap_data_constrained(fit, points, base, args.bootstrap, args.seed)
    print(render(fit, points))
    if args.json:
        atomic_write_json(
            args.json,
            {
                "form": "data-constrained",
                "source": points.source,
                "params": args.params,
                "data_constrained": fit.as_dict(),
            },
        )
        print(f"\nwrote {args.json}")
    if args.plots:
        print(f"wrote {plot_repetition(fit, points, Path(args.plots) / 'repetition.png')}")
    return 0
