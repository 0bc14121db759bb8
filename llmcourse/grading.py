"""The grading harness: check a student's function against the reference implementation.

An assignment's test cell calls, for example::

    from llmcourse.grading import check
    from llmcourse.ngram import count_ngrams
    check(student_count_ngrams, reference=count_ngrams,
          cases=[([["a", "b"]], 2)], random_cases=random_sentences, seed=1, tolerance="exact")

:func:`check` runs both functions on the same inputs (hand-picked edge cases and
seeded random ones) and compares the results with a tolerance suited to the
quantity. On the first mismatch it raises ``AssertionError`` with a message a
student can act on: which input, where the results first differ, what was
returned and what was expected, with shapes and types. Visible tests use one
seed; hidden tests use others, so hard-coding answers cannot pass.

While the student's function runs, every function of the ``llmcourse`` reference
implementation is made uncallable (a call raises :class:`ReferenceUsedError`
and fails the check, even if the student's code catches the error): a student
who just calls the package gets no points and is told why. The data loaders in
``llmcourse.data`` stay usable.
"""

from __future__ import annotations

import copy
import math
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE_DIR = str(Path(__file__).resolve().parent)

#: Named tolerances (rtol, atol): the quantity decides how close is "equal".
TOLERANCES: dict[str, tuple[float, float]] = {
    "exact": (0.0, 0.0),  # counts, token ids, strings
    "probability": (1e-9, 1e-12),  # ratios of counts: only rounding error is allowed
    "log_probability": (1e-9, 1e-9),
    "perplexity": (1e-7, 0.0),  # exp() of a mean: relative error is what matters
    "float": (1e-6, 1e-9),  # a general floating-point result
    "gradient": (1e-5, 1e-7),  # gradients computed in a different order of operations
}

#: Parts of the package a student's code may run: loading data is not the exercise, and the
#: harness itself (the autograder captures what a student prints, warnings included) is not a reference.
ALLOWED_MODULES: tuple[str, ...] = ("llmcourse/data/", "llmcourse/grading.py", "llmcourse/autograder.py")

_MAX_REPR = 300


class ReferenceUsedError(RuntimeError):
    """Raised when a student's function calls the reference implementation during a check."""


def _short(value: Any, limit: int = _MAX_REPR) -> str:
    """A repr short enough for a test message, with the shape of arrays.

    Large containers are not repr'd in full (that would cost time proportional to their size
    for every message): only their first items are, followed by how many there are in all.
    """
    if isinstance(value, np.ndarray):
        text = f"array(shape={value.shape}, dtype={value.dtype}): " + np.array2string(value, threshold=20, precision=6)
    elif isinstance(value, (list, tuple, set, frozenset, Mapping)) and len(value) > 20:
        items = list(value.items())[:8] if isinstance(value, Mapping) else list(value)[:8]
        shown = ", ".join(f"{_short(k, 60)}: {_short(v, 60)}" if isinstance(value, Mapping) else _short(k, 60) for k, v in
                          (items if isinstance(value, Mapping) else [(i, None) for i in items]))
        text = f"{type(value).__name__} of {len(value)} items: {shown}, ..."
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 20] + f" ... ({len(text)} chars)"


def _type_name(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"numpy array, shape {value.shape}, dtype {value.dtype}"
    return type(value).__name__


# --------------------------------------------------------------------------- blocking the reference
class _Guard:
    """Watches calls while a student's function runs; remembers the first call into the reference."""

    def __init__(self, allowed: Sequence[str]) -> None:
        self.allowed = tuple(str(Path(PACKAGE_DIR).parent / a) for a in allowed)
        self.violation: str | None = None

    def trace(self, frame, event, arg):  # noqa: ANN001 - sys.settrace's signature
        if event == "call":
            filename = frame.f_code.co_filename
            if filename.startswith(PACKAGE_DIR) and not filename.startswith(self.allowed):
                module = Path(filename).relative_to(Path(PACKAGE_DIR).parent).with_suffix("")
                name = f"{'.'.join(module.parts)}.{frame.f_code.co_name}"
                if self.violation is None:
                    self.violation = name
                raise ReferenceUsedError(
                    f"your code called {name}, part of the course's reference implementation. "
                    "This exercise asks you to write the computation yourself, so the test gives no points. "
                    "Remove the call to llmcourse and implement it with Python and numpy."
                )
        return None  # no per-line tracing: only calls are watched, so the cost stays small


@contextmanager
def reference_blocked(allowed: Sequence[str] = ALLOWED_MODULES) -> Iterator[_Guard]:
    """Within this block, any call into ``llmcourse`` (outside ``allowed``) raises ``ReferenceUsedError``."""
    guard = _Guard(allowed)
    previous = sys.gettrace()
    sys.settrace(guard.trace)
    threading.settrace(guard.trace)
    try:
        yield guard
    finally:
        sys.settrace(previous)
        threading.settrace(previous)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- comparing results
def _first_difference(got: Any, expected: Any, rtol: float, atol: float, where: str = "") -> str | None:
    """Describe the first place where ``got`` and ``expected`` differ, or return None if they match."""
    here = where or "the result"
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return f"{here} should be a dict-like mapping ({type(expected).__name__}), got {_type_name(got)}"
        missing = [k for k in expected if k not in got and expected[k] != 0]
        extra = [k for k in got if k not in expected and got[k] != 0]
        if missing:
            return f"{here} is missing key {missing[0]!r} (expected value {expected[missing[0]]!r}); {len(missing)} key(s) missing in all"
        if extra:
            return f"{here} has an unexpected key {extra[0]!r} (value {got[extra[0]]!r}); {len(extra)} extra key(s) in all"
        for key in expected:
            if key in got:
                diff = _first_difference(got[key], expected[key], rtol, atol, f"{here}[{key!r}]")
                if diff:
                    return diff
        return None
    if isinstance(expected, str):
        if got != expected:
            return f"{here} differs: got {_short(got)}, expected {_short(expected)}"
        return None
    if isinstance(expected, (np.ndarray, list, tuple)) and _is_numeric(expected):
        return _array_difference(got, expected, rtol, atol, here)
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return f"{here} should be a {type(expected).__name__}, got {_type_name(got)}"
        if len(got) != len(expected):
            return f"{here} has length {len(got)}, expected length {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            diff = _first_difference(g, e, rtol, atol, f"{here}[{i}]")
            if diff:
                return diff
        return None
    if isinstance(expected, (bool, np.bool_)):
        return None if got == expected else f"{here} differs: got {_short(got)}, expected {expected}"
    if isinstance(expected, (int, float, np.integer, np.floating)):
        if isinstance(got, np.ndarray) and got.shape == ():
            got = got.item()
        if not isinstance(got, (int, float, np.integer, np.floating)) or isinstance(got, bool):
            return f"{here} should be a number, got {_type_name(got)}: {_short(got)}"
        if not _close(float(got), float(expected), rtol, atol):
            return f"{here} differs: got {float(got)!r}, expected {float(expected)!r} (tolerance rtol={rtol:g}, atol={atol:g})"
        return None
    return None if got == expected else f"{here} differs: got {_short(got)}, expected {_short(expected)}"


def _is_numeric(value: Any) -> bool:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):  # ragged nested lists
        return False
    # An empty list is compared as a list (by length); an empty array still as an array.
    return arr.dtype.kind in "biuf" and (arr.size > 0 or isinstance(value, np.ndarray))


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    if math.isnan(b):
        return math.isnan(a)
    if math.isinf(b):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)


def _array_difference(got: Any, expected: Any, rtol: float, atol: float, here: str) -> str | None:
    exp = np.asarray(expected)
    try:
        arr = np.asarray(got)
    except (ValueError, TypeError):
        return f"{here} should be numeric with shape {exp.shape}, got {_type_name(got)}"
    if arr.dtype.kind not in "biuf":
        return f"{here} should hold numbers ({exp.dtype}), got {_type_name(got)}"
    if arr.shape != exp.shape:
        return f"{here} has shape {arr.shape}, expected shape {exp.shape}"
    a, e = arr.astype(np.float64), exp.astype(np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True) | ((a == e) & np.isinf(e))
    if ok.all():
        return None
    index = tuple(int(i) for i in np.argwhere(~ok)[0])
    where = f"{here}[{', '.join(map(str, index))}]" if index else here
    return (
        f"{where} differs: got {a[index]!r}, expected {e[index]!r} "
        f"({int((~ok).sum())} of {ok.size} elements differ; tolerance rtol={rtol:g}, atol={atol:g})"
    )


def _tolerance(tolerance: str | tuple[float, float]) -> tuple[float, float]:
    if isinstance(tolerance, str):
        if tolerance not in TOLERANCES:
            raise ValueError(f"unknown tolerance {tolerance!r}; choose one of {sorted(TOLERANCES)} or give (rtol, atol)")
        return TOLERANCES[tolerance]
    rtol, atol = tolerance
    return float(rtol), float(atol)


# --------------------------------------------------------------------------- the check itself
def _call_student(student_fn: Callable, args: tuple, allowed: Sequence[str]) -> tuple[Any, BaseException | None]:
    with reference_blocked(allowed) as guard:
        try:
            result, error = student_fn(*args), None
        except ReferenceUsedError as exc:
            result, error = None, exc
        except Exception as exc:  # a student's bug: reported as a failed check, with the error
            result, error = None, exc
    if guard.violation is not None:
        raise AssertionError(
            f"{_fn_name(student_fn)} called {guard.violation}, part of the course's reference implementation. "
            "This exercise asks you to write the computation yourself, so this test gives no points. "
            "Remove the call to llmcourse and implement it yourself."
        )
    return result, error


def _fn_name(fn: Callable) -> str:
    return getattr(fn, "__name__", repr(fn))


def check(
    student_fn: Callable,
    reference: Callable,
    cases: Sequence[tuple] | Mapping[str, tuple] = (),
    random_cases: Callable[[np.random.Generator], tuple] | None = None,
    n_random: int = 20,
    seed: int = 0,
    tolerance: str | tuple[float, float] = "float",
    allowed: Sequence[str] = ALLOWED_MODULES,
) -> None:
    """Check ``student_fn`` against ``reference`` on every case; raise ``AssertionError`` on the first mismatch.

    Returns nothing on purpose: nbgrader reads a number displayed by a test cell
    as partial credit, so a returned count would corrupt the grade.

    Args:
        student_fn: the student's implementation.
        reference: the reference with the same signature.
        cases: hand-written inputs (tuples of positional arguments), optionally
            named (a mapping from a description to the arguments).
        random_cases: ``rng -> args``, called ``n_random`` times with a generator
            seeded by ``seed`` (hidden tests use other seeds).
        tolerance: a name from :data:`TOLERANCES` or ``(rtol, atol)``.

    Where the reference raises ``ValueError`` the student's function must raise
    ``ValueError`` too (clear errors on bad input are part of the exercise).
    """
    if not callable(student_fn):
        raise AssertionError(f"expected a function to check, got {_type_name(student_fn)}; did you define it?")
    rtol, atol = _tolerance(tolerance)
    named = list(cases.items()) if isinstance(cases, Mapping) else [(f"case {i + 1}", c) for i, c in enumerate(cases)]
    if random_cases is not None:
        rng = np.random.default_rng(seed)
        # The seed stays out of the label: feedback shows labels, and hidden seeds stay hidden.
        named += [(f"random case {i + 1}", random_cases(rng)) for i in range(n_random)]
    if not named:
        raise ValueError("check needs at least one case: give cases= or random_cases=")
    name = _fn_name(student_fn)
    for label, args in named:
        args = tuple(args)
        try:
            expected, expected_error = reference(*copy.deepcopy(args)), None
        except ValueError as exc:
            expected, expected_error = None, exc
        got, error = _call_student(student_fn, copy.deepcopy(args), allowed)
        shown = ", ".join(_short(a, 120) for a in args)
        if expected_error is not None:
            if not isinstance(error, ValueError):
                what = f"returned {_short(got)}" if error is None else f"raised {type(error).__name__}: {error}"
                raise AssertionError(
                    f"{name}({shown}) should raise ValueError ({label}: the reference says "
                    f"{expected_error}), but it {what}"
                )
            continue
        if error is not None:
            raise AssertionError(f"{name}({shown}) raised {type(error).__name__}: {error}  [{label}]") from error
        diff = _first_difference(got, expected, rtol, atol)
        if diff is not None:
            raise AssertionError(f"{name} gives a wrong answer on {label}: {name}({shown}).\n{diff}")
    print(f"{name}: all {len(named)} inputs match the reference")


# --------------------------------------------------------------------------- input generators for tests
def random_sentences(
    rng: np.random.Generator, words: Sequence[str] = ("a", "b", "c", "d"), max_sentences: int = 4, max_length: int = 6
) -> list[list[str]]:
    """A few short sentences of ``words`` (some possibly empty): inputs for n-gram exercises."""
    n = int(rng.integers(1, max_sentences + 1))
    return [[str(w) for w in rng.choice(list(words), size=int(rng.integers(0, max_length + 1)))] for _ in range(n)]


def random_distribution(rng: np.random.Generator, size: int | None = None, zeros: bool = True) -> np.ndarray:
    """A random probability vector, sometimes with exact zeros and ties (edge cases for samplers)."""
    size = size or int(rng.integers(2, 12))
    p = rng.random(size) ** 2
    if zeros and size > 2 and rng.random() < 0.5:
        p[rng.integers(size)] = 0.0
    if rng.random() < 0.3:  # a tie for the largest probability
        p[rng.integers(size)] = p.max()
    return p / p.sum()


def check_raises(student_fn: Callable, args: tuple, exception: type[BaseException] = ValueError, why: str = "") -> None:
    """Assert that ``student_fn(*args)`` raises ``exception`` (for bad-input behaviour)."""
    got, error = _call_student(student_fn, copy.deepcopy(tuple(args)), ALLOWED_MODULES)
    shown = ", ".join(_short(a, 120) for a in args)
    if not isinstance(error, exception):
        what = f"returned {_short(got)}" if error is None else f"raised {type(error).__name__}: {error}"
        raise AssertionError(f"{_fn_name(student_fn)}({shown}) should raise {exception.__name__}{' (' + why + ')' if why else ''}, but it {what}")


def check_sampler(
    student_sampler: Callable[[np.random.Generator], int],
    target: Sequence[float] | np.ndarray,
    n_samples: int = 20_000,
    seed: int = 0,
    sigmas: float = 5.0,
) -> None:
    """Statistical check of a sampler: draw ``n_samples`` ids with ``student_sampler(rng)`` and require every
    count within ``sigmas`` standard deviations of n p (and exactly 0 where p = 0).

    With 5 sigma a correct sampler fails with probability below 1e-6 per category,
    while a sampler off by a few percent of probability fails almost surely.
    """
    p = np.asarray(target, dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws: list[Any] = []
    # One guard around all draws: entering it per draw would cost more than the draw itself.
    with reference_blocked(ALLOWED_MODULES) as guard:
        try:
            for _ in range(n_samples):
                draws.append(student_sampler(rng))
        except Exception as exc:
            error: BaseException | None = exc
        else:
            error = None
    if guard.violation is not None:
        raise AssertionError(
            f"the sampler called {guard.violation}, part of the course's reference implementation; "
            "this exercise asks you to write it yourself, so this test gives no points."
        )
    if error is not None:
        raise AssertionError(f"the sampler raised {type(error).__name__}: {error}") from error
    counts = np.zeros(p.size, dtype=np.int64)
    for got in draws:
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)) or not 0 <= int(got) < p.size:
            raise AssertionError(f"the sampler must return a token id, an int in 0..{p.size - 1}; got {_short(got)}")
        counts[int(got)] += 1
    expected = n_samples * p
    sd = np.sqrt(n_samples * p * (1 - p))
    bad = np.flatnonzero(np.where(p == 0, counts > 0, np.abs(counts - expected) > sigmas * sd))
    if bad.size:
        i = int(bad[0])
        raise AssertionError(
            f"in {n_samples} samples, id {i} came up {counts[i]} times, but with probability {p[i]:.4f} "
            f"it should come up about {expected[i]:.0f} +/- {sigmas * sd[i]:.0f} times. Check that you sample "
            f"from the right distribution (e.g. the temperature-adjusted one)."
        )
    print(f"sampler: {n_samples} draws match the target distribution within {sigmas:g} sigma")
