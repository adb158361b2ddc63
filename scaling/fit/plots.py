"""Figures for ``scaling fit --plots DIR`` (matplotlib, Agg backend: no display needed).

* ``loss_vs_N.png``, ``loss_vs_D.png``: final points, Kaplan's L(N)/L(D) on the frontier points, and
  Approach 3's infinite-data (resp. infinite-size) limit with a bootstrap band;
* ``loss_vs_C.png``: eval curves (or final points), the compute-efficient envelope, Kaplan's L(C_min)
  and Approach 3's compute-optimal loss L_opt(C) with a band, out to the reporting budget;
* ``isoflop.png``: each isoFLOP profile with its parabola and minimum (Approach 2);
* ``optimal_scaling.png``: N_opt(C), D_opt(C) from Approaches 1-3, with Hoffmann et al. 2022's
  Approach 3 law and Kaplan et al. 2020's N_opt ∝ C^0.73 overlaid;
* ``residuals.png``: log-residuals of Approach 3 and Kaplan's joint law;
* ``learning_curves.png`` (runs with curves) and ``holdout.png`` (with ``--holdout-above``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from scaling.fit.results import FitResults
from scaling.intervals import percentile_ci
from scaling.laws import HOFFMANN2022, KAPLAN2020, Allocation, ChinchillaLaw

# Kaplan et al. 2020 (sec. 6.1, Fig. 14): N_opt ∝ C_min^0.73. Only the slope is used; the line is
# anchored to this fit's Approach 3 optimum at the geometric middle of the plotted range.
KAPLAN_N_EXPONENT = KAPLAN2020.n_opt_exponent


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise 95% percentile interval over bootstrap rows (axis 0) of values on a grid (columns)."""
    return percentile_ci(values, axis=0)


def _logspace(lo: float, hi: float, n: int = 200) -> np.ndarray:
    return np.exp(np.linspace(math.log(lo), math.log(hi), n))


def _a3_draws(res: FitResults) -> ChinchillaLaw | None:
    """The bootstrap laws shaped (K, 1) to evaluate on a grid of M points, giving (K, M); None under 2 draws."""
    draws = res.approach3_draws(grid=True)
    return draws if draws is not None and np.shape(draws.E)[0] >= 2 else None


def _si(value: float, _pos: object = None) -> str:
    """Tick label in K/M/B/T (30K, 1M): ``3×10^4``-style labels collide on narrow log axes."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _log_ticks(axis: Any, dense: bool = False) -> None:
    """Labels at 1, 2 and 5 per decade in plain or K/M/B numbers; unlabelled minor ticks.

    Matplotlib's default labels every minor tick of a log axis spanning under a decade or two
    (``6×10^0``, ``2×10^4 3×10^4``), which overlap and read badly.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    subs = tuple(float(k) for k in range(1, 10)) if dense else (1.0, 2.0, 5.0)  # dense: a loss axis under a decade
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(_si))
    axis.set_minor_formatter(NullFormatter())


def _legend(ax: Any, below: bool = False) -> None:
    """The legend beside (or below) the axes, never over the data; constrained layout makes room for it."""
    if below:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    else:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _clip_to_data(ax: Any, values: np.ndarray, band: tuple[np.ndarray, np.ndarray] | None = None) -> str | None:
    """Fit the y axis (log) to ``values`` (data and central lines); a label saying so when ``band`` runs past it.

    A bootstrap band of a law the data do not identify spans orders of magnitude (1e-5 to 1e4 for
    the demo's Approach 3 at small N) and would flatten the data into a line; it is cut at the axes.
    """
    finite = values[np.isfinite(values) & (values > 0)]
    lo, hi = float(finite.min()) / 1.08, float(finite.max()) * 1.08
    ax.set_ylim(lo, hi)
    if band is None:
        return None
    b_lo, b_hi = np.nanmin(band[0]), np.nanmax(band[1])
    if b_lo < lo / 2 or b_hi > hi * 2:
        return f"Approach 3 95% CI, cut at the axes:\nit spans {b_lo:.2g} to {b_hi:.2g} (poorly identified)"
    return None


def figures(res: FitResults) -> Any:
    """(file name, figure) of every figure the results support, in order; the caller closes each."""
    plt = _plt()
    for name, func in (
        ("loss_vs_N.png", _loss_vs_size),
        ("loss_vs_D.png", _loss_vs_size),
        ("loss_vs_C.png", _loss_vs_c),
        ("isoflop.png", _isoflop),
        ("optimal_scaling.png", _optimal),
        ("residuals.png", _residuals),
        ("learning_curves.png", _learning_curves),
        ("holdout.png", _holdout),
    ):
        fig = func(res, plt, name)
        if fig is not None:
            yield name, fig


def write_plots(res: FitResults, out_dir: str | Path) -> list[Path]:
    """Write every figure the results support into ``out_dir``; returns the paths written."""
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, fig in figures(res):
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _loss_vs_size(res: FitResults, plt: Any, name: str) -> Any:
    p = res.points
    var = "N" if name == "loss_vs_N.png" else "D"
    x = p.n if var == "N" else p.d
    fig, ax = plt.subplots(figsize=(8.4, 4.6), layout="constrained")
    sc = ax.scatter(x, p.loss, c=np.log10(p.c), cmap="viridis", s=14, alpha=0.8, label="final points")
    shown = [p.loss]  # what the y axis must hold: the data and the central lines
    band = None
    fig.colorbar(sc, ax=ax, label="log10 C (FLOPs)")
    grid = _logspace(x.min() / 1.5, x.max() * 1.5)
    k = res.kaplan
    fit = (k.l_n if var == "N" else k.l_d) if k is not None else None
    if fit is not None:
        ax.scatter(fit.x, fit.y, facecolors="none", edgecolors="k", s=40, label=f"frontier (best loss per {var})")
        ax.plot(grid, fit.predict(grid), "k-", lw=1.5, label=f"Kaplan {fit.law}: alpha_{var}={fit.alpha:.4g}")
        shown.append(fit.predict(x))
        ks = k.samples if k is not None else {}
        if f"alpha_{var}" in ks and len(ks[f"alpha_{var}"]) >= 2:
            al, xc = ks[f"alpha_{var}"], ks[f"{var}_c"]
            e = ks.get(f"E_{var}", np.zeros_like(al))
            with np.errstate(all="ignore"):
                curves = e[:, None] + (xc[:, None] / grid[None, :]) ** al[:, None]
            lo, hi = _band(curves)
            ax.fill_between(grid, lo, hi, color="k", alpha=0.12, lw=0, label="Kaplan 95% CI")
    if res.approach3 is not None:

        def limit(law: ChinchillaLaw) -> np.ndarray:
            """The law with the other variable infinite: E + A/N^alpha (D -> inf) or E + B/D^beta (N -> inf)."""
            return law.loss(grid, math.inf) if var == "N" else law.loss(math.inf, grid)

        shown.append(limit(res.approach3)[(grid >= x.min()) & (grid <= x.max())])
        ax.plot(
            grid,
            limit(res.approach3),
            "C3--",
            lw=1.5,
            label=f"Approach 3, {'D' if var == 'N' else 'N'}→∞: E + {'A/N^alpha' if var == 'N' else 'B/D^beta'}",
        )
        draws = _a3_draws(res)
        if draws is not None:
            band = _band(limit(draws))
            band_art = ax.fill_between(grid, *band, color="C3", alpha=0.15, lw=0, label="Approach 3 95% CI")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(grid[0], grid[-1])
    cut = _clip_to_data(ax, np.concatenate(shown), band)
    if cut:
        band_art.set_label(cut)
    _log_ticks(ax.xaxis)
    _log_ticks(ax.yaxis, dense=True)
    ax.set_xlabel(f"{var} ({'parameters: ' + p.n_from if var == 'N' else 'tokens'})")
    ax.set_ylabel("loss")
    ax.set_title(f"Loss vs {var}")
    _legend(ax)
    return fig


def _loss_vs_c(res: FitResults, plt: Any, name: str) -> Any:
    p = res.points
    fig, ax = plt.subplots(figsize=(7.0, 6.0), layout="constrained")
    curves = [c for c in p.curves if c is not None and len(c) >= 2]
    cmap = plt.get_cmap("viridis")
    ln_lo, ln_hi = math.log(p.n.min()), math.log(p.n.max())
    for i, cv in enumerate(curves):
        t = (math.log(cv.n) - ln_lo) / max(ln_hi - ln_lo, 1e-12)
        ax.plot(
            cv.flops, cv.loss, color=cmap(t), lw=0.8, alpha=0.6, label="eval curves (colour: N)" if i == 0 else None
        )
    sc = ax.scatter(
        p.c, p.loss, c=np.log10(p.n), cmap="viridis", vmin=ln_lo / math.log(10), vmax=ln_hi / math.log(10), s=12
    )
    sc.set_label("final points (colour: N)")
    fig.colorbar(sc, ax=ax, label=f"log10 N ({p.n_from})")
    env = res.envelope
    if env is not None and len(env):
        ax.plot(env.c, env.loss, "k.", ms=4, label=f"compute-efficient frontier ({env.mode})")
    cmax = max(float(p.c.max()), res.at_flops)
    grid = _logspace(float(p.c.min()), cmax)
    k = res.kaplan
    if k is not None and k.l_c is not None:
        ax.plot(grid, k.l_c.predict(grid), "k-", lw=1.5, label=f"Kaplan L(C_min): alpha_C={k.l_c.alpha:.4g}")
    if res.approach3 is not None:
        opt = res.approach3.compute_optimal(grid).loss
        ax.plot(grid, opt, "C3--", lw=1.5, label="Approach 3 compute-optimal L(N_opt, D_opt)")
        draws = _a3_draws(res)
        if draws is not None:
            lo, hi = _band(draws.compute_optimal(grid).loss)
            ax.fill_between(grid, lo, hi, color="C3", alpha=0.15, lw=0, label="Approach 3 95% CI")
        l_star = float(res.approach3.compute_optimal(res.at_flops).loss)
        ax.plot([res.at_flops], [l_star], "C3*", ms=12, label=f"reporting budget C*={res.at_flops:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    shown = [p.loss, *[cv.loss for cv in curves]]
    if k is not None and k.l_c is not None:
        shown.append(k.l_c.predict(grid))
    if res.approach3 is not None:
        shown.append(res.approach3.compute_optimal(grid).loss)
    _clip_to_data(ax, np.concatenate(shown))
    _log_ticks(ax.yaxis, dense=True)
    ax.set_xlabel(f"C (FLOPs: {p.c_from})")
    ax.set_ylabel("loss")
    ax.set_title("Loss vs compute")
    _legend(ax, below=True)
    return fig


def _isoflop(res: FitResults, plt: Any, name: str) -> Any:
    r = res.approach2
    if r is None or not r.budgets:
        return None
    from scaling.fit.approach2 import group_budgets

    p = res.points
    labels, values, _ = group_budgets(p, res.options.get("budget_tolerance", 0.05))
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    cmap = plt.get_cmap("plasma")
    lb = np.log(values)
    span = max(lb.max() - lb.min(), 1e-12)
    for b in r.budgets:
        g = int(np.argmin(np.abs(lb - math.log(b.budget))))
        m = labels == g
        color = cmap(0.85 * (math.log(b.budget) - lb.min()) / span)
        ax.scatter(p.n[m], p.loss[m], color=color, s=14)
        nn = _logspace(b.n_range[0] / 1.3, b.n_range[1] * 1.3, 100)
        ax.plot(nn, b.curve(nn), color=color, lw=1.2, label=f"C={b.budget:.3g}")
        ax.plot([b.n_opt], [b.loss_min], marker="*" if b.used else "x", color=color, ms=11, mec="k", mew=0.6)
    ax.set_xscale("log")
    _log_ticks(ax.xaxis)
    ax.set_xlabel(f"N ({p.n_from})")
    ax.set_ylabel("loss")
    ax.set_title("IsoFLOP profiles (Approach 2): ★ minimum, × left out", fontsize=11)
    if len(r.budgets) <= 12:
        _legend(ax)
    return fig


def _side(alloc: Allocation, key: str) -> np.ndarray:
    """N_opt or D_opt of an allocation, by the panel's key."""
    return alloc.n if key == "N_opt" else alloc.d


def _optimal(res: FitResults, plt: Any, name: str) -> Any:
    p = res.points
    if res.approach3 is None and res.approach1 is None and (res.approach2 is None or res.approach2.fit is None):
        return None
    lo = float(p.c.min())
    if res.approach1 is not None:
        lo = min(lo, float(res.approach1.c.min()))
    grid = _logspace(lo / 2, max(float(p.c.max()), res.at_flops) * 2)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.6), layout="constrained")
    hoff = HOFFMANN2022.compute_optimal(grid)
    for ax, key, label in ((axes[0], "N_opt", "N_opt (parameters)"), (axes[1], "D_opt", "D_opt (tokens)")):
        if res.approach1 is not None:
            f = res.approach1
            pts = f.n_opt if key == "N_opt" else f.d_opt
            line = f.n_at(grid) if key == "N_opt" else f.d_at(grid)
            ax.plot(f.c, pts, "o", color="C0", ms=3, alpha=0.6)
            exp_ = f.a if key == "N_opt" else f.b
            ax.plot(grid, line, "-", color="C0", lw=3.5, alpha=0.45, label=f"Approach 1: exponent {exp_:.4g}")
        if res.approach2 is not None and res.approach2.fit is not None:
            f = res.approach2.fit
            pts = f.n_opt if key == "N_opt" else f.d_opt
            line = f.n_at(grid) if key == "N_opt" else f.d_at(grid)
            ax.plot(f.c, pts, "s", color="C1", ms=5, mec="k", mew=0.5)
            exp_ = f.a if key == "N_opt" else f.b
            ax.plot(grid, line, "-", color="C1", lw=1.3, label=f"Approach 2: exponent {exp_:.4g}")
        if res.approach3 is not None:
            opt = res.approach3.compute_optimal(grid)
            exp_ = res.approach3.a if key == "N_opt" else res.approach3.b
            ax.plot(grid, _side(opt, key), "-", color="C3", lw=1.6, label=f"Approach 3 (this fit): exponent {exp_:.4g}")
            draws = _a3_draws(res)
            if draws is not None:
                lo, hi = _band(_side(draws.compute_optimal(grid), key))
                ax.fill_between(grid, lo, hi, color="C3", alpha=0.15, lw=0, label="Approach 3 95% CI")
            if key == "N_opt":
                mid = math.exp(0.5 * (math.log(grid[0]) + math.log(grid[-1])))
                n_mid = float(res.approach3.n_opt(mid))
                ax.plot(
                    grid,
                    n_mid * (grid / mid) ** KAPLAN_N_EXPONENT,
                    ":",
                    color="0.3",
                    lw=1.4,
                    label="Kaplan 2020: N_opt ∝ C^0.73 (slope only)",
                )
        hexp = HOFFMANN2022.a if key == "N_opt" else HOFFMANN2022.b
        ax.plot(grid, _side(hoff, key), "--", color="k", lw=1.2, label=f"Hoffmann 2022 Approach 3: exponent {hexp:.4g}")
        ax.axvline(res.at_flops, color="0.6", lw=0.8, ls="-.")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("C (FLOPs)")
        ax.set_ylabel(label)
        _legend(ax, below=True)
    axes[0].set_title("Compute-optimal model size")
    axes[1].set_title("Compute-optimal tokens")
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))  # room for the footnote
    fig.text(
        0.5,
        0.005,
        f"C: {p.c_from} for Approaches 1-2; C = 6ND for the Approach 3 and Hoffmann lines. "
        f"Dash-dot: reporting budget C* = {res.at_flops:.3g}.",
        ha="center",
        fontsize=8,
        color="0.3",
    )
    return fig


def _residuals(res: FitResults, plt: Any, name: str) -> Any:
    p = res.points
    panels = []
    if res.approach3 is not None:
        panels.append(("Approach 3", np.log(np.asarray(res.approach3.loss(p.n, p.d), dtype=float)) - np.log(p.loss)))
    if res.kaplan is not None and res.kaplan.joint is not None:
        panels.append(("Kaplan joint L(N,D)", np.log(res.kaplan.joint.predict(p.n, p.d)) - np.log(p.loss)))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.8 * len(panels), 4.2), squeeze=False, layout="constrained")
    for i, (ax, (title, r)) in enumerate(zip(axes[0], panels, strict=True)):
        sc = ax.scatter(p.n, r, c=np.log10(p.c), cmap="viridis", s=12)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        _log_ticks(ax.xaxis)
        ax.set_xlabel(f"N ({p.n_from})")
        if i == 0:
            ax.set_ylabel("log(predicted) - log(observed)")
        ax.set_title(f"{title}: rms {np.sqrt(np.mean(r**2)):.3g}")
        fig.colorbar(sc, ax=ax, label="log10 C (FLOPs)")
    return fig


def _learning_curves(res: FitResults, plt: Any, name: str) -> Any:
    lc = res.learning
    if lc is None or not lc.runs:
        return None
    runs = sorted(lc.runs, key=lambda r: r.n)
    pick = [runs[i] for i in np.unique(np.linspace(0, len(runs) - 1, min(6, len(runs))).round().astype(int))]
    by_id = {c.run_id: c for c in res.points.curves if c is not None}
    fig, ax = plt.subplots(figsize=(8.4, 4.6), layout="constrained")
    for i, r in enumerate(pick):
        cv = by_id.get(r.run_id)
        if cv is None:
            continue
        color = f"C{i}"
        tt = _logspace(float(cv.tokens[0]), float(cv.tokens[-1]))
        ax.plot(cv.tokens, cv.loss, "o", color=color, ms=3, label=f"N={_si(r.n)}, D={_si(float(cv.tokens[-1]))}")
        ax.plot(tt, r.full.predict(tt), "-", color=color, lw=1)
        if r.partial is not None:
            ax.plot(tt, r.partial.predict(tt), ":", color=color, lw=1.3)
            ax.axvline(r.t_used, color=color, lw=0.5, alpha=0.5)
    ax.plot([], [], "k-", lw=1, label="fit on all points")
    ax.plot([], [], "k:", lw=1.3, label=f"fit on tokens <= {lc.fraction:g} D")
    ax.axvline(math.nan, color="k", lw=0.5, alpha=0.5, label=f"tokens = {lc.fraction:g} D")
    ax.set_xscale("log")
    ax.set_yscale("log")
    # Every run's final loss stays on the axis, drawn or not, so the six curves sit in the sweep's range.
    drawn = [by_id[r.run_id].loss for r in pick if r.run_id in by_id]
    _clip_to_data(ax, np.concatenate([res.points.loss, *drawn]))
    _log_ticks(ax.xaxis)
    _log_ticks(ax.yaxis, dense=True)
    ax.set_xlabel("tokens")
    ax.set_ylabel("val loss")
    ax.set_title(f"Learning curves ({lc.law} law): do tokens <= {lc.fraction:g} D predict the end?")
    _legend(ax)
    return fig


def _holdout(res: FitResults, plt: Any, name: str) -> Any:
    h = res.holdout
    if h is None or not h.rows:
        return None
    actual = np.array([r.actual for r in h.rows])
    fig, ax = plt.subplots(figsize=(5.2, 4.8), layout="constrained")
    ax.plot(actual, [r.pred_approach3 for r in h.rows], "o", color="C3", label="Approach 3")
    pk = np.array([r.pred_kaplan for r in h.rows])
    if np.isfinite(pk).any():
        ax.plot(actual, pk, "s", color="0.3", mfc="none", label="Kaplan joint")
    lo, hi = actual.min() * 0.97, actual.max() * 1.03
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.fill_between([lo, hi], [lo * 0.99, hi * 0.99], [lo * 1.01, hi * 1.01], color="0.85", zorder=0, label="±1%")
    best = h.best_run()
    if best is not None:
        ax.plot([best.actual], [best.pred_approach3], "*", ms=13, color="C3", mec="k", label="best held-out run")
    ax.set_xlabel("observed loss (held-out runs)")
    ax.set_ylabel("predicted loss")
    ax.set_title(f"Hold-out: fit on C < {h.threshold:.3g}")
    _legend(ax)
    return fig
