"""Published scaling laws, their compute-optimal allocation, and inference-aware allocation.

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
* ``hoffmann2022`` -- Hoffmann et al. 2022 ("Chinchilla"), Approach 3, eq. (2):
  L = E + A/N^α + B/D^β with the unrounded fit E = exp(0.5267228),
  A = exp(6.0073404), B = exp(6.0179186), α = 0.33917084, β = 0.2849083
  (N counts all parameters; MassiveText).
* ``besiroglu2024`` -- Besiroglu et al. 2024, "Chinchilla Scaling: A replication
  attempt" (Epoch AI), the same form refitted to the data of Hoffmann's Fig. 4:
  E = 1.8172, A = 482.01, B = 2085.43, α = 0.3478, β = 0.3658.

Compute-optimal allocation of the Chinchilla form under C = 6ND (Hoffmann et al.
2022, eq. 4): N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b with
G = (αA / (βB))^(1/(α+β)), a = β/(α+β), b = α/(α+β).

Inference-aware allocation (Sardana et al. 2023, "Beyond Chinchilla-Optimal:
Accounting for Inference in Language Model Scaling Laws"): for a target loss
and T inference tokens, minimise training 6ND plus inference 2NT over the
iso-loss curve D(N).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scaling.errors import ScalingError

PF_DAY = 1e15 * 86400  # FLOPs in one petaflop/s-day (Kaplan et al. 2020's compute unit)
LAW_PARAMS = ("E", "A", "B", "alpha", "beta")


@dataclass(frozen=True)
class Allocation:
    """A model size and token count, with the law's predicted loss and the 6ND training FLOPs."""

    n: float
    d: float
    loss: float

    @property
    def flops(self) -> float:
        return 6.0 * self.n * self.d

    @property
    def tokens_per_param(self) -> float:
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
    def compute_optimal(self, flops: float) -> Allocation:
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
    """L = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    name: str = "chinchilla"
    description: str = "L = E + A/N^alpha + B/D^beta"
    n_count: str = "total"
    corpus: str = "unknown corpus"

    def __post_init__(self) -> None:
        values = {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta}
        for key, value in values.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ScalingError(f"law {self.name}: {key} must be a finite number, got {value!r}")
        for key in ("A", "B", "alpha", "beta"):
            if values[key] <= 0:
                raise ScalingError(f"law {self.name}: {key} must be positive, got {values[key]}")

    def loss(self, n: Any, d: Any) -> Any:
        return self.E + self.A / np.power(n, self.alpha) + self.B / np.power(d, self.beta)

    def compute_optimal(self, flops: float) -> Allocation:
        n, d = optimal_allocation(np.array([[self.E, self.A, self.B, self.alpha, self.beta]]), flops)
        return Allocation(float(n[0]), float(d[0]), float(self.loss(n[0], d[0])))

    def tokens_for_loss(self, n: float, loss: float) -> float:
        rem = loss - self.E - self.A / n**self.alpha
        return (self.B / rem) ** (1.0 / self.beta) if rem > 0 else math.inf

    def min_params_for_loss(self, loss: float) -> float:
        gap = loss - self.E
        return (self.A / gap) ** (1.0 / self.alpha) if gap > 0 else math.inf

    def optimal_flops_for_loss(self, loss: float) -> float:
        # L_opt(C) = E + K (C/6)^(-αβ/(α+β)) in closed form; invert it.
        gap = loss - self.E
        if gap <= 0:
            return math.inf
        k = self.compute_optimal(6.0).loss - self.E  # value at C/6 = 1
        return 6.0 * (gap / k) ** (-(self.alpha + self.beta) / (self.alpha * self.beta))


def optimal_allocation(params: np.ndarray, flops: float) -> tuple[np.ndarray, np.ndarray]:
    """Hoffmann et al. 2022 eq. (4) for rows (E, A, B, α, β): arrays N_opt, D_opt at C = 6ND."""
    _, a_coef, b_coef, alpha, beta = (params[:, i] for i in range(5))
    g = (alpha * a_coef / (beta * b_coef)) ** (1.0 / (alpha + beta))
    c6 = flops / 6.0
    return g * c6 ** (beta / (alpha + beta)), c6 ** (alpha / (alpha + beta)) / g


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

    def compute_optimal(self, flops: float) -> Allocation:
        n = self.n_opt_coeff * (flops / PF_DAY) ** self.n_opt_exponent
        d = flops / (6.0 * n)
        return Allocation(n, d, float(self.loss(n, d)))

    def tokens_for_loss(self, n: float, loss: float) -> float:
        rem = loss ** (1.0 / self.alpha_d) - (self.n_c / n) ** (self.alpha_n / self.alpha_d)
        return self.d_c / rem if rem > 0 else math.inf

    def min_params_for_loss(self, loss: float) -> float:
        return self.n_c / loss ** (1.0 / self.alpha_n)


HOFFMANN2022 = ChinchillaLaw(
    E=math.exp(0.5267228),
    A=math.exp(6.0073404),
    B=math.exp(6.0179186),
    alpha=0.33917084,
    beta=0.2849083,
    name="hoffmann2022",
    description="Hoffmann et al. 2022 (Chinchilla) Approach 3: L = E + A/N^alpha + B/D^beta",
    n_count="total",
    corpus="MassiveText, SentencePiece 32k",
)
BESIROGLU2024 = ChinchillaLaw(
    E=1.8172,
    A=482.01,
    B=2085.43,
    alpha=0.3478,
    beta=0.3658,
    name="besiroglu2024",
    description="Besiroglu et al. 2024 (Epoch AI) replication of Chinchilla Approach 3",
    n_count="total",
    corpus="MassiveText, SentencePiece 32k",
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
    is scanned on a log grid and the best cell refined by bounded Brent search.
    """
    t = float(inference_tokens)
    if not (math.isfinite(t) and t >= 0):
        raise ScalingError(f"inference tokens must be a non-negative number, got {inference_tokens!r}")
    target = reference.loss
    n_min = law.min_params_for_loss(target)
    if not math.isfinite(n_min):
        raise ScalingError(f"law {law.name} cannot reach loss {target:.4g}")
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


# ----------------------------------------------------------------------------- fitted laws


@dataclass(frozen=True)
class FittedLaw:
    """A Chinchilla-form law read from ``scaling fit --json``, with its bootstrap samples (rows E, A, B, α, β)."""

    law: ChinchillaLaw
    samples: np.ndarray | None  # shape (k, 5), finite rows only
    dropped_samples: int
    path: Path

    def allocation_ci(self, flops: float) -> dict[str, tuple[float, float]] | None:
        """95% percentile intervals of N_opt, D_opt, tokens/param and loss at ``flops`` over the samples."""
        if self.samples is None or len(self.samples) < 2:
            return None
        # Extreme replicates overflow to inf; they are dropped below.
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            n, d = optimal_allocation(self.samples, flops)
            e, a, b, alpha, beta = (self.samples[:, i] for i in range(5))
            loss = e + a / n**alpha + b / d**beta
            ratio = d / n
        out = {}
        for key, values in (("n", n), ("d", d), ("tokens_per_param", ratio), ("loss", loss)):
            finite = values[np.isfinite(values)]
            if len(finite) < 2:
                return None
            out[key] = (float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5)))
        return out


def _samples_array(raw: Any, path: Path) -> tuple[np.ndarray | None, int]:
    """Accept rows [E, A, B, alpha, beta], rows as dicts, or a dict of columns."""
    if raw is None:
        return None, 0
    try:
        if isinstance(raw, dict):
            arr = np.column_stack([np.asarray(raw[k], dtype=float) for k in LAW_PARAMS])
        elif isinstance(raw, list) and raw and isinstance(raw[0], dict):
            arr = np.array([[row[k] for k in LAW_PARAMS] for row in raw], dtype=float)
        else:
            arr = np.asarray(raw, dtype=float)
    except (KeyError, TypeError, ValueError):
        raise ScalingError(f"{path}: approach3.samples must be rows of (E, A, B, alpha, beta)") from None
    if arr.size == 0:
        return None, 0
    if arr.ndim != 2 or arr.shape[1] != len(LAW_PARAMS):
        raise ScalingError(f"{path}: approach3.samples must be rows of (E, A, B, alpha, beta), got shape {arr.shape}")
    ok = np.isfinite(arr).all(axis=1) & (arr[:, 1:] > 0).all(axis=1)
    return arr[ok], int((~ok).sum())


def load_fit(path: str | Path) -> FittedLaw:
    """Read the ``approach3`` object of a ``scaling fit --json`` file as a law.

    Keys read: ``approach3.{E, A, B, alpha, beta}`` and, when present,
    ``approach3.samples`` (bootstrap rows E, A, B, alpha, beta) and the parameter
    count the fit used, ``params`` at top level or in ``approach3`` (default ``with_head``).
    """
    path = Path(path)
    if not path.is_file():
        raise ScalingError(f"fit file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ScalingError(f"{path} is not valid JSON ({err.__class__.__name__}: {err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("approach3"), dict):
        raise ScalingError(f"{path} has no 'approach3' object; run `scaling fit --json` with Approach 3")
    fit = data["approach3"]
    missing = [k for k in LAW_PARAMS if k not in fit]
    if missing:
        raise ScalingError(f"{path}: approach3 lacks {', '.join(missing)}")
    try:
        values = {k: float(fit[k]) for k in LAW_PARAMS}
    except (TypeError, ValueError):
        raise ScalingError(f"{path}: approach3.{{E, A, B, alpha, beta}} must be numbers") from None
    count = fit.get("params", data.get("params", "with_head"))
    if count not in ("non_embedding", "with_head", "total"):
        count = "with_head"
    law = ChinchillaLaw(
        **values,
        name=f"fit:{path.name}",
        description=f"Approach 3 fit from {path}",
        n_count=str(count),
        corpus="the fitted runs' validation data",
    )
    samples, dropped = _samples_array(fit.get("samples"), path)
    return FittedLaw(law=law, samples=samples, dropped_samples=dropped, path=path)
