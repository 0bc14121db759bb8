"""Scaling laws: how a language model's loss falls with parameters, data and compute, and what training costs.

Kaplan et al. (2020, "Scaling laws for neural language models", section 1.2 and Table 5)
found the test loss (nats per token on WebText2) of Transformers to follow power laws when
only one resource is the bottleneck,

    L(N) = (N_c / N)^alpha_N        alpha_N = 0.076, N_c = 8.8e13 non-embedding parameters
    L(D) = (D_c / D)^alpha_D        alpha_D = 0.095, D_c = 5.4e13 tokens
    L(C_min) = (C_c / C_min)^alpha_C  alpha_C = 0.050, C_c = 3.1e8 PF-days

and combined the first two as L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D. For a
budget C they advised growing the model fast, N_opt ~ 1.3e9 (C / PF-day)^0.73, and the data
slowly, D_opt ~ C^0.27.

Hoffmann et al. (2022, "Chinchilla", section 3.3) fitted instead

    L(N, D) = E + A / N^alpha + B / D^beta,   E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28,

with N all parameters. Minimising it under C = 6 N D (a Lagrangian, or substituting D = C/6N)
gives the compute-optimal frontier

    G = (alpha A / (beta B))^(1/(alpha+beta)),
    N_opt(C) = G (C/6)^(beta/(alpha+beta)),   D_opt(C) = G^-1 (C/6)^(alpha/(alpha+beta)),

exponents 0.45 and 0.55: parameters and tokens grow at nearly the same rate, about 20 tokens
per parameter (Chinchilla: 70B parameters, 1.4T tokens).

Costs: compute comes from :mod:`llmcourse.sizing` (6 N D, or the exact count with the
attention term), GPU-hours = C / (peak FLOP/s x MFU x 3600), dollars = GPU-hours x price.
Book chapter: *Scaling laws and what training costs*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmcourse.sizing import TransformerConfig, parameter_counts, training_flops, training_flops_per_token

PF_DAY = 1e15 * 86400  # FLOPs in a petaflop/s-day, Kaplan et al.'s unit of compute (8.64e19)
TOKENS_PER_PARAMETER = 20.0  # Chinchilla's rule of thumb: D_opt ~ 20 N_opt (Hoffmann et al. 2022, Table 3)


def _positive(name: str, value: float | np.ndarray) -> np.ndarray:
    """``value`` as a float array, every entry finite and > 0 (a ValueError saying which otherwise)."""
    array = np.asarray(value, dtype=float)
    if array.size == 0 or not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return array


def _result(array: np.ndarray) -> float | np.ndarray:
    return float(array) if array.ndim == 0 else array


def pf_days(flops: float | np.ndarray) -> float | np.ndarray:
    """FLOPs in petaflop/s-days: C / 8.64e19."""
    return _result(_positive("flops", flops) / PF_DAY)


# --- Kaplan et al. (2020) -----------------------------------------------------------------------


@dataclass(frozen=True)
class KaplanConstants:
    """Kaplan et al.'s fitted constants (section 1.2, Table 5). N counts non-embedding parameters;
    losses are nats per token of WebText2 with GPT-2's tokenizer."""

    alpha_n: float = 0.076
    n_c: float = 8.8e13  # non-embedding parameters
    alpha_d: float = 0.095
    d_c: float = 5.4e13  # tokens
    alpha_c: float = 0.050  # of C_min, the compute of the most compute-efficient run
    c_c: float = 3.1e8  # PF-days
    n_opt_coefficient: float = 1.3e9  # N_opt = 1.3e9 (C_min / PF-day)^0.73 (their Figure 14)
    n_opt_exponent: float = 0.73


KAPLAN = KaplanConstants()


def kaplan_loss_parameters(n: float | np.ndarray, constants: KaplanConstants = KAPLAN) -> float | np.ndarray:
    """L(N) = (N_c / N)^alpha_N: the loss of a model of N non-embedding parameters trained to convergence."""
    return _result((constants.n_c / _positive("n (parameters)", n)) ** constants.alpha_n)


def kaplan_loss_tokens(d: float | np.ndarray, constants: KaplanConstants = KAPLAN) -> float | np.ndarray:
    """L(D) = (D_c / D)^alpha_D: the loss of a large model trained, with early stopping, on D tokens."""
    return _result((constants.d_c / _positive("d (tokens)", d)) ** constants.alpha_d)


def kaplan_loss_compute(flops: float | np.ndarray, constants: KaplanConstants = KAPLAN) -> float | np.ndarray:
    """L(C_min) = (C_c / C_min)^alpha_C with C_c in PF-days; ``flops`` is C_min in FLOPs (converted here)."""
    return _result((constants.c_c / (_positive("flops (compute)", flops) / PF_DAY)) ** constants.alpha_c)


def kaplan_loss(n: float | np.ndarray, d: float | np.ndarray, constants: KaplanConstants = KAPLAN
                ) -> float | np.ndarray:
    """L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Kaplan et al. eq. 1.5): tends to L(N) as D grows
    and to L(D) as N grows; the gap to L(N) is the penalty for too few tokens (overfitting)."""
    n, d = _positive("n (parameters)", n), _positive("d (tokens)", d)
    ratio = constants.alpha_n / constants.alpha_d
    return _result(((constants.n_c / n) ** ratio + constants.d_c / d) ** constants.alpha_d)


def kaplan_optimal_parameters(flops: float | np.ndarray, constants: KaplanConstants = KAPLAN) -> float | np.ndarray:
    """Kaplan et al.'s compute-efficient model size N_opt = 1.3e9 (C / PF-day)^0.73 (non-embedding parameters):
    5.4x the parameters for 10x the compute."""
    c = _positive("flops (compute)", flops) / PF_DAY
    return _result(constants.n_opt_coefficient * c**constants.n_opt_exponent)


def kaplan_optimal_tokens(flops: float | np.ndarray, constants: KaplanConstants = KAPLAN) -> float | np.ndarray:
    """The tokens that spend the rest of the budget, D = C / (6 N_opt): grows as C^0.27."""
    c = _positive("flops (compute)", flops)
    return _result(c / (6.0 * np.asarray(kaplan_optimal_parameters(c, constants))))


# --- Hoffmann et al. (2022), Chinchilla ---------------------------------------------------------


@dataclass(frozen=True)
class ChinchillaConstants:
    """Hoffmann et al.'s approach-3 fit, as printed in the paper (section 3.3, eq. 10). N counts all parameters;
    losses are nats per token on MassiveText. The printed values are rounded (Besiroglu et al. 2024)."""

    e: float = 1.69  # the irreducible loss: the entropy of natural text, as this law sees it
    a: float = 406.4
    b: float = 410.7
    alpha: float = 0.34
    beta: float = 0.28

    @property
    def parameter_exponent(self) -> float:
        """a = beta / (alpha + beta): N_opt grows as C^a (0.45; Table 2 prints 0.46 from unrounded constants)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def token_exponent(self) -> float:
        """b = alpha / (alpha + beta): D_opt grows as C^b (0.55)."""
        return self.alpha / (self.alpha + self.beta)


CHINCHILLA = ChinchillaConstants()


def chinchilla_loss(n: float | np.ndarray, d: float | np.ndarray, constants: ChinchillaConstants = CHINCHILLA
                    ) -> float | np.ndarray:
    """L(N, D) = E + A / N^alpha + B / D^beta: the loss of N parameters trained on D tokens."""
    n, d = _positive("n (parameters)", n), _positive("d (tokens)", d)
    return _result(constants.e + constants.a / n**constants.alpha + constants.b / d**constants.beta)


@dataclass(frozen=True)
class Allocation:
    """A split of a compute budget into parameters and tokens, with C = 6 N D."""

    flops: float
    parameters: float
    tokens: float

    @property
    def tokens_per_parameter(self) -> float:
        return self.tokens / self.parameters


def chinchilla_optimal(flops: float, constants: ChinchillaConstants = CHINCHILLA) -> Allocation:
    """The (N, D) minimising :func:`chinchilla_loss` subject to 6 N D = C.

    Substituting D = C/(6N) and setting dL/dN = 0 gives alpha A N^-alpha = beta B D^-beta, so

        G = (alpha A / (beta B))^(1/(alpha+beta)),
        N_opt = G (C/6)^(beta/(alpha+beta)),   D_opt = (C/6)^(alpha/(alpha+beta)) / G.
    """
    c = float(_positive("flops (compute)", flops))
    k = constants
    g = (k.alpha * k.a / (k.beta * k.b)) ** (1.0 / (k.alpha + k.beta))
    n = g * (c / 6.0) ** k.parameter_exponent
    d = (c / 6.0) ** k.token_exponent / g
    return Allocation(flops=c, parameters=n, tokens=d)


def tokens_per_parameter_allocation(flops: float, tokens_per_parameter: float = TOKENS_PER_PARAMETER) -> Allocation:
    """The rule of thumb D = r N (r = 20) under C = 6 N D: N = sqrt(C / (6 r)), D = r N."""
    c = float(_positive("flops (compute)", flops))
    r = float(_positive("tokens_per_parameter", tokens_per_parameter))
    n = math.sqrt(c / (6.0 * r))
    return Allocation(flops=c, parameters=n, tokens=r * n)


# --- compute from the Part 4 calculators --------------------------------------------------------


def tokens_for_budget(config: TransformerConfig, flops: float, context: int | None = None) -> float:
    """How many training tokens ``flops`` buys for the model ``config``:
    D = C / training_flops_per_token(config, context) (6 N_matmul plus the attention term per token)."""
    c = float(_positive("flops (compute)", flops))
    return c / training_flops_per_token(config, context)


@dataclass(frozen=True)
class TrainingPlan:
    """A model trained on ``tokens_per_parameter`` x its parameters: the tokens and the exact compute."""

    parameters: int
    tokens: float
    flops: float  # sizing.training_flops: 6 N_matmul D + the attention term
    six_n_d: float  # the rule of thumb with N = all parameters


def chinchilla_plan(config: TransformerConfig, tokens_per_parameter: float = TOKENS_PER_PARAMETER,
                    context: int | None = None) -> TrainingPlan:
    """The compute-optimal run for ``config`` by the 20-tokens-per-parameter rule, costed with
    :func:`llmcourse.sizing.training_flops` (N = all parameters, as Chinchilla counts them)."""
    r = float(_positive("tokens_per_parameter", tokens_per_parameter))
    n = parameter_counts(config).total
    tokens = r * n
    return TrainingPlan(parameters=n, tokens=tokens, flops=training_flops(config, tokens, context),
                        six_n_d=6.0 * n * tokens)


# --- what a run costs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingCost:
    """GPU-hours and dollars of ``flops`` at ``mfu`` of a ``peak_flops`` device, at ``dollars_per_gpu_hour``."""

    flops: float
    peak_flops: float
    mfu: float
    dollars_per_gpu_hour: float

    @property
    def gpu_hours(self) -> float:
        """C / (peak x MFU x 3600 s)."""
        return self.flops / (self.peak_flops * self.mfu * 3600.0)

    @property
    def dollars(self) -> float:
        return self.gpu_hours * self.dollars_per_gpu_hour

    def days_on(self, gpus: int) -> float:
        """Wall-clock days on ``gpus`` devices, if the work splits perfectly."""
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
            raise ValueError(f"gpus must be an integer >= 1, got {gpus!r}")
        return self.gpu_hours / gpus / 24.0


def training_cost(flops: float, peak_flops: float, mfu: float = 0.4, dollars_per_gpu_hour: float = 2.0) -> TrainingCost:
    """The cost of a run of ``flops`` FLOPs on devices of ``peak_flops`` FLOP/s (see
    :func:`llmcourse.hardware.peak_flops`) used at model FLOPs utilisation ``mfu`` (0 < mfu <= 1)."""
    _positive("flops", flops)
    _positive("peak_flops", peak_flops)
    _positive("dollars_per_gpu_hour", dollars_per_gpu_hour)
    if not 0.0 < mfu <= 1.0:
        raise ValueError(f"mfu must be in (0, 1], the fraction of peak the run achieves; got {mfu!r}")
    return TrainingCost(float(flops), float(peak_flops), float(mfu), float(dollars_per_gpu_hour))


def implied_mfu(flops: float, gpu_hours: float, peak_flops: float) -> float:
    """The MFU a reported run must have reached: C / (GPU-hours x 3600 x peak)."""
    _positive("flops", flops)
    _positive("gpu_hours", gpu_hours)
    _positive("peak_flops", peak_flops)
    return float(flops) / (float(gpu_hours) * 3600.0 * float(peak_flops))


# --- fitting a power law ------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLawFit:
    """y = irreducible + constant x^exponent. For a loss law the exponent is negative and Kaplan's
    form (x_c / x)^alpha has alpha = -exponent and x_c = constant^(1/alpha) (when irreducible = 0)."""

    exponent: float
    constant: float
    irreducible: float = 0.0

    def predict(self, x: float | np.ndarray) -> float | np.ndarray:
        return _result(self.irreducible + self.constant * _positive("x", x) ** self.exponent)

    @property
    def alpha(self) -> float:
        """-exponent: the decay rate in Kaplan's notation."""
        return -self.exponent

    @property
    def scale(self) -> float:
        """x_c with y - irreducible = (x_c / x)^alpha (needs a decaying law, exponent < 0)."""
        if self.exponent >= 0:
            raise ValueError(f"scale is defined for a decaying law (exponent < 0), got exponent {self.exponent}")
        return self.constant ** (1.0 / self.alpha)


def _loglog_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(intercept)


def fit_power_law(x: np.ndarray | list[float], y: np.ndarray | list[float], irreducible: bool = False) -> PowerLawFit:
    """Fit y = c x^k by least squares on (log x, log y), a straight line in log-log axes.

    With ``irreducible=True`` fit y = E + c x^k instead, by nonlinear least squares in y
    (``scipy.optimize.curve_fit``) with 0 <= E < min(y), starting from the best E on a grid
    (each E gives a log-log line fit to y - E). ``x`` and ``y`` are 1-D, positive, of equal
    length: at least 2 points, or 4 with the irreducible term (three parameters to fit).
    """
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x_arr.ndim != 1 or y_arr.ndim != 1 or len(x_arr) != len(y_arr):
        raise ValueError(f"x and y must be 1-D of equal length, got shapes {x_arr.shape} and {y_arr.shape}")
    _positive("x", x_arr)
    _positive("y", y_arr)
    needed = 4 if irreducible else 2
    if len(x_arr) < needed:
        raise ValueError(f"need at least {needed} points to fit {'E + c x^k' if irreducible else 'c x^k'}, got {len(x_arr)}")
    if np.unique(x_arr).size < 2:
        raise ValueError("x must take at least two different values")
    if not irreducible:
        slope, intercept = _loglog_line(x_arr, y_arr)
        return PowerLawFit(exponent=slope, constant=math.exp(intercept))

    from scipy.optimize import curve_fit

    def sse(e: float) -> float:
        k, b = _loglog_line(x_arr, y_arr - e)
        return float(np.sum((y_arr - e - np.exp(b) * x_arr**k) ** 2))

    y_min = float(y_arr.min())
    grid = y_min * np.linspace(0.0, 0.999, 200)
    e0 = float(min(grid, key=sse))
    k0, b0 = _loglog_line(x_arr, y_arr - e0)
    log_x = np.log(x_arr)

    def model(log_x: np.ndarray, e: float, log_c: float, k: float) -> np.ndarray:
        return e + np.exp(log_c + k * log_x)

    # Bounds keep E below the smallest y (the power-law part stays positive); the fit runs in log x for conditioning.
    (e, log_c, k), _ = curve_fit(model, log_x, y_arr, p0=[e0, b0, k0],
                                 bounds=([0.0, -np.inf, -np.inf], [y_min * (1 - 1e-9), np.inf, np.inf]),
                                 maxfev=20000)
    return PowerLawFit(exponent=float(k), constant=float(math.exp(log_c)), irreducible=float(e))
