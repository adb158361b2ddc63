"""Scaling laws as formulas: the one home of the Chinchilla and Kaplan laws and the published constants.

Everything that turns law parameters into a loss or a compute-optimal (N, D) lives here, so the fitter,
the bootstrap, the report, the planner and ``scaling compare`` evaluate the very same expressions. This
module sits below ``grid/``, ``plan/`` and ``fit/`` in the import graph: it imports numpy, scipy and
:mod:`scaling.errors` only (never torch), so each of them can use it without a loop.

Vectorised over bootstrap draws. A :class:`ChinchillaLaw`'s parameters may be floats (one law) or
arrays that broadcast against each other and against N, D or C (many laws at once):
``ChinchillaLaw.from_rows(samples)`` turns K bootstrap rows (E, A, B, alpha, beta) into one law whose
parameters have shape (K,), and ``from_rows(samples[:, None, :])`` gives shape (K, 1), which broadcasts
against a grid of M budgets to (K, M). A confidence interval is then a percentile over the draws of
the exact code path that gave the point estimate.

Built-in laws (the loss is in nats per token on each paper's own corpus and
tokenizer, so absolute values do not transfer between laws or to your data):

* ``kaplan2020`` -- Kaplan et al. 2020, "Scaling Laws for Neural Language
  Models", eq. (1.5)/(4.1): L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D with
  α_N = 0.076, α_D = 0.095, N_c = 8.8e13 non-embedding parameters,
  D_c = 5.4e13 tokens (WebText2, GPT-2 BPE). Its compute-efficient allocation is
  the paper's empirical frontier (sec. 6.1, Fig. 14), N_opt = 1.3e9 ·
  (C / PF-day)^0.73 with 1 PF-day = 8.64e19 FLOPs, and D = C / (6N). (Minimising
  eq. 1.5 itself along C = 6ND would give N ∝ C^0.56 instead; the 0.73 frontier
  comes from early-stopped runs, which is the discrepancy Porian et al. 2024 resolve.)
* ``hoffmann2022`` -- Hoffmann et al. 2022, "Training Compute-Optimal Large
  Language Models" ("Chinchilla"), Approach 3, eq. (2):
  L = E + A/N^α + B/D^β with the unrounded fit E = exp(0.5267228),
  A = exp(6.0073404), B = exp(6.0179186), α = 0.33917084, β = 0.2849083
  (N counts all parameters; MassiveText).
* ``besiroglu2024`` -- Besiroglu et al. 2024, "Chinchilla Scaling: A replication
  attempt" (Epoch AI, arXiv 2404.10102), the same form refitted to the data of
  Hoffmann's Fig. 4: E = 1.8172, A = 482.01, B = 2085.43, α = 0.3478, β = 0.3658.

Compute-optimal allocation of the Chinchilla form under C = 6ND (Hoffmann et al.
2022, eq. 4): N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b with
G = (αA / (βB))^(1/(α+β)), a = β/(α+β), b = α/(α+β).

Inference-aware allocation (Sardana et al. 2023, "Beyond Chinchilla-Optimal:
Accounting for Inference in Language Model Scaling Laws"): for a target loss
and T inference tokens, minimise training 6ND plus inference 2NT over the
iso-loss curve D(N).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scaling.errors import ScalingError

PF_DAY = 1e15 * 86400  # FLOPs in one petaflop/s-day (Kaplan et al. 2020's compute unit)

#: The Chinchilla law's parameters, in the column order of bootstrap samples and fit JSON.
CHINCHILLA_PARAMS: tuple[str, ...] = ("E", "A", "B", "alpha", "beta")

#: The corpus and tokenizer of Hoffmann et al. 2022's runs, on which their and Besiroglu et al.'s losses are measured.
MASSIVETEXT = "MassiveText, SentencePiece 32k"

#: A float for one law, or an array over bootstrap draws and/or budgets.
Value = Any


def _plain(x: Value) -> Value:
    """A Python float for a 0-d result (what one law gives), the array otherwise."""
    return float(x) if np.ndim(x) == 0 else np.asarray(x)


@dataclass(frozen=True)
class Allocation:
    """A model size and token count, with the law's predicted loss and the 6ND training FLOPs.

    Floats for one law; arrays (one entry per bootstrap draw and/or budget) for a vectorised law.
    """

    n: Value
    d: Value
    loss: Value

    @property
    def flops(self) -> Value:
        return 6.0 * self.n * self.d

    @property
    def tokens_per_param(self) -> Value:
        return self.d / self.n


class Law(ABC):
    """A loss law L(N, D) with its compute-optimal rule."""

    name: str
    description: str
    n_count: str  # which parameter count N means: non_embedding | with_head | total
    corpus: str
    #: whether compute_optimal() minimises loss() along C = 6ND (False for Kaplan's empirical frontier)
    optimum_minimises_loss = True

    @abstractmethod
    def loss(self, n: Any, d: Any) -> Any:
        """Predicted loss (works elementwise on numpy arrays)."""

    @abstractmethod
    def compute_optimal(self, flops: Any) -> Allocation:
        """The law's compute-optimal (N, D) for a budget C = 6ND."""

    @abstractmethod
    def tokens_for_loss(self, n: float, loss: float) -> float:
        """D such that L(n, D) = loss; ``inf`` when ``n`` cannot reach it."""

    @abstractmethod
    def min_params_for_loss(self, loss: float) -> float:
        """The N below which ``loss`` is unreachable with any amount of data."""

    def optimal_flops_for_loss(self, loss: float) -> float:
        """The smallest C whose compute-optimal allocation reaches ``loss`` (bisection in log C)."""
        lo, hi = math.log(1e6), math.log(1e40)
        if self.compute_optimal(math.exp(hi)).loss > loss:
            return math.inf
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if self.compute_optimal(math.exp(mid)).loss > loss:
                lo = mid
            else:
                hi = mid
        return math.exp(hi)


@dataclass(frozen=True)
class ChinchillaLaw(Law):
    """L = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2) and its compute-optimal allocation (eq. 4).

    The five parameters are floats (one law) or broadcastable arrays (one law per bootstrap draw; see
    the module docstring). Every method is elementwise, so a draw that overflows gives ``inf`` or
    ``nan`` in its own entry only, silently: the percentile intervals drop such draws.
    ``tokens_for_loss``, ``min_params_for_loss`` and ``optimal_flops_for_loss`` (used by the planner)
    are for one law.
    """

    E: Value
    A: Value
    B: Value
    alpha: Value
    beta: Value
    name: str = field(default="chinchilla", kw_only=True)
    description: str = field(default="L = E + A/N^alpha + B/D^beta", kw_only=True)
    n_count: str = field(default="total", kw_only=True)
    corpus: str = field(default="unknown corpus", kw_only=True)

    @classmethod
    def from_rows(cls, rows: Any, **labels: str) -> ChinchillaLaw:
        """The law(s) of rows (..., 5) ordered as :data:`CHINCHILLA_PARAMS`: (K, 5) bootstrap samples give
        parameters of shape (K,); ``samples[:, None, :]`` gives (K, 1), to evaluate on a grid of budgets."""
        columns = np.moveaxis(np.asarray(rows, dtype=float), -1, 0)
        if columns.shape[0] != len(CHINCHILLA_PARAMS):
            raise ScalingError(
                f"Chinchilla law rows must have {len(CHINCHILLA_PARAMS)} columns, got {columns.shape[0]}"
            )
        return cls(*columns, **labels)

    def rows(self) -> np.ndarray:
        """The parameters as rows (..., 5) ordered as :data:`CHINCHILLA_PARAMS` (the inverse of ``from_rows``)."""
        return np.stack(np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in self._params())), axis=-1)

    def checked(self) -> ChinchillaLaw:
        """This law, or a one-line ScalingError naming the first parameter that is not finite, or not
        positive where the form needs it (A, B, α, β). For laws read from user files; a fit may
        legitimately stop with an exponent on its bound 0, so construction itself does not check."""
        values = dict(zip(CHINCHILLA_PARAMS, self._params(), strict=True))
        for key, value in values.items():
            if not np.all(np.isfinite(value)):
                raise ScalingError(f"law {self.name}: {key} must be a finite number, got {value!r}")
        for key in ("A", "B", "alpha", "beta"):
            if not np.all(np.asarray(values[key]) > 0):
                raise ScalingError(f"law {self.name}: {key} must be positive, got {values[key]}")
        return self

    def _params(self) -> tuple[Value, Value, Value, Value, Value]:
        return self.E, self.A, self.B, self.alpha, self.beta

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(np.asarray(v, dtype=float) for v in self._params())

    @property
    def a(self) -> Value:
        """Exponent of N_opt(C): β / (α + β)."""
        _, _, _, alpha, beta = self._arrays()
        with np.errstate(all="ignore"):
            return _plain(beta / (alpha + beta))

    @property
    def b(self) -> Value:
        """Exponent of D_opt(C): α / (α + β)."""
        _, _, _, alpha, beta = self._arrays()
        with np.errstate(all="ignore"):
            return _plain(alpha / (alpha + beta))

    @property
    def G(self) -> Value:  # noqa: N802 - Hoffmann's symbol
        """G = (α A / (β B))^(1 / (α + β))."""
        _, a_coef, b_coef, alpha, beta = self._arrays()
        with np.errstate(all="ignore"):
            return _plain(np.power(alpha * a_coef / (beta * b_coef), 1.0 / (alpha + beta)))

    def loss(self, n: Any, d: Any) -> Value:
        """E + A/N^α + B/D^β, elementwise (broadcast over draws, N and D)."""
        e, a_coef, b_coef, alpha, beta = self._arrays()
        n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
        with np.errstate(all="ignore"):
            return _plain(e + a_coef / np.power(n, alpha) + b_coef / np.power(d, beta))

    def n_opt(self, flops: Any) -> Value:
        """Compute-optimal parameters under C = 6ND: N_opt = G (C/6)^a."""
        with np.errstate(all="ignore"):
            return _plain(self.G * np.power(np.asarray(flops, dtype=float) / 6.0, self.a))

    def d_opt(self, flops: Any) -> Value:
        """Compute-optimal tokens under C = 6ND: D_opt = G^-1 (C/6)^b."""
        with np.errstate(all="ignore"):
            return _plain(np.power(np.asarray(flops, dtype=float) / 6.0, self.b) / self.G)

    def compute_optimal(self, flops: Any) -> Allocation:
        n, d = self.n_opt(flops), self.d_opt(flops)
        return Allocation(n, d, self.loss(n, d))

    def tokens_for_loss(self, n: float, loss: float) -> float:
        rem = loss - self.E - self.A / n**self.alpha
        return (self.B / rem) ** (1.0 / self.beta) if rem > 0 else math.inf

    def min_params_for_loss(self, loss: float) -> float:
        gap = loss - self.E
        return (self.A / gap) ** (1.0 / self.alpha) if gap > 0 else math.inf

    def optimal_flops_for_loss(self, loss: Any) -> Value:
        """The compute C whose optimal loss is ``loss``, elementwise (inf where loss <= E)."""
        # L_opt(C) = E + K (C/6)^(-αβ/(α+β)) in closed form; invert it.
        e, _, _, alpha, beta = self._arrays()
        gap = np.asarray(loss, dtype=float) - e
        k = np.asarray(self.compute_optimal(6.0).loss, dtype=float) - e  # value at C/6 = 1
        with np.errstate(all="ignore"):
            flops = 6.0 * np.power(gap / k, -(alpha + beta) / (alpha * beta))
        return _plain(np.where(gap > 0, flops, np.inf))


def compute_multiplier(law_a: ChinchillaLaw, law_b: ChinchillaLaw, flops: Any) -> Value:
    """k(C): the compute variant A needs to reach B's compute-optimal loss at C, divided by C.

    k > 1: B reaches the loss with k times less compute than A (B is better); k = inf where B's
    optimal loss at C lies below A's irreducible loss E. Elementwise over draws and budgets, both
    laws under C = 6ND. With the same exponents and E, k does not depend on C; otherwise, as
    L_opt - E ~ C^-γ with γ = αβ/(α+β), k grows like C^(γ_B/γ_A - 1) at large C.
    """
    flops = np.asarray(flops, dtype=float)
    with np.errstate(all="ignore"):
        return _plain(np.asarray(law_a.optimal_flops_for_loss(law_b.compute_optimal(flops).loss)) / flops)


@dataclass(frozen=True)
class KaplanLaw(Law):
    """L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D (Kaplan et al. 2020, eq. 1.5) with the C^0.73 frontier."""

    alpha_n: float = 0.076
    alpha_d: float = 0.095
    n_c: float = 8.8e13
    d_c: float = 5.4e13
    n_opt_coeff: float = 1.3e9  # N_opt at C_min = 1 PF-day (Kaplan et al. 2020, Fig. 14)
    n_opt_exponent: float = 0.73
    name: str = "kaplan2020"
    description: str = "Kaplan et al. 2020: L = [(Nc/N)^(aN/aD) + Dc/D]^aD, N_opt = 1.3e9 (C/PF-day)^0.73"
    n_count: str = "non_embedding"
    corpus: str = "WebText2, GPT-2 BPE"
    optimum_minimises_loss = False

    def loss(self, n: Any, d: Any) -> Any:
        return np.power(
            np.power(self.n_c / np.asarray(n, float), self.alpha_n / self.alpha_d) + self.d_c / d, self.alpha_d
        )

    def compute_optimal(self, flops: Any) -> Allocation:
        n = self.n_opt_coeff * (flops / PF_DAY) ** self.n_opt_exponent
        d = flops / (6.0 * n)
        return Allocation(n, d, _plain(self.loss(n, d)))

    def tokens_for_loss(self, n: float, loss: float) -> float:
        rem = loss ** (1.0 / self.alpha_d) - (self.n_c / n) ** (self.alpha_n / self.alpha_d)
        return self.d_c / rem if rem > 0 else math.inf

    def min_params_for_loss(self, loss: float) -> float:
        return self.n_c / loss ** (1.0 / self.alpha_n)


#: Hoffmann et al. 2022, Approach 3, eq. (2), unrounded (N: all parameters; loss on MassiveText).
HOFFMANN2022 = ChinchillaLaw(
    *(math.exp(0.5267228), math.exp(6.0073404), math.exp(6.0179186), 0.33917084, 0.2849083),
    name="hoffmann2022",
    description="Hoffmann et al. 2022 (Chinchilla) Approach 3: L = E + A/N^alpha + B/D^beta",
    corpus=MASSIVETEXT,
)
#: Besiroglu et al. 2024's refit of the same form to Hoffmann's Fig. 4 data (same N and corpus).
BESIROGLU2024 = ChinchillaLaw(
    *(1.8172, 482.01, 2085.43, 0.3478, 0.3658),
    name="besiroglu2024",
    description="Besiroglu et al. 2024 (Epoch AI) replication of Chinchilla Approach 3",
    corpus=MASSIVETEXT,
)
KAPLAN2020 = KaplanLaw()

LAWS: dict[str, Law] = {law.name: law for law in (KAPLAN2020, HOFFMANN2022, BESIROGLU2024)}


def get_law(name: str) -> Law:
    """A built-in law by name, or a one-line error listing the known names."""
    try:
        return LAWS[name]
    except KeyError:
        raise ScalingError(f"unknown law {name!r}; known: {', '.join(LAWS)}") from None


# ----------------------------------------------------------------------------- inference-aware


def inference_optimal(law: Law, reference: Allocation, inference_tokens: float) -> Allocation:
    """The (N, D) reaching ``reference.loss`` for the least 6ND + 2N·T (Sardana et al. 2023).

    The objective along the iso-loss curve diverges as N approaches the smallest
    model that can reach the loss (D → ∞) and grows linearly for large N, so it
    is scanned on a log grid and the best cell refined by bounded Brent search; for
    the Chinchilla form the root of its derivative is found directly instead
    (:func:`chinchilla_inference_optimal`), the path its bootstrap draws take too.
    """
    t = float(inference_tokens)
    if not (math.isfinite(t) and t >= 0):
        raise ScalingError(f"inference tokens must be a non-negative number, got {inference_tokens!r}")
    target = reference.loss
    n_min = law.min_params_for_loss(target)
    if not math.isfinite(n_min):
        raise ScalingError(f"law {law.name} cannot reach loss {target:.4g}")
    if isinstance(law, ChinchillaLaw):
        best = chinchilla_inference_optimal(law, target, t)
        return Allocation(float(best.n), float(best.d), float(best.loss))
    lo, hi = math.log(n_min) + 1e-9, math.log(max(reference.n, n_min) * 1e3)

    def cost(log_n: float) -> float:
        n = math.exp(log_n)
        d = law.tokens_for_loss(n, target)
        return 6.0 * n * d + 2.0 * n * t if math.isfinite(d) else math.inf

    grid = np.linspace(lo, hi, 2001)
    costs = np.array([cost(x) for x in grid])
    i = int(np.argmin(costs))
    from scipy.optimize import minimize_scalar

    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = minimize_scalar(cost, bounds=(a, b), method="bounded", options={"xatol": 1e-12})
    best = float(res.x) if res.fun <= costs[i] else float(grid[i])
    n = math.exp(best)
    d = law.tokens_for_loss(n, target)
    return Allocation(n, d, float(law.loss(n, d)))


def chinchilla_inference_optimal(law: ChinchillaLaw, loss: Any, inference_tokens: Any) -> Allocation:
    """Sardana et al. 2023's inference-aware (N, D) for the Chinchilla form, elementwise over draws.

    Along the iso-loss curve D(N) = (B / r)^(1/β), r = L - E - A N^-α, the total 6ND + 2NT has
    derivative 6D (1 - (α/β) A N^-α / r) + 2T. Its bracket rises from -inf at the smallest model that
    reaches L (r -> 0) to 0 at the compute-optimal N_0 = ((α+β) A / (β (L - E)))^(1/α), where the
    derivative is 2T >= 0, and on that stretch both factors make the derivative increase: the one root
    lies in (N_min, N_0] and bisection in log N finds it to float precision for every draw at once
    (NaN where a draw cannot reach L). With T = 0 it is N_0, the compute-optimal model itself.
    """
    e, a_coef, b_coef, alpha, beta = law._arrays()
    gap = np.asarray(loss, dtype=float) - e
    t = np.asarray(inference_tokens, dtype=float)
    with np.errstate(all="ignore"):
        lo = np.log(a_coef / gap) / alpha  # log N_min: r = 0
        hi = np.log((alpha + beta) * a_coef / (beta * gap)) / alpha  # log N_0: the bracket is 0
        lo, hi = np.broadcast_arrays(np.where(gap > 0, lo, np.nan), np.where(gap > 0, hi, np.nan))
        lo, hi = lo.copy(), hi.copy()
        for _ in range(200):  # the bracket is under 1e3 wide in log N; 200 halvings reach float spacing
            mid = 0.5 * (lo + hi)
            u = a_coef * np.exp(-alpha * mid)
            r = gap - u
            d = np.power(b_coef / r, 1.0 / beta)
            rising = 1.0 - (alpha / beta) * u / r + t / (3.0 * d) >= 0  # sign of the derivative over 6D
            hi, lo = np.where(rising, mid, hi), np.where(rising, lo, mid)
        n = np.exp(hi)
        d = np.power(b_coef / (gap - a_coef * np.power(n, -alpha)), 1.0 / beta)
    return Allocation(_plain(n), _plain(d), law.loss(n, d))


# ----------------------------------------------------------------------------- data-constrained


@dataclass(frozen=True)
class DataConstrainedLaw:
    """Muennighoff et al. 2023, "Scaling Data-Constrained Language Models" (arXiv 2305.16264), eq. (5)-(7).

    The Chinchilla form with effective data D′ and effective parameters N′ (A, B, E, α, β: ``base``):
    repeated epochs beyond the first and parameters beyond what U unique tokens support decay in
    value with constants R_D* and R_N*::

        R_D = max(D/U - 1, 0),           D′ = U + U R_D* (1 - exp(-R_D / R_D*))
        U_N = min(N, G (G U)^(β/α)),     R_N = max(N/U_N - 1, 0),   N′ = U_N + U_N R_N* (1 - exp(-R_N / R_N*))

    with G = (αA / (βB))^(1/(α+β)) (Hoffmann et al. 2022, eq. 4), so U_N is the compute-optimal model
    size for a one-epoch run on U tokens. Like :class:`ChinchillaLaw` the parameters may be arrays (one
    law per bootstrap draw); ``loss`` is elementwise, the optima are for one law.
    """

    base: ChinchillaLaw
    r_d: Value  # R_D*: repetitions of the data at which their value has decayed by 1/e
    r_n: Value  # R_N*: the same for excess parameters, in units of U_N
    name: str = field(default="data-constrained", kw_only=True)
    description: str = field(default="L = E + A/N'^alpha + B/D'^beta (Muennighoff et al. 2023)", kw_only=True)
    corpus: str = field(default="unknown corpus", kw_only=True)

    def unique_params(self, unique: Any) -> Value:
        """G (G U)^(β/α): the parameters U unique tokens support (the one-epoch compute-optimal N)."""
        _, _, _, alpha, beta = self.base._arrays()
        with np.errstate(all="ignore"):
            g = np.asarray(self.base.G, dtype=float)
            return _plain(g * np.power(g * np.asarray(unique, dtype=float), beta / alpha))

    def effective_data(self, d: Any, unique: Any) -> Value:
        """D′: U plus the decayed value of the R_D = D/U - 1 repetitions."""
        d, u = np.asarray(d, dtype=float), np.asarray(unique, dtype=float)
        r_d = np.asarray(self.r_d, dtype=float)
        with np.errstate(all="ignore"):
            repeats = np.maximum(d / u - 1.0, 0.0)
            return _plain(u + u * r_d * (1.0 - np.exp(-repeats / r_d)))

    def effective_params(self, n: Any, unique: Any) -> Value:
        """N′: U_N plus the decayed value of the R_N = N/U_N - 1 excess parameters."""
        n = np.asarray(n, dtype=float)
        r_n = np.asarray(self.r_n, dtype=float)
        with np.errstate(all="ignore"):
            u_n = np.minimum(n, self.unique_params(unique))
            excess = np.maximum(n / u_n - 1.0, 0.0)
            return _plain(u_n + u_n * r_n * (1.0 - np.exp(-excess / r_n)))

    def loss(self, n: Any, d: Any, unique: Any) -> Value:
        """E + A/N′^α + B/D′^β for N parameters trained on D tokens of which U are unique."""
        return self.base.loss(self.effective_params(n, unique), self.effective_data(d, unique))

    def _on_budget(self, flops: float, unique: float, n: Any) -> Any:
        d = flops / (6.0 * np.asarray(n, dtype=float))
        return self.loss(n, d, np.minimum(unique, d))

    def grid_optimum(self, flops: float, unique: float, steps: int = 500) -> Allocation:
        """The optimum as the datablations README searches for it: from the unconstrained N_opt, D_opt,
        scale N by 1/f and D by f (and the reverse) for ``steps`` f in [1.0001, 3], keep the lowest loss.

        Kept to reproduce the published allocation; :meth:`optimum` is the law's true minimum (the grid
        cannot leave the band [N_opt/3, 3 N_opt])."""
        n0, d0 = float(self.base.n_opt(flops)), float(self.base.d_opt(flops))
        f = np.linspace(1.0001, 3.0, steps)
        n = np.concatenate([n0 / f, n0 * f])
        d = np.concatenate([d0 * f, d0 / f])
        losses = np.asarray(self.loss(n, d, np.minimum(unique, d)))
        i = int(np.nanargmin(losses))
        return Allocation(float(n[i]), float(d[i]), float(losses[i]))

    def optimum(self, flops: float, unique: float) -> Allocation:
        """The N (and D = C/6N) minimising the loss for budget C with at most U unique tokens.

        The loss along C = 6ND is scanned on a log grid six decades either side of the unconstrained
        N_opt and the best cell refined by bounded Brent search (the decays make it non-convex, so a
        local search alone could stop in the wrong valley)."""
        from scipy.optimize import minimize_scalar

        centre = math.log(float(self.base.n_opt(flops)))
        grid = np.linspace(centre - 6 * math.log(10), centre + 6 * math.log(10), 2401)
        losses = np.asarray(self._on_budget(flops, unique, np.exp(grid)))
        i = int(np.nanargmin(losses))
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
        res = minimize_scalar(
            lambda x: float(self._on_budget(flops, unique, math.exp(x))),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-12},
        )
        best = float(res.x) if res.fun <= losses[i] else float(grid[i])
        n = math.exp(best)
        return Allocation(n, flops / (6.0 * n), float(self._on_budget(flops, unique, n)))


#: Muennighoff et al. 2023's C4 law, as stated in the datablations README: the base is their tied-exponent
#: fit to Chinchilla's C4 isoFLOP points (a, b, e, α = β), R_D* and R_N* their fit to 182 of their runs.
MUENNIGHOFF2023 = DataConstrainedLaw(
    ChinchillaLaw(
        *(math.exp(0.6254804), math.exp(6.255414), math.exp(7.3049974), 0.3526596, 0.3526596),
        name="muennighoff2023-base",
        description="Muennighoff et al. 2023 C4 base law (alpha = beta)",
        corpus="C4, GPT-2 tokenizer",
    ),
    15.387756,
    5.309743,
    name="muennighoff2023",
    description="Muennighoff et al. 2023 data-constrained law (C4): R_D* = 15.39, R_N* = 5.31",
    corpus="C4, GPT-2 tokenizer",
)

DATA_CONSTRAINED_LAWS: dict[str, DataConstrainedLaw] = {MUENNIGHOFF2023.name: MUENNIGHOFF2023}


def get_data_constrained_law(name: str) -> DataConstrainedLaw:
    """A built-in law with R_D* and R_N*, or a one-line error (a law without them cannot plan under a data limit)."""
    if name in DATA_CONSTRAINED_LAWS:
        return DATA_CONSTRAINED_LAWS[name]
    if name in LAWS:
        raise ScalingError(
            f"law {name} has no R_D*/R_N* and cannot plan under a data limit; "
            f"use --law {', '.join(DATA_CONSTRAINED_LAWS)} or --fit FIT.json from `scaling fit --form data-constrained`"
        )
    raise ScalingError(f"unknown data-constrained law {name!r}; known: {', '.join(DATA_CONSTRAINED_LAWS)}")


# ----------------------------------------------------------------------------- over-training


@dataclass(frozen=True)
class OvertrainLaw:
    """Gadre et al. 2024, "Language models scale reliably with over-training and on downstream tasks"
    (arXiv 2403.08540), the loss in compute C = 6ND and token multiplier M = D/N::

        L(C, M) = E + (a M^η + b M^-η) C^-η

    It is the Chinchilla form with tied exponents α = β (the paper derives it so): substituting
    C = 6ND and M = D/N gives E + a 6^-η N^-2η + b 6^-η D^-2η, i.e. :meth:`as_chinchilla`. Tying the
    exponents is what lets a fit on compute-optimal runs (M = 20) plus a few over-trained small runs
    extrapolate in M. Parameters are floats or broadcastable arrays (one law per bootstrap draw).
    """

    E: Value
    a: Value
    b: Value
    eta: Value
    name: str = field(default="overtrain", kw_only=True)

    def as_chinchilla(self) -> ChinchillaLaw:
        """The same law as E + A/N^α + B/D^β with A = a 6^-η, B = b 6^-η, α = β = 2η."""
        e, a, b, eta = (np.asarray(v, dtype=float) for v in (self.E, self.a, self.b, self.eta))
        scale = np.power(6.0, -eta)
        return ChinchillaLaw(
            _plain(e), _plain(a * scale), _plain(b * scale), _plain(2 * eta), _plain(2 * eta), name=self.name
        )

    def loss(self, n: Any, d: Any) -> Value:
        """E + (a M^η + b M^-η) C^-η with C = 6ND, M = D/N, elementwise over draws, N and D."""
        e, a, b, eta = (np.asarray(v, dtype=float) for v in (self.E, self.a, self.b, self.eta))
        n, d = np.asarray(n, dtype=float), np.asarray(d, dtype=float)
        c, m = 6.0 * n * d, d / n
        with np.errstate(all="ignore"):
            return _plain(e + (a * np.power(m, eta) + b * np.power(m, -eta)) * np.power(c, -eta))


# ----------------------------------------------------------------------------- form registry


@dataclass(frozen=True)
class Form:
    """One functional form a user can fit, rank and predict with (``scaling fit --form``, ``scaling predict``).

    ``params`` are the keys of the fit JSON's ``forms[name]["params"]`` and ``samples``;
    :meth:`from_params` builds the law from them (floats: one law; arrays: one law per bootstrap draw,
    shaped to broadcast against N and D), and :meth:`loss` evaluates it, with the unique tokens U
    where the form needs them. The formulas themselves live in the law classes above.
    """

    name: str
    params: tuple[str, ...]
    citation: str
    needs_unique: bool = False

    def from_params(self, params: Any) -> Any:
        """The law of a ``{param: value}`` mapping (values floats or arrays), or a one-line error."""
        missing = [k for k in self.params if k not in params]
        if missing:
            raise ScalingError(f"form {self.name}: missing parameter(s) {', '.join(missing)}")
        v = {k: params[k] if np.ndim(params[k]) == 0 else np.asarray(params[k], dtype=float) for k in self.params}
        if self.name == "chinchilla":
            return ChinchillaLaw(*(v[k] for k in CHINCHILLA_PARAMS))
        if self.name == "kaplan":
            return KaplanLaw(alpha_n=v["alpha_N"], alpha_d=v["alpha_D"], n_c=v["N_c"], d_c=v["D_c"], name="kaplan")
        if self.name == "overtrain":
            return OvertrainLaw(v["E"], v["a"], v["b"], v["eta"])
        base = ChinchillaLaw(*(v[k] for k in CHINCHILLA_PARAMS))
        return DataConstrainedLaw(base, v["R_D"], v["R_N"])

    def loss(self, params: Any, n: Any, d: Any, unique: Any = None) -> Value:
        """The form's predicted loss at (N, D[, U]); U is required exactly when the form needs it."""
        law = self.from_params(params)
        if self.needs_unique:
            if unique is None:
                raise ScalingError(f"form {self.name} needs U (unique tokens) for every point")
            return law.loss(n, d, unique)
        with np.errstate(all="ignore"):
            return _plain(law.loss(n, d))


#: Every functional form ``scaling fit --form`` can fit, by name (see :class:`Form`).
FORMS: dict[str, Form] = {
    form.name: form
    for form in (
        Form("chinchilla", CHINCHILLA_PARAMS, "Hoffmann et al. 2022, eq. 2: L = E + A/N^alpha + B/D^beta"),
        Form(
            "kaplan",
            ("alpha_N", "alpha_D", "N_c", "D_c"),
            "Kaplan et al. 2020, eq. 1.5: L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
        ),
        Form(
            "overtrain",
            ("E", "a", "b", "eta"),
            "Gadre et al. 2024: L = E + (a M^eta + b M^-eta) C^-eta, C = 6ND, M = D/N",
        ),
        Form(
            "data-constrained",
            (*CHINCHILLA_PARAMS, "R_D", "R_N"),
            "Muennighoff et al. 2023, eq. 5-7: Chinchilla in effective N', D' given U unique tokens",
            needs_unique=True,
        ),
    )
}


def get_form(name: str) -> Form:
    """A functional form by name, or a one-line error listing the known ones."""
    try:
        return FORMS[name]
    except KeyError:
        raise ScalingError(f"unknown form {name!r}; known: {', '.join(FORMS)}") from None
