"""The vectorised bootstrap of ``scaling fit`` (issue 16, item 7) against the per-resample refits it replaces.

Same resamples (one counts matrix), same answers: the envelope exactly, Kaplan's pure laws to rounding, the
joint law to the optimum of a tightly converged scipy fit (scipy's default tolerances stop ~1e-5 short).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import least_squares

from scaling.fit.approach1 import compute_envelope
from scaling.fit.bootstrap import resample_counts
from scaling.fit.kaplan import _joint_jacobian, _joint_log_pred, bootstrap_kaplan, fit_kaplan
from scaling.fit.points import FitPoints, load_points
from scaling.fit.resampled_envelope import resampled_envelopes

DEMO = Path(__file__).resolve().parents[1] / "results" / "demo_reference"
N_CHECKED = 60


@pytest.fixture(scope="module")
def demo() -> tuple[FitPoints, np.ndarray]:
    points = load_points(str(DEMO), params="with_head", flops="exact")
    return points, resample_counts(points.groups, N_CHECKED, np.random.default_rng(3))


def resampled(points: FitPoints, row: np.ndarray) -> FitPoints:
    return points.take(np.repeat(np.arange(len(points)), row.astype(int)))


def test_resampled_envelopes_equal_compute_envelope(demo: tuple[FitPoints, np.ndarray]) -> None:
    points, counts = demo
    env = resampled_envelopes(points, counts)
    for i, row in enumerate(counts):
        ref = compute_envelope(resampled(points, row))
        keep = env.keep[i]
        for got, want in ((env.c, ref.c), (env.loss, ref.loss), (env.n, ref.n), (env.d, ref.d)):
            np.testing.assert_array_equal(got[i, keep], want)


@pytest.mark.parametrize("irreducible", [False, True])
def test_kaplan_bootstrap_equals_per_resample_refits(demo: tuple[FitPoints, np.ndarray], irreducible: bool) -> None:
    points, counts = demo
    env = compute_envelope(points)
    warm = fit_kaplan(points, env.c, env.loss, irreducible=irreducible)
    batch = bootstrap_kaplan(points, counts, warm, resampled_envelopes(points, counts))
    pure = [k for k in batch if not k.startswith("joint_")]
    for i, row in enumerate(counts):
        q = resampled(points, row)
        e = compute_envelope(q)
        fits = fit_kaplan(q, e.c, e.loss, irreducible=irreducible, warm=warm)
        ref = fits.quantities()
        laws = {"N": fits.l_n, "D": fits.l_d, "C": fits.l_c}
        for key in pure:
            law = laws[key[-1] if key.startswith(("alpha_", "E_")) else key[0]]
            if law is not None and not law.converged:
                continue  # e.g. 3 points for 3 parameters: neither optimiser pins that down
            # Pure laws are closed-form (rounding); the irreducible ones stop within ~1e-5 of each other.
            np.testing.assert_allclose(
                batch[key][i], ref[key], rtol=1e-9 if not irreducible else 1e-4, atol=1e-12, err_msg=key
            )
    if irreducible:
        return
    # Joint law: compare with scipy from the same start, tightly converged.
    for i, row in enumerate(counts[:20]):
        q = resampled(points, row)
        ln, ld, ll = np.log(q.n), np.log(q.d), np.log(q.loss)
        ref = least_squares(
            lambda t: _joint_log_pred(np.append(t, 0.0), ln, ld) - ll,  # noqa: B023
            warm.joint.theta[:4],
            jac=lambda t: _joint_jacobian(np.append(t, 0.0), ln, ld, False),  # noqa: B023
            bounds=([1e-4, 1e-4, -1e4, -1e4], [5.0, 5.0, 1e5, 1e5]),
            method="trf",
            x_scale="jac",
            ftol=1e-15,
            xtol=1e-15,
            gtol=1e-15,
            max_nfev=10000,
        )
        np.testing.assert_allclose(batch["joint_alpha_N"][i], ref.x[0], rtol=1e-6)
        np.testing.assert_allclose(batch["joint_alpha_D"][i], ref.x[1], rtol=1e-6)


def test_a_resample_with_one_size_gives_nan_not_an_error(demo: tuple[FitPoints, np.ndarray]) -> None:
    points, _ = demo
    env = compute_envelope(points)
    warm = fit_kaplan(points, env.c, env.loss)
    only = np.zeros((1, len(points)))
    only[0, np.flatnonzero(points.n == points.n[0])] = 1.0  # every run of one size: L(N) cannot be fitted
    out = bootstrap_kaplan(points, only, warm, resampled_envelopes(points, only))
    assert np.isnan(out["alpha_N"][0])
    assert np.isnan(out["joint_alpha_N"][0])
