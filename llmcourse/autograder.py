"""The instructor's autograder: every submission gets a score and a reason, fast, on top of nbgrader.

``llmcourse grade psN`` (:func:`grade_assignment`) grades every notebook under
``submitted/<student>/psN/`` and writes what nbgrader's own ``autograde`` /
``generate_feedback`` / ``export`` would, so formgrader and ``nbgrader export`` keep working:

* the gradebook (nbgrader's SQLAlchemy database, ``gradebook.db`` or any ``db_url``): one
  submission per student, an ``auto_score`` for every grade cell, a comment with the reason;
* ``autograded/<student>/psN/psN.ipynb``: the notebook as it ran, with outputs;
* ``feedback/<student>/psN/psN.html``: the score per test and what went wrong (never a hidden test);
* ``grades.csv``: nbgrader's export plus a ``reason`` column, one row per student.

What runs. The notebook that runs is rebuilt from the instructor's SOURCE notebook: every cell
that is not the student's to edit (tests, hidden tests, set-up, text) is taken verbatim from the
source by ``grade_id``, with the source's points; only solution cells (and cells the student
added) come from the submission. Deleted, edited, duplicated or reordered test cells and edited
metadata therefore change nothing; the feedback says what was restored.

How it runs. No Jupyter kernel: the grader process imports numpy and the course package once and
then forks one child per submission (milliseconds instead of a kernel's seconds), up to ``jobs``
at a time. Each child is a sandbox (see :func:`_sandbox`): its own session and, where the system
allows, its own PID and network namespaces; resource limits on memory, CPU time, processes, file
size and open files; a scratch folder holding only a copy of the submission; an audit hook that
refuses sockets, ctypes, reading the course's private files (solutions, other submissions, the
gradebook) and the introspection a student would need to tamper with the harness. The parent
enforces a per-cell and a whole-notebook deadline by killing the child; a cell that kills or
stalls the child scores 0 and the notebook is run again without it (at most ``max_restarts``
times), so one bad function costs one exercise, not the notebook.

The scores come from nbgrader's own rule (:func:`nbgrader.utils.determine_grade`: a test cell
with an error, or output on stderr, scores 0; otherwise its points) applied to the outputs the
parent received. The child runs student code, so what it reports could in principle be forged by
code written against this grader; the README states this residual risk.

Book section: the README's instructor guide.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import dataclasses
import errno
import hashlib
import html
import io
import json
import os
import re
import secrets
import select
import shutil
import signal
import sys
import tempfile
import time
import tomllib
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from llmcourse.hardware import usable_cores

# ------------------------------------------------------------------------------------------------ limits
@dataclass
class GradingLimits:
    """Every limit a submission runs under, in one place (defaults suit a course's small assignments).

    Override any of them in ``grading.toml`` at the course root (section ``[limits]``), e.g.::

        [limits]
        cell_timeout = 10.0
        memory_mb = 1024

    and the gradebook's address in ``[gradebook] db_url = "postgresql://..."``.
    """

    cell_timeout: float = 30.0  # seconds of wall time for one cell
    notebook_timeout: float = 120.0  # seconds of wall time for the whole notebook, restarts included
    memory_mb: int = 2048  # address space of the child (RLIMIT_AS), MiB
    max_processes: int = 32  # processes and threads the submission may create (RLIMIT_NPROC)
    max_file_mb: int = 16  # largest file it may write (RLIMIT_FSIZE), MiB
    max_open_files: int = 128  # RLIMIT_NOFILE
    max_output_kb: int = 64  # stdout + stderr kept per cell; the rest is dropped with a note
    max_restarts: int = 3  # re-runs after a cell kills or stalls the notebook
    setup_timeout: float = 10.0  # seconds for the child to start (before the first cell)
    skip_demo_cells: bool = True  # skip instructor cells whose results no later cell uses (see below)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", "int") and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                if not (f.name == "max_restarts" and value == 0):
                    raise ValueError(f"grading limit {f.name} must be a positive number, got {value!r}")

    @classmethod
    def from_file(cls, path: Path | None) -> "GradingLimits":
        """The defaults, overridden by the ``[limits]`` section of a TOML file (when it exists)."""
        if path is None or not Path(path).is_file():
            return cls()
        data = tomllib.loads(Path(path).read_text()).get("limits", {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown grading limit(s) {unknown} in {path}; known: {sorted(known)}")
        return cls(**data)


CONFIG_FILE = "grading.toml"


def db_url_from_config(root: Path) -> str:
    """The gradebook's SQLAlchemy URL: ``[gradebook] db_url`` in grading.toml, else ``sqlite:///<root>/gradebook.db``."""
    path = root / CONFIG_FILE
    if path.is_file():
        url = tomllib.loads(path.read_text()).get("gradebook", {}).get("db_url")
        if url:
            return str(url)
    return f"sqlite:///{root / 'gradebook.db'}"


# ------------------------------------------------------------------------------------------------ hidden tests
HIDDEN_BEGIN, HIDDEN_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"


def strip_hidden(source: str) -> str:
    """A test cell's source without the lines between the hidden-test markers (markers included)."""
    kept, hidden = [], False
    for line in source.split("\n"):
        if HIDDEN_BEGIN in line:
            hidden = True
        elif HIDDEN_END in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept).rstrip()


def hidden_secrets(notebook: nbformat.NotebookNode) -> list[str]:
    """Text that must never reach a student: hidden-test lines and the numbers (seeds) only they contain."""
    inside, outside = [], []
    for cell in notebook.cells:
        hidden = False
        for line in cell.source.split("\n"):
            if HIDDEN_BEGIN in line:
                hidden = True
            elif HIDDEN_END in line:
                hidden = False
            else:
                (inside if hidden else outside).append(line)
    visible = "\n".join(outside)
    lines = {line.strip() for line in inside if len(line.strip()) >= 16 and line.strip() not in visible}
    numbers = {n for n in re.findall(r"\d{3,}", "\n".join(inside)) if not re.search(rf"\b{n}\b", visible)}
    return sorted(lines | numbers, key=len, reverse=True)


def redact(text: str, secrets_: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``[hidden]`` (numbers only where they stand alone)."""
    for secret in secrets_:
        if secret.isdigit():
            text = re.sub(rf"(?<!\d){secret}(?!\d)", "[hidden]", text)
        else:
            text = text.replace(secret, "[hidden]")
    return text


# ------------------------------------------------------------------------------------------------ building the run
@dataclass
class RunCell:
    """One cell of the notebook that runs: where it came from decides how it runs and scores."""

    kind: str  # "student" | "test" | "instructor" | "markdown" | "answer"
    source: str
    cell: dict  # the output notebook's cell (source metadata; student source for solution cells)
    grade_id: str | None = None
    points: float = 0.0
    skip: bool = False  # an instructor demo cell no later cell depends on


@dataclass
class Submission:
    """A student's submitted notebook, read and checked."""

    student: str
    notebook: str  # the assignment's notebook name, e.g. "ps1"
    path: Path | None
    problem: str | None = None  # why it cannot be run at all
    notes: list[str] = field(default_factory=list)  # what was restored or ignored
    cells: list[RunCell] = field(default_factory=list)


def read_submission(path: Path | None, student: str, name: str) -> tuple[nbformat.NotebookNode | None, str | None]:
    """The student's notebook, or None and the reason it cannot be read."""
    if path is None:
        return None, "no notebook was submitted"
    raw = path.read_bytes()
    if not raw.strip():
        return None, f"{path.name} is empty (0 bytes of notebook)"
    try:
        data = json.loads(raw.decode("utf-8", errors="replace"))
    except json.JSONDecodeError as exc:
        return None, f"{path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); open it in Jupyter and save it again"
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        return None, f"{path.name} is JSON but not a Jupyter notebook (no 'cells'/'nbformat'); submit the .ipynb file itself"
    if data.get("nbformat") != 4:
        return None, f"{path.name} has nbformat {data.get('nbformat')!r}; only version 4 notebooks (Jupyter 4 or later) can be graded"
    try:
        notebook = nbformat.reads(json.dumps(data), as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # nbformat raises several kinds; the message is what matters
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"{path.name} is not a valid notebook ({first[:200]})"
    return notebook, None


def _nbgrader_meta(cell: dict) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _key_meta(cell: dict) -> tuple:
    meta = _nbgrader_meta(cell)
    return tuple(str(meta.get(k)) for k in ("grade", "solution", "locked", "points", "task"))


def _assigned_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {"*"}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _used_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {"*"}
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} | {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
    }


def build_run(source: nbformat.NotebookNode, release: nbformat.NotebookNode, submitted: nbformat.NotebookNode,
              skip_demo_cells: bool = True) -> tuple[list[RunCell], list[str]]:
    """The cells to run, in the source's order, and notes on what was restored.

    Solution cells take the student's source (the last edit wins when a grade id repeats... no:
    the first copy is used and duplicates are reported); everything else is the source's cell.
    Cells the student added (no known grade id) run after the known cell that precedes them.
    """
    notes: list[str] = []
    release_meta = {_nbgrader_meta(c).get("grade_id"): c for c in release.cells if _nbgrader_meta(c).get("grade_id")}
    source_ids = {_nbgrader_meta(c).get("grade_id"): c for c in source.cells if _nbgrader_meta(c).get("grade_id")}
    student_solution: dict[str, str] = {}
    extras: dict[str | None, list[str]] = {}
    last_known: str | None = None
    seen: set[str] = set()
    for cell in submitted.cells:
        gid = _nbgrader_meta(cell).get("grade_id")
        if isinstance(gid, str) and gid in source_ids:
            src_cell = source_ids[gid]
            if gid in seen:
                notes.append(f"cell {gid!r} appears more than once; only its first copy was used")
                continue
            seen.add(gid)
            last_known = gid
            if _nbgrader_meta(src_cell).get("solution"):
                if cell.get("cell_type") != src_cell.cell_type:
                    notes.append(f"cell {gid!r} changed type; the release's version was used")
                else:
                    student_solution[gid] = cell.source
            elif cell.source not in (release_meta.get(gid, src_cell).source, src_cell.source) and _nbgrader_meta(src_cell).get("grade"):
                notes.append(f"test cell {gid!r} was edited; the original was restored")
            if _key_meta(cell) != _key_meta(src_cell):
                notes.append(f"the metadata of cell {gid!r} (points, grade id) was edited; the original was restored")
        elif cell.get("cell_type") == "code" and cell.source.strip():
            if gid:
                notes.append(f"cell {gid!r} is not part of the assignment; it ran as your own code and scores nothing")
            extras.setdefault(last_known, []).append(cell.source)
    order = [c for c in (_nbgrader_meta(c).get("grade_id") for c in submitted.cells) if c in source_ids]
    tests_in_order = [g for g in order if _nbgrader_meta(source_ids[g]).get("grade")]
    expected = [g for g in (_nbgrader_meta(c).get("grade_id") for c in source.cells) if g in tests_in_order]
    if tests_in_order != expected[: len(tests_in_order)] or len(set(tests_in_order)) != len(tests_in_order):
        notes.append("cells were reordered; the assignment's order was restored")
    for gid, cell in source_ids.items():
        if _nbgrader_meta(cell).get("grade") and gid not in seen:
            notes.append(f"test cell {gid!r} was missing; it was restored")
        elif _nbgrader_meta(cell).get("solution") and gid not in seen:
            notes.append(f"your answer cell {gid!r} was missing; the empty starter version was used")

    run: list[RunCell] = [RunCell("student", s, nbformat.v4.new_code_cell(s)) for s in extras.get(None, [])]
    for src_cell in source.cells:
        meta = _nbgrader_meta(src_cell)
        gid = meta.get("grade_id")
        rel = release_meta.get(gid, src_cell)
        out = nbformat.from_dict(json.loads(json.dumps(rel)))  # release's cell: metadata with checksums
        points = float(meta.get("points", 0) or 0)
        if meta.get("solution"):
            out.source = student_solution.get(gid, rel.source)
            kind = "answer" if src_cell.cell_type == "markdown" else "student"
        elif src_cell.cell_type == "code":
            out.source = src_cell.source  # hidden tests included: the source is the truth
            kind = "test" if meta.get("grade") else "instructor"
        else:
            kind = "markdown"
        if out.cell_type == "code":
            out.outputs, out.execution_count = [], None
        run.append(RunCell(kind, out.source, out, gid, points))
        for extra in extras.get(gid, []):
            run.append(RunCell("student", extra, nbformat.v4.new_code_cell(extra)))
    if skip_demo_cells:
        _mark_demo_cells(run)
    return run, notes


def _mark_demo_cells(run: list[RunCell]) -> None:
    """Skip instructor cells (not tests) after the last test whose names no later code cell uses.

    Such a cell (e.g. a table the student reads before a written answer) cannot change a score;
    skipping it saves its run time for every submission. Set ``skip_demo_cells = false`` to run them.
    """
    last_test = max((i for i, c in enumerate(run) if c.kind == "test"), default=-1)
    for i, cell in enumerate(run):
        if cell.kind != "instructor" or i < last_test:
            continue
        later = set().union(*(_used_names(c.source) for c in run[i + 1:] if c.cell.cell_type == "code"))
        if "*" not in later and not (_assigned_names(cell.source) & later):
            cell.skip = True


# ------------------------------------------------------------------------------------------------ the child
class _CappedStream(io.TextIOBase):
    """stdout/stderr of a cell: keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, name: str, sink: list, limit: int) -> None:
        self.name, self.sink, self.limit = name, sink, limit
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        used = sum(len(t) for n, t in self.sink)
        room = max(0, self.limit - used)
        if room:
            self.sink.append((self.name, text[:room]))
        self.dropped += max(0, len(text) - room)
        return len(text)

    def flush(self) -> None:
        pass


class _Harness:
    """Protected state of the child: the modules and functions the tests rely on, as they were before
    student code ran. Restored before every test cell; a change made while a test runs fails that test."""

    PROTECTED_PREFIXES = ("llmcourse", "numpy", "builtins", "math", "copy", "collections", "sys")

    def __init__(self) -> None:
        self.modules = {name: mod for name, mod in list(sys.modules.items())
                        if mod is not None and name.split(".")[0] in self.PROTECTED_PREFIXES}
        self.dicts = {name: dict(vars(mod)) for name, mod in self.modules.items()}
        self.code = {}
        for name, mod in self.modules.items():
            if name.startswith("llmcourse"):
                for key, value in vars(mod).items():
                    if callable(value) and hasattr(value, "__code__"):
                        self.code[(name, key)] = (value, value.__code__, value.__defaults__, value.__kwdefaults__)
        self.meta_path = list(sys.meta_path)
        self.pid = os.getpid()

    def restore(self) -> list[str]:
        """Undo changes to the protected state; return what had been changed."""
        changed: list[str] = []
        for name, mod in self.modules.items():
            if sys.modules.get(name) is not mod:
                sys.modules[name] = mod
                changed.append(f"sys.modules[{name!r}]")
            current, saved = vars(mod), self.dicts[name]
            for key, value in saved.items():
                if current.get(key, _MISSING) is not value and key not in ("__loader__", "__spec__"):
                    if name == "sys" and key in ("stdout", "stderr", "stdin", "displayhook", "excepthook"):
                        continue  # the runner sets these itself
                    current[key] = value
                    changed.append(f"{name}.{key}")
            if name.startswith("llmcourse"):
                for key in [k for k in current if k not in saved and not isinstance(current[k], type(sys))]:
                    del current[key]
                    changed.append(f"{name}.{key}")
        for (name, key), (fn, code, defaults, kwdefaults) in self.code.items():
            if fn.__code__ is not code or fn.__defaults__ is not defaults or fn.__kwdefaults__ is not kwdefaults:
                fn.__code__, fn.__defaults__, fn.__kwdefaults__ = code, defaults, kwdefaults
                changed.append(f"{name}.{key}")
        if sys.meta_path != self.meta_path:
            sys.meta_path[:] = self.meta_path
            changed.append("sys.meta_path")
        return changed


_MISSING = object()


def _install_audit_hook(denied: list[str], allowed: list[str], state: dict) -> None:
    """Refuse what a submission must not do, for the rest of the child's life (hooks cannot be removed).

    Denied always: sockets (network), ctypes (raw memory: it could undo every other protection),
    the garbage collector's object lists and other threads' frames (the way to the harness's
    private state), and opening or listing paths under ``denied`` (unless under ``allowed``).
    While student code runs (``state["student"]``), also: frames reached from student code and
    ``sys.settrace``/``sys.setprofile`` except by the harness (which uses tracing to block the reference).
    """
    grading_file = str(Path(__file__).with_name("grading.py"))
    protected_pids = {os.getppid(), state.get("grader_pid", -1)} - {0, 1}
    busy = [False]

    def caller_file() -> str:
        frame = sys._getframe(2)
        return frame.f_code.co_filename if frame is not None else ""

    def hook(event: str, args: tuple) -> None:
        if busy[0]:
            return
        if event.startswith(("socket.", "ctypes.")) or event in ("gc.get_objects", "gc.get_referrers",
                                                                   "gc.get_referents", "sys._current_frames"):
            raise PermissionError(f"the grader does not allow {event} (no network, no raw memory access)")
        if event in ("open", "os.listdir", "os.scandir", "shutil.copytree", "os.chdir"):
            path = args[0] if args else None
            if isinstance(path, int) or path is None:
                return
            try:
                real = os.path.realpath(os.fsdecode(path))
            except (TypeError, ValueError):
                return
            if any(real == d or real.startswith(d + os.sep) for d in denied) and not any(
                real == a or real.startswith(a + os.sep) for a in allowed
            ):
                raise PermissionError(f"the grader does not allow reading {os.fsdecode(path)!r}: it is not part of your submission")
            return
        if not state.get("student"):
            return
        if event in ("sys.settrace", "sys.setprofile", "sys._getframe") or (
            event == "object.__getattr__" and len(args) > 1 and args[1] in ("tb_frame", "gi_frame", "cr_frame", "ag_frame")
        ):
            busy[0] = True
            try:
                where = caller_file()
            finally:
                busy[0] = False
            if event in ("sys.settrace", "sys.setprofile"):
                if where != grading_file and not where.startswith(os.path.dirname(threading_file)):
                    raise PermissionError(f"the grader does not allow {event}: the tests use tracing to block the reference implementation")
            elif where.startswith("<cell") or os.path.basename(where) in ("inspect.py", "traceback.py"):
                raise PermissionError("the grader does not allow inspecting the frames of the tests")
        elif event in ("os.kill", "os.killpg") and args and args[0] in protected_pids:
            raise PermissionError("the grader does not allow signalling the grader's processes")
        elif event == "object.__setattr__" and args:
            target = args[0]
            module = getattr(target, "__module__", "") or ""
            if isinstance(module, str) and module.split(".")[0] in ("llmcourse", "numpy"):
                raise PermissionError(f"the grader does not allow changing {module}.{getattr(target, '__name__', '?')}")

    import threading
    threading_file = threading.__file__
    sys.addaudithook(hook)


def _exec_cell(source: str, namespace: dict, filename: str) -> Any:
    """Run a cell like IPython: statements, then the value of a final expression (returned)."""
    from IPython.core.inputtransformer2 import TransformerManager

    if "%" in source or "!" in source:
        source = TransformerManager().transform_cell(source)
    tree = ast.parse(source, filename=filename)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, filename, "exec"), namespace)
    if last is not None:
        return eval(compile(ast.Expression(last.value), filename, "eval"), namespace)
    return None


class _NoIPython:
    """What ``get_ipython()`` returns in the grader: magics do nothing but say so."""

    def run_line_magic(self, name: str, line: str, *args: Any) -> None:
        if name not in ("matplotlib", "config", "load_ext", "autoreload"):
            raise RuntimeError(f"%{name} is not available when grading; use plain Python")

    def run_cell_magic(self, name: str, line: str, cell: str) -> None:
        raise RuntimeError(f"%%{name} is not available when grading; use plain Python")

    def system(self, cmd: str) -> None:
        raise RuntimeError("shell commands (!...) are not available when grading")

    getoutput = system


def _run_cells(job: "_Job", send: Callable[[dict], None], state: dict, limits: GradingLimits) -> None:
    """In the sandboxed child: run every cell, sending each outcome to the parent as it ends."""
    harness = _Harness()
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__, "get_ipython": lambda: _NoIPython()}
    real_stdout, real_stderr = sys.stdout, sys.stderr
    limit = limits.max_output_kb * 1024
    for index, cell in enumerate(job.cells):
        if cell.cell.cell_type != "code" or cell.skip or index in job.skip:
            continue
        send({"event": "start", "cell": index})
        changed = harness.restore() if cell.kind == "test" else []
        sink: list[tuple[str, str]] = []
        out, err = _CappedStream("stdout", sink, limit), _CappedStream("stderr", sink, limit)
        sys.stdout, sys.stderr = out, err
        result, error = None, None
        state["student"] = cell.kind in ("student", "test")
        try:
            value = _exec_cell(cell.source, namespace, f"<cell {index}>")
            if value is not None:
                result = repr(value)[:limit]
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from student code, too
            error = exc
        finally:
            state["student"] = False
            sys.stdout, sys.stderr = real_stdout, real_stderr
        # Only the harness's own module and the builtins count as tampering during a test: other
        # modules may legitimately update their globals, and must not cost an honest student points.
        if os.getpid() != harness.pid:
            os._exit(0)  # a process the student forked came back here: it must not report
        tampered = [c for c in (harness.restore() if cell.kind == "test" else [])
                    if c.startswith(("llmcourse.grading", "builtins.", "sys.modules")) or re.fullmatch(r"numpy\.\w+", c)]
        message: dict[str, Any] = {"event": "end", "cell": index, "token": job.token, "streams": sink,
                                   "dropped": out.dropped + err.dropped, "result": result, "restored": changed}
        if error is not None:
            tb = traceback.format_exception(type(error), error, error.__traceback__)
            message["error"] = {"ename": type(error).__name__, "evalue": _safe_str(error)[:2000],
                                "traceback": [line[:2000] for line in tb[-20:]]}
        if tampered:
            message["error"] = {"ename": "GraderTampering",
                                "evalue": f"your code changed {', '.join(tampered[:3])} while the tests ran; this test gives no points",
                                "traceback": []}
        send(message)
    send({"event": "done", "token": job.token})


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose message cannot be shown>"


def _libc_unshare(flags: int) -> bool:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.unshare(flags) == 0


CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWUSER = 0x40000000, 0x20000000, 0x10000000


def _sandbox(job: "_Job", wfd: int, limits: GradingLimits) -> None:
    """The first child (A): its own session and namespaces, then B, PID 1 of a new PID namespace, which starts
    the runner C.

    Killing B tears the namespace down with every process the submission started, even ones that
    left the process group. A reports B's pid and exit status to the parent and is never touched by student code.
    """
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, wfd)
    os.closerange(wfd + 1, 65536)
    isolation = []
    flags = CLONE_NEWNET | CLONE_NEWPID
    try:
        ok = _libc_unshare(flags) or _libc_unshare(flags | CLONE_NEWUSER)
        if ok:
            isolation.append("namespaces")
    except OSError:
        ok = False

    def send(message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        view = memoryview(data)
        while view:
            try:
                n = os.write(wfd, view)
            except InterruptedError:
                continue
            view = view[n:]

    pid = os.fork()
    if pid == 0:
        _namespace_init(job, wfd, limits, send, isolation)
    send({"event": "runner", "pid": pid, "isolation": isolation})
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            status = 0
            break
        except InterruptedError:
            continue
    with contextlib.suppress(BaseException):
        send({"event": "exit", "status": status})
    os._exit(0)


def _namespace_init(job: "_Job", wfd: int, limits: GradingLimits, send: Callable[[dict], None],
                    isolation: list[str]) -> None:
    """B: PID 1 of the submission's PID namespace. It runs no student code: it starts the runner (C),
    reaps every process orphaned inside the namespace, and reports C's exit status.

    The cells cannot run in B itself: the kernel drops signals with the default action that a
    namespace's init receives from inside it, so a student's ``raise(SIGSEGV)`` (``faulthandler._sigsegv``)
    or ``os.kill(os.getpid(), SIGTERM)`` would be silently ignored instead of ending the notebook.
    """
    pid = os.fork()
    if pid == 0:
        try:
            _runner(job, wfd, limits, send, isolation)
        except BaseException:
            with contextlib.suppress(BaseException):
                send({"event": "crash", "message": traceback.format_exc()[-2000:]})
        os._exit(0)
    status = 0
    while True:
        try:
            done, code = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if done == pid:
            status = code
            break
    with contextlib.suppress(BaseException):
        send({"event": "exit", "status": status})
    os._exit(0)  # init's exit ends every process left in the namespace


def _runner(job: "_Job", wfd: int, limits: GradingLimits, send: Callable[[dict], None], isolation: list[str]) -> None:
    """The runner (C): drop privileges, set limits, enter the scratch folder, run the cells."""
    import resource

    scratch = str(job.scratch)
    if os.geteuid() == 0:
        # As root, limits on processes do not apply: run as nobody (files in scratch are made theirs).
        nobody = 65534
        for path in [scratch, *(str(p) for p in Path(scratch).rglob("*"))]:
            with contextlib.suppress(OSError):
                os.chown(path, nobody, nobody)
        with contextlib.suppress(OSError):
            os.setgroups([])
            os.setgid(nobody)
            os.setuid(nobody)
    mib = 1024 * 1024
    cpu = int(limits.notebook_timeout) + 5
    for what, value in ((resource.RLIMIT_AS, limits.memory_mb * mib), (resource.RLIMIT_CPU, cpu),
                        (resource.RLIMIT_FSIZE, limits.max_file_mb * mib), (resource.RLIMIT_NOFILE, limits.max_open_files),
                        (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, limits.max_processes * max(1, job.jobs))):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(what, (value, value))
    import faulthandler

    faulthandler.disable()  # a crash must end the child, not run a handler inherited from the grader
    for crash in (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGABRT):
        signal.signal(crash, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails with an error instead of killing
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.chdir(scratch)
    os.environ.clear()
    os.environ.update({"HOME": scratch, "TMPDIR": scratch, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
                       "PATH": "/usr/bin:/bin", "MPLCONFIGDIR": scratch})
    tempfile.tempdir = scratch
    state = {"student": False, "grader_pid": job.grader_pid}
    _install_audit_hook(job.denied, [scratch, *job.allowed], state)
    _run_cells(job, send, state, limits)


# ------------------------------------------------------------------------------------------------ the parent
@dataclass
class _Job:
    student: str
    cells: list[RunCell]
    scratch: Path
    denied: list[str]
    allowed: list[str]
    jobs: int
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    grader_pid: int = field(default_factory=os.getpid)
    skip: set[int] = field(default_factory=set)


@dataclass
class _Run:
    """One attempt at a submission, seen from the parent."""

    job: _Job
    pid: int  # A
    fd: int
    started: float
    notebook_deadline: float
    runner: int | None = None
    cell: int | None = None
    cell_deadline: float = 0.0
    buffer: bytes = b""
    received: int = 0
    results: dict[int, dict] = field(default_factory=dict)
    done: bool = False
    exit_status: int | None = None
    killed: str | None = None
    crash: str | None = None


@dataclass
class StudentResult:
    """The outcome of one submission."""

    student: str
    score: float
    max_score: float  # autograded points
    reason: str
    failed: bool = False  # could not be run at all
    problems: list[str] = field(default_factory=list)
    tests: list[dict] = field(default_factory=list)  # {grade_id, points, score, message}
    seconds: float = 0.0
    skipped: bool = False  # unchanged since the last run: not regraded

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _signal_name(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    what = {"SIGSEGV": "segmentation fault", "SIGKILL": "killed", "SIGXCPU": "CPU time limit",
            "SIGABRT": "aborted", "SIGBUS": "bus error", "SIGFPE": "arithmetic error", "SIGXFSZ": "file size limit"}
    return f"{name}, {what[name]}" if name in what else name


class Grader:
    """Runs submissions in sandboxed children, ``jobs`` at a time, and turns what they report into scores."""

    def __init__(self, limits: GradingLimits, jobs: int, denied: list[str], allowed: list[str], scratch_root: Path) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {jobs}")
        self.limits, self.jobs, self.denied, self.allowed = limits, jobs, denied, allowed
        self.scratch_root = scratch_root

    # -- one attempt
    def _start(self, job: _Job, budget_end: float) -> _Run:
        rfd, wfd = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.close(rfd)
                _sandbox(job, wfd, self.limits)
            finally:
                os._exit(0)
        os.close(wfd)
        os.set_blocking(rfd, False)
        now = time.monotonic()
        return _Run(job, pid, rfd, now, budget_end, cell_deadline=now + self.limits.setup_timeout)

    def _kill(self, run: _Run, why: str) -> None:
        if run.killed is None:
            run.killed = why
        for target, kill in ((run.runner, os.kill), (run.pid, os.killpg)):
            if target:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(target, signal.SIGKILL)

    def _read(self, run: _Run) -> bool:
        """Read what is waiting; False at end of file."""
        try:
            chunk = os.read(run.fd, 1 << 16)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        run.received += len(chunk)
        if run.received > 64 * self.limits.max_output_kb * 1024 + (1 << 22):
            self._kill(run, "the notebook sent far more output than the limit allows")
            return False
        run.buffer += chunk
        *lines, run.buffer = run.buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # not from the harness: ignored
            self._handle(run, message)
        return True

    def _handle(self, run: _Run, message: dict) -> None:
        event = message.get("event") if isinstance(message, dict) else None
        now = time.monotonic()
        if event == "runner" and run.runner is None:
            run.runner = int(message["pid"])
        elif event == "exit" and run.exit_status is None:  # B's report of the runner comes before A's of B
            run.exit_status = int(message.get("status", 0))
        elif event == "start":
            cell = message.get("cell")
            if isinstance(cell, int) and 0 <= cell < len(run.job.cells):
                run.cell, run.cell_deadline = cell, now + self.limits.cell_timeout
        elif event == "end" and message.get("token") == run.job.token:
            cell = message.get("cell")
            if isinstance(cell, int) and cell == run.cell and cell not in run.results:
                run.results[cell] = message
                run.cell, run.cell_deadline = None, now + self.limits.cell_timeout
        elif event == "done" and message.get("token") == run.job.token:
            run.done = True
        elif event == "crash" and run.crash is None:
            run.crash = str(message.get("message", ""))[-300:]

    def _attempt_loop(self, jobs: list[_Job], on_done: Callable[[_Job, dict[int, dict], list[str]], None]) -> None:
        """Run every job to completion, restarting a job without the cell that killed or stalled it."""
        pending = [(job, time.monotonic(), {}, []) for job in jobs]  # job, first start, failed cells, problems
        queue = list(range(len(pending)))
        running: dict[int, tuple[int, _Run]] = {}  # fd -> (job index, run)
        while queue or running:
            while queue and len(running) < self.jobs:
                i = queue.pop(0)
                job, first, failed, problems = pending[i]
                if not failed:
                    pending[i] = (job, time.monotonic(), failed, problems)
                    first = pending[i][1]
                run = self._start(job, first + self.limits.notebook_timeout)
                running[run.fd] = (i, run)
            now = time.monotonic()
            wait = min(min(r.cell_deadline, r.notebook_deadline) for _, r in running.values()) - now
            try:
                ready, _, _ = select.select(list(running), [], [], max(0.0, min(wait, 1.0)))
            except InterruptedError:
                ready = []
            finished = []
            for fd in ready:
                i, run = running[fd]
                if not self._read(run):
                    finished.append(fd)
            now = time.monotonic()
            for fd, (i, run) in running.items():
                if fd in finished:
                    continue
                if now > run.notebook_deadline:
                    self._kill(run, f"the notebook ran past its time limit ({self.limits.notebook_timeout:g} s in all)")
                elif now > run.cell_deadline:
                    what = "start" if run.runner is None and run.cell is None else "cell"
                    self._kill(run, f"a {what} ran past its time limit ({self.limits.cell_timeout:g} s)")
                elif run.done and run.exit_status is None and now > run.cell_deadline - self.limits.cell_timeout + 2:
                    self._kill(run, "")  # finished, but leftover processes hold the pipe open
            for fd in finished:
                i, run = running.pop(fd)
                os.close(fd)
                self._kill(run, "")  # whatever the submission left running
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(run.pid, 0)
                job, first, failed, problems = pending[i]
                self._conclude(run, failed, problems)
                if run.done or run.cell is None or len(failed) > self.limits.max_restarts \
                        or time.monotonic() > run.notebook_deadline:
                    results = dict(run.results)
                    for cell, message in failed.items():
                        results[cell] = message
                    if not run.done and run.cell is None and not failed and not run.results:
                        problems.append(run.killed or f"the grader could not start this notebook ({run.crash or 'no reason given'})")
                    on_done(job, results, problems)
                else:
                    job.skip = set(failed)
                    queue.insert(0, i)

    def _conclude(self, run: _Run, failed: dict[int, dict], problems: list[str]) -> None:
        """Turn an attempt that did not finish into an error on the cell it died in."""
        if run.done or run.cell is None:
            if not run.done and run.results and run.killed:
                problems.append(run.killed)
            return
        if run.killed:
            why = run.killed
        elif run.exit_status is not None and os.WIFSIGNALED(run.exit_status):
            why = f"the notebook's process died ({_signal_name(os.WTERMSIG(run.exit_status))})"
        elif run.exit_status is not None and os.WIFEXITED(run.exit_status):
            why = f"the notebook's process exited with code {os.WEXITSTATUS(run.exit_status)} (os._exit or a crash)"
        else:
            why = "the notebook's process ended unexpectedly"
        if "memory" not in why and run.exit_status is not None and os.WIFSIGNALED(run.exit_status) \
                and os.WTERMSIG(run.exit_status) in (signal.SIGKILL, signal.SIGSEGV) and not run.killed:
            why += f"; it may have run out of memory (limit {self.limits.memory_mb} MiB)"
        cell = run.job.cells[run.cell]
        label = cell.grade_id or f"cell {run.cell + 1}"
        failed[run.cell] = {"event": "end", "cell": run.cell, "streams": [], "dropped": 0, "result": None,
                            "error": {"ename": "GraderError", "evalue": f"{why} while running {label}; it was skipped and the rest re-run",
                                      "traceback": []}}
        problems.append(f"{why} in {label}")

    def run(self, jobs: list[_Job], on_done: Callable[[_Job, dict[int, dict], list[str]], None]) -> None:
        previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            self._attempt_loop(jobs, on_done)
        finally:
            signal.signal(signal.SIGCHLD, previous)


# ------------------------------------------------------------------------------------------------ scoring
def _outputs(message: dict | None, limits: GradingLimits) -> list[nbformat.NotebookNode]:
    if not message:
        return []
    outputs = []
    merged: list[list[str]] = []
    for name, text in message.get("streams", []):
        if merged and merged[-1][0] == name:
            merged[-1][1] += text
        else:
            merged.append([name, text])
    for name, text in merged:
        outputs.append(nbformat.v4.new_output("stream", name=name, text=text))
    if message.get("dropped"):
        outputs.append(nbformat.v4.new_output("stream", name="stdout",
                                              text=f"\n[output truncated: {message['dropped']} more characters; the limit is {limits.max_output_kb} KiB per cell]\n"))
    if message.get("result") is not None:
        outputs.append(nbformat.v4.new_output("execute_result", data={"text/plain": message["result"]}, execution_count=None))
    error = message.get("error")
    if error:
        outputs.append(nbformat.v4.new_output("error", ename=str(error["ename"]), evalue=str(error["evalue"]),
                                              traceback=[str(t) for t in error.get("traceback", [])]))
    return outputs


def score_run(cells: list[RunCell], results: dict[int, dict], limits: GradingLimits) -> tuple[nbformat.NotebookNode, list[dict]]:
    """The executed notebook and one record per grade cell (nbgrader's rule decides each score)."""
    from nbgrader.utils import determine_grade

    notebook = nbformat.v4.new_notebook()
    tests = []
    for index, cell in enumerate(cells):
        out = cell.cell
        message = results.get(index) or {}
        label = cell.grade_id or f"your added cell {index + 1}"
        if cell.kind == "student" and message.get("error"):
            error = message["error"]
            tests.append({"grade_id": label, "kind": "note", "points": 0.0, "score": 0.0,
                          "message": f"your cell {label} raised {error['ename']}: {str(error['evalue'])[:200]}"})
        if message.get("dropped"):
            tests.append({"grade_id": label, "kind": "note", "points": 0.0, "score": 0.0,
                          "message": f"cell {label} printed more than {limits.max_output_kb} KiB; the rest was dropped"})
        if message.get("restored"):
            tests.append({"grade_id": label, "kind": "note", "points": 0.0, "score": 0.0,
                          "message": f"your code changed {', '.join(message['restored'][:3])}; the grader restored it before {label} ran"})
        if out.cell_type == "code":
            out.outputs = _outputs(results.get(index), limits)
            if cell.skip:
                out.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                      text="[not run by the grader: no later cell uses its results]\n")]
        notebook.cells.append(out)
        meta = _nbgrader_meta(out)
        if meta.get("grade") and cell.kind in ("test", "answer", "student"):
            if cell.kind == "test" and index not in results:
                out.outputs.append(nbformat.v4.new_output("error", ename="NotRun", evalue="this test did not run (the notebook stopped before it)", traceback=[]))
            score, points = determine_grade(out)
            message = ""
            for output in out.get("outputs", []):
                if output.output_type == "error":
                    message = f"{output.ename}: {output.evalue}"
                elif output.output_type == "stream" and output.name == "stderr" and not message and cell.kind == "test":
                    message = "the test wrote to stderr: " + output.text.strip()[:200]
            tests.append({"grade_id": meta.get("grade_id"), "kind": cell.kind, "points": points,
                          "score": score, "message": message})
    return notebook, tests


# ------------------------------------------------------------------------------------------------ feedback
_CSS = """body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;white-space:pre-wrap}
.err{background:#fdecea}.ok{color:#1a7f37}.bad{color:#b42318}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}.cell{margin:1em 0}
.md{white-space:pre-wrap}"""


def feedback_html(student: str, assignment: str, notebook: nbformat.NotebookNode | None, result: StudentResult,
                  secrets_: list[str]) -> str:
    """The student's feedback page: the score per test, the reason, and the notebook as it ran (hidden tests removed)."""
    esc = html.escape

    def safe(text: str) -> str:
        return esc(redact(text, secrets_))

    rows = "".join(
        f"<tr><td>{esc(str(t['grade_id']))}</td><td class='{'ok' if t['score'] == t['points'] else 'bad'}'>"
        f"{'note' if t.get('kind') == 'note' else 'needs grading by hand' if t['score'] is None else format(t['score'], 'g') + ' / ' + format(t['points'], 'g')}</td>"
        f"<td>{safe(t['message'])}</td></tr>" for t in result.tests)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(assignment)} feedback: {esc(student)}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{esc(assignment)}: feedback for {esc(student)}</h1>",
             f"<p><b>Autograded score: {result.score:g} / {result.max_score:g}</b></p><p>{safe(result.reason)}</p>"]
    if result.tests:
        parts.append(f"<table><tr><th>test</th><th>score</th><th>what went wrong</th></tr>{rows}</table>")
    if notebook is not None:
        parts.append("<h2>Your notebook as it was graded</h2>")
        for cell in notebook.cells:
            meta = _nbgrader_meta(cell)
            source = cell.source
            hidden = HIDDEN_BEGIN in source
            if hidden:
                source = strip_hidden(source) + "\n# (hidden tests were run here; they are not shown)"
            if cell.cell_type == "markdown":
                parts.append(f"<div class='cell md'>{safe(source)}</div>")
                continue
            parts.append(f"<div class='cell'><pre>{safe(source)}</pre>")
            for output in cell.get("outputs", []):
                if output.output_type == "stream":
                    parts.append(f"<pre>{safe(output.text)}</pre>")
                elif output.output_type == "execute_result":
                    parts.append(f"<pre>{safe(output.data.get('text/plain', ''))}</pre>")
                elif output.output_type == "error":
                    lines = [f"{output.ename}: {output.evalue}"] if (hidden or meta.get("grade")) else output.traceback
                    text = "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", line) for line in lines)
                    parts.append(f"<pre class='err'>{safe(text)}</pre>")
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------ the command
@dataclass
class GradingReport:
    """What one ``llmcourse grade`` run did."""

    assignment: str
    results: dict[str, StudentResult]
    grades_csv: Path
    seconds: float

    @property
    def students(self) -> list[str]:
        return sorted(self.results)

    @property
    def failed(self) -> dict[str, str]:
        return {s: r.reason for s, r in self.results.items() if r.failed}

    def summary(self) -> str:
        n, bad = len(self.results), self.failed
        regraded = sum(not r.skipped for r in self.results.values())
        lines = [f"{self.assignment}: graded {n - len(bad)} of {n} submissions in {self.seconds:.1f} s "
                 f"({regraded} run, {n - regraded} unchanged); grades in {self.grades_csv}"]
        lines += [f"  FAILED {student}: {why}" for student, why in sorted(bad.items())]
        lines += [f"  problem {s}: {'; '.join(r.problems)}" for s, r in sorted(self.results.items()) if r.problems and not r.failed]
        return "\n".join(lines)


class Progress:
    """A progress bar on stderr (a plain line now and then when stderr is not a terminal)."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total, self.done, self.start = total, 0, time.monotonic()
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_line = -1.0

    def update(self, label: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        if self.tty:
            width = 30
            filled = int(width * self.done / max(1, self.total))
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {elapsed:5.1f} s {label[:30]:<30}")
            if self.done == self.total:
                self.stream.write("\n")
        elif self.done == self.total or elapsed - self.last_line >= 5 or self.done == 1:
            self.stream.write(f"graded {self.done}/{self.total} ({elapsed:.1f} s)\n")
            self.last_line = elapsed
        self.stream.flush()


def _submission_hash(folder: Path, source_bytes: bytes, limits: GradingLimits) -> str:
    digest = hashlib.sha256(source_bytes)
    digest.update(json.dumps(dataclasses.asdict(limits), sort_keys=True).encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _find_notebook(folder: Path, name: str) -> tuple[Path | None, str | None]:
    """The submitted notebook ``name.ipynb``, or the only notebook there under another name (with a note)."""
    exact = folder / f"{name}.ipynb"
    if exact.is_file():
        return exact, None
    found = sorted(p for p in folder.glob("*.ipynb") if p.is_file() and not p.name.startswith("."))
    if len(found) == 1:
        return found[0], f"the notebook was named {found[0].name!r}, not {name}.ipynb; it was graded anyway"
    if found:
        return None, f"no {name}.ipynb was submitted, and {len(found)} other notebooks ({', '.join(p.name for p in found[:4])}) leave it unclear which to grade"
    return None, f"no {name}.ipynb was submitted (the folder holds {len(list(folder.iterdir()))} other file(s))"


def _state_file(root: Path, assignment: str) -> Path:
    return root / "autograded" / f".llmcourse-grading-{assignment}.json"


def _reason(tests: list[dict], notes: list[str], problems: list[str]) -> str:
    auto = [t for t in tests if t["kind"] == "test"]
    lost = [t for t in auto if t["score"] != t["points"]]
    manual = [t for t in tests if t["score"] is None]
    parts = [t["message"] for t in tests if t["kind"] == "note"]
    if not lost:
        parts.insert(0, f"all {len(auto)} tests passed")
    else:
        for t in lost:
            first = (t["message"] or "failed").strip().splitlines()[0] if (t["message"] or "").strip() else "failed"
            clipped = first if len(first) <= 200 else first[:200].rsplit(" ", 1)[0] + " ..."
            parts.append(f"{t['grade_id']} {t['score']:g}/{t['points']:g}: {clipped}")
    # A problem already told in the message of the test it broke is not repeated.
    shown = " ".join(t["message"] or "" for t in lost)
    parts += [p for p in problems if p.rsplit(" in ", 1)[0] not in shown] + notes
    if manual:
        parts.append(f"{', '.join(str(t['grade_id']) for t in manual)} to be graded by hand")
    return "; ".join(parts)


def grade_assignment(root: Path, assignment: str, *, force: bool = False, jobs: int | None = None,
                     limits: GradingLimits | None = None, db_url: str | None = None, output: Path | None = None,
                     progress: bool = True, students: list[str] | None = None) -> GradingReport:
    """Grade every submission of ``assignment`` under ``root/submitted``: gradebook, autograded notebooks,
    feedback, and the CSV export with a ``reason`` column. Unchanged submissions are not regraded
    unless ``force``. Returns the report (``summary()`` is what the command prints)."""
    from nbgrader.api import Gradebook

    from llmcourse import assignments as course

    start = time.perf_counter()
    course._check_assignment(root, assignment)
    if not (root / course.RELEASE_DIR / assignment).is_dir():
        raise ValueError(f"{assignment} has not been released: run `llmcourse assignments {assignment}` first")
    limits = limits or GradingLimits.from_file(root / CONFIG_FILE)
    jobs = jobs or usable_cores()
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    db_url = db_url or db_url_from_config(root)
    everyone = course.submitted_students(root, assignment)
    if students is not None:
        everyone = [s for s in everyone if s in students]
    if not everyone:
        raise ValueError(f"no submissions found: expected notebooks in {root / course.SUBMITTED_DIR}/<student>/{assignment}/ "
                         "(nbgrader's collect/zip_collect puts them there)")
    # nbgrader's Gradebook shells out to `alembic` when it creates a database.
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    if not course._gradebook_knows(root, assignment, db_url):
        ensure_gradebook(root / course.RELEASE_DIR / assignment, assignment, db_url)

    source_dir, release_dir = root / course.SOURCE_DIR / assignment, root / course.RELEASE_DIR / assignment
    names = sorted(p.stem for p in source_dir.glob("*.ipynb"))
    sources = {n: nbformat.read(source_dir / f"{n}.ipynb", as_version=4) for n in names}
    releases = {n: nbformat.read(release_dir / f"{n}.ipynb", as_version=4) for n in names}
    source_bytes = b"".join((source_dir / f"{n}.ipynb").read_bytes() for n in names)
    secrets_ = sorted({s for nb in sources.values() for s in hidden_secrets(nb)}, key=len, reverse=True)
    _warm_imports(sources.values())

    state_path = _state_file(root, assignment)
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    results: dict[str, StudentResult] = {}
    scratch_root = Path(tempfile.mkdtemp(prefix=f"llmcourse-grade-{assignment}-"))
    os.chmod(scratch_root, 0o711)
    denied = [str((root / d).resolve()) for d in (course.SOURCE_DIR, course.SUBMITTED_DIR, "autograded", "feedback")]
    denied += [str((root / "gradebook.db").resolve()), str((output or root / course.GRADES_FILE).resolve()),
               str((root / "nbgrader_config.py").resolve()), str(scratch_root)]
    allowed = [str(Path(course.__file__).resolve().parent)]
    grader = Grader(limits, jobs, denied, allowed, scratch_root)
    bar = Progress(len(everyone)) if progress else None
    # Only one notebook per assignment is graded per job; assignments with several run them one by one.
    work: list[tuple[str, str, _Job | None, Submission]] = []
    hashes: dict[str, str] = {}
    for student in everyone:
        folder = root / course.SUBMITTED_DIR / student / assignment
        hashes[student] = _submission_hash(folder, source_bytes, limits)
        old = state.get(student)
        if not force and old and old.get("hash") == hashes[student] and \
                (root / "feedback" / student / assignment).is_dir():
            kept = StudentResult(**{k: v for k, v in old["result"].items() if k in StudentResult.__dataclass_fields__})
            kept.skipped = True
            results[student] = kept
            if bar:
                bar.update(student)
            continue
        for name in names:
            path, note = _find_notebook(folder, name)
            sub = Submission(student, name, path)
            if note and path is not None:
                sub.notes.append(note)
            notebook, problem = read_submission(path, student, name) if path is not None else (None, note)
            if notebook is None:
                sub.problem = problem
                work.append((student, name, None, sub))
                continue
            try:
                sub.cells, notes = build_run(sources[name], releases[name], notebook, limits.skip_demo_cells)
            except Exception as exc:  # a notebook nbformat accepts but we cannot assemble
                sub.problem = f"the notebook could not be read ({type(exc).__name__}: {exc})"[:300]
                work.append((student, name, None, sub))
                continue
            sub.notes += notes
            scratch = scratch_root / f"s{len(work)}"
            scratch.mkdir()
            shutil.copy2(path, scratch / path.name)
            work.append((student, name, _Job(student, sub.cells, scratch, denied, allowed, jobs), sub))

    with Gradebook(db_url) as gradebook:
        def finish(sub: Submission, executed: nbformat.NotebookNode | None, tests: list[dict], problems: list[str], seconds: float) -> None:
            result = _record(gradebook, root, assignment, sub, executed, tests, problems, secrets_)
            result.seconds = seconds
            results[sub.student] = result
            state[sub.student] = {"hash": hashes[sub.student], "result": result.to_dict()}
            if bar:
                bar.update(sub.student)

        started: dict[int, float] = {}
        by_job = {id(job): sub for _, _, job, sub in work if job is not None}
        for _, _, job, sub in work:
            if job is None:
                finish(sub, None, [], [], 0.0)

        def on_done(job: _Job, outcome: dict[int, dict], problems: list[str]) -> None:
            sub = by_job[id(job)]
            executed, tests = score_run(sub.cells, outcome, limits)
            finish(sub, executed, tests, problems, time.monotonic() - started.get(id(job), time.monotonic()))

        runnable = [job for _, _, job, _ in work if job is not None]
        for job in runnable:
            started[id(job)] = time.monotonic()
        grader.run(runnable, on_done)
        output = output or root / course.GRADES_FILE
        export_grades(gradebook, output, state_for_reasons(root, gradebook, assignment, state))
    shutil.rmtree(scratch_root, ignore_errors=True)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(state, indent=1))
    return GradingReport(assignment, results, output, time.perf_counter() - start)


def ensure_gradebook(release_dir: Path, assignment: str, db_url: str) -> None:
    """Record the assignment, its notebooks and cells in the gradebook, as ``nbgrader generate_assignment``
    does (its own ``SaveCells`` step, run on the release, whose cells carry nbgrader's checksums)."""
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import SaveCells

    with Gradebook(db_url) as gradebook:
        gradebook.update_or_create_assignment(assignment)
    for path in sorted(release_dir.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        SaveCells().preprocess(notebook, {"nbgrader": {"notebook": path.stem, "assignment": assignment, "db_url": db_url}})


def _warm_imports(notebooks: Iterable[nbformat.NotebookNode]) -> None:
    """Import, in the grader, what the assignment's own cells import: every child then starts warm."""
    import importlib

    for nb in notebooks:
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            with contextlib.suppress(SyntaxError):
                for node in ast.walk(ast.parse(cell.source)):
                    modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                        [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
                    for module in modules:
                        with contextlib.suppress(Exception):
                            importlib.import_module(module)
    import IPython.core.inputtransformer2  # noqa: F401 - used by every child for magics


def _record(gradebook: Any, root: Path, assignment: str, sub: Submission, executed: nbformat.NotebookNode | None,
            tests: list[dict], problems: list[str], secrets_: list[str]) -> StudentResult:
    """Write one submission's grades and comments to the gradebook, its autograded notebook and its feedback."""
    gradebook.update_or_create_student(sub.student)
    folder = root / "submitted" / sub.student / assignment
    stamp = folder / "timestamp.txt"
    kwargs = {}
    if stamp.is_file():
        with contextlib.suppress(Exception):
            kwargs["timestamp"] = stamp.read_text().strip()
    try:
        gradebook.update_or_create_submission(assignment, sub.student, **kwargs)
    except Exception:
        gradebook.db.rollback()
        gradebook.update_or_create_submission(assignment, sub.student)
    nb_record = gradebook.find_submission_notebook(sub.notebook, assignment, sub.student)
    by_id = {t["grade_id"]: t for t in tests if t["kind"] != "note"}
    max_auto = sum(g.max_score for g in nb_record.grades if g.cell.cell_type == "code")
    if sub.problem:
        reason = redact(sub.problem, secrets_)
    else:
        reason = redact(_reason(tests, sub.notes, problems), secrets_)
    for grade in nb_record.grades:
        test = by_id.get(grade.name)
        if sub.problem or test is None:
            grade.auto_score, grade.needs_manual_grade = 0.0, False
        else:
            grade.auto_score = test["score"]
            grade.needs_manual_grade = test["score"] is None
    for i, comment in enumerate(nb_record.comments):
        comment.auto_comment = reason if i == 0 else None
    gradebook.db.commit()
    score = sum((by_id[g.name]["score"] or 0.0) for g in nb_record.grades if g.name in by_id and g.cell.cell_type == "code") \
        if not sub.problem else 0.0
    result = StudentResult(sub.student, float(score), float(max_auto), reason, failed=bool(sub.problem),
                           problems=[redact(p, secrets_) for p in problems],
                           tests=[{k: t[k] for k in ("grade_id", "kind", "points", "score")} | {"message": redact(t["message"], secrets_)}
                                  for t in tests])
    out_dir = root / "autograded" / sub.student / assignment
    fb_dir = root / "feedback" / sub.student / assignment
    for d in (out_dir, fb_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    if executed is not None:
        executed.metadata = json.loads(json.dumps(dict(gradebook_kernel(gradebook, sub.notebook, assignment))))
        nbformat.write(executed, out_dir / f"{sub.notebook}.ipynb")
    if stamp.is_file():
        shutil.copy2(stamp, out_dir / "timestamp.txt")
    (fb_dir / f"{sub.notebook}.html").write_text(feedback_html(sub.student, assignment, executed, result, secrets_))
    return result


def gradebook_kernel(gradebook: Any, notebook: str, assignment: str) -> dict:
    """The notebook metadata nbgrader expects in an autograded notebook (its kernelspec)."""
    try:
        spec = json.loads(gradebook.find_notebook(notebook, assignment).kernelspec or "{}")
    except Exception:
        spec = {}
    return {"kernelspec": spec or {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}}


def state_for_reasons(root: Path, gradebook: Any, assignment: str, state: dict) -> dict[tuple[str, str], str]:
    """(assignment, student) -> reason, from this run and the state files of earlier runs."""
    reasons = {}
    for path in (root / "autograded").glob(".llmcourse-grading-*.json"):
        name = path.stem.removeprefix(".llmcourse-grading-")
        if name == assignment:
            continue
        with contextlib.suppress(Exception):
            for student, entry in json.loads(path.read_text()).items():
                reasons[(name, student)] = entry["result"]["reason"]
    for student, entry in state.items():
        reasons[(assignment, student)] = entry["result"]["reason"]
    return reasons


def export_grades(gradebook: Any, path: Path, reasons: dict[tuple[str, str], str]) -> None:
    """nbgrader's CSV export (every assignment, every student) with a ``reason`` column added."""
    from nbgrader.plugins import CsvExportPlugin

    tmp = path.with_name(path.name + ".tmp")
    CsvExportPlugin(to=str(tmp)).export(gradebook)
    with open(tmp, newline="") as f:
        rows = list(csv.DictReader(f))
    tmp.unlink()
    fields = list(rows[0].keys()) + ["reason"] if rows else ["assignment", "student_id", "score", "max_score", "reason"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            key = (row["assignment"], row["student_id"])
            row["reason"] = reasons.get(key, "" if row.get("timestamp") else "no submission")
            writer.writerow(row)
