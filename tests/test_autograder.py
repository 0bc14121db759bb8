"""The autograder against a corpus of adversarial submissions (issue 7), graded for real in one run.

Every submission is built from Assignment 1's solution (full marks: 12 autograded points) with one
attack or accident. One run of `llmcourse.autograder.grade_assignment` grades them all beside two
honest students, under small limits (15 s per cell: the hidden sampler test alone takes several seconds on a busy 2-core machine; 50 s per notebook; 512 MiB); each must end with a score and a reason
in the CSV and in its feedback, and the honest students must score exactly as when graded alone.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from conftest import REPO_ROOT, tool_env
from llmcourse import assignments, autograder

pytestmark = pytest.mark.slow

NAME = "ps1"
LIMITS = autograder.GradingLimits(cell_timeout=15.0, notebook_timeout=50.0, memory_mb=512, max_processes=16,
                                  max_file_mb=8, max_output_kb=16, max_restarts=4)
SLEEP_MARK = "7777.5"  # a leftover `sleep` with this argument would mean a process escaped


def _solution() -> dict:
    return json.loads((REPO_ROOT / "solutions" / NAME / f"{NAME}.ipynb").read_text())


def _cell(nb: dict, grade_id: str) -> dict:
    return next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)


def _body(nb: dict, grade_id: str, old: str, new: str) -> dict:
    cell = _cell(nb, grade_id)
    source = "".join(cell["source"])
    assert source.count(old) == 1, (grade_id, old)
    cell["source"] = source.replace(old, new)
    return nb


def _first_line(nb: dict, grade_id: str, code: str) -> dict:
    """Insert ``code`` as the first statement of the function defined in solution cell ``grade_id``."""
    return _body(nb, grade_id, "### BEGIN SOLUTION\n", "### BEGIN SOLUTION\n    " + code + "\n")


def _extra(nb: dict, code: str, after: str = "setup") -> dict:
    """A cell the student added after cell ``after``."""
    index = nb["cells"].index(_cell(nb, after))
    nb["cells"].insert(index + 1, {"cell_type": "code", "metadata": {}, "source": code, "outputs": [], "execution_count": None})
    return nb


def _slow(nb: dict) -> dict:
    """Every cell within the per-cell limit, the notebook past the whole-notebook one."""
    for grade_id in ("count_ngrams", "mle_probability", "add_k_probability", "apply_temperature", "sample_with_temperature", "perplexity"):
        _extra(nb, "import time\ntime.sleep(9.0)", after=grade_id)
    return nb


def corpus(root: Path) -> dict[str, tuple[object, float, str]]:
    """student -> (notebook dict, raw text, or None for a folder without ps1.ipynb; expected score; text the reason must contain)."""
    S = _solution
    course = str(root)
    deleted = S()
    deleted["cells"].remove(_cell(deleted, "test_perplexity"))
    reordered = S()
    moved = _cell(reordered, "test_count_ngrams")
    reordered["cells"].remove(moved)
    reordered["cells"].append(moved)
    duplicated = S()
    dup = _cell(duplicated, "test_add_k_probability")
    duplicated["cells"].insert(duplicated["cells"].index(dup), copy.deepcopy(dup))
    edited = _body(S(), "perplexity", "return float(np.exp(-log_probs.mean()))", "return 1.0")
    _cell(edited, "test_perplexity")["source"] = "# tests removed by the student\npass\n"
    metadata = S()
    _cell(metadata, "test_count_ngrams")["metadata"]["nbgrader"]["points"] = 200
    _cell(metadata, "test_mle_probability")["metadata"]["nbgrader"]["grade_id"] = "bogus"
    nbformat3 = S()
    nbformat3["nbformat"] = 3
    buggy_add_k = ("(total + k * vocab_size)", "(total + vocab_size)")
    return {
        # honest students
        "alice": (S(), 12.0, "all 6 tests passed"),
        "carol": (_body(S(), "add_k_probability", *buggy_add_k), 10.0, "add_k_probability gives a wrong answer"),
        # files that are not a gradable notebook
        "notjson": ("{ this is not json", 0.0, "not valid JSON"),
        "notnotebook": ('{"hello": "world"}', 0.0, "not a Jupyter notebook"),
        "oldformat": (nbformat3, 0.0, "nbformat 3"),
        "empty": ("", 0.0, "is empty"),
        "renamed": (("ps1 (1).ipynb", S()), 12.0, "was named 'ps1 (1).ipynb'"),
        "missing": (None, 0.0, "no ps1.ipynb was submitted"),
        # stalls
        "loop": (_first_line(S(), "count_ngrams", "while True: pass"), 10.0, "ran past its time limit (15 s)"),
        "slow": (_slow(S()), 0.0, "in all"),
        # exits and crashes
        "sysexit": (_first_line(S(), "count_ngrams", "import sys; sys.exit(1)"), 10.0, "SystemExit"),
        "osexit": (_first_line(S(), "mle_probability", "import os; os._exit(3)"), 10.0, "exited with code 3"),
        "segfault": (_first_line(S(), "add_k_probability", "import faulthandler; faulthandler._sigsegv()"), 10.0, "SIGSEGV"),
        # refused by the audit hook; the sampler exercise calls apply_temperature too, so both tests fail
        "ctypes": (_first_line(S(), "apply_temperature", "import ctypes; ctypes.string_at(0)"), 8.0, "ctypes"),
        "interrupt": (_first_line(S(), "perplexity", "raise KeyboardInterrupt"), 10.0, "KeyboardInterrupt"),
        # resources
        "memory": (_first_line(S(), "count_ngrams", "x = bytearray(8 * 1024 ** 3)"), 10.0, "MemoryError"),
        "forkbomb": (_extra(S(), f"import os, subprocess\nsubprocess.Popen(['sleep', '{SLEEP_MARK}'], start_new_session=True)\n"
                                 "while True:\n    os.fork()"), 12.0, "BlockingIOError"),
        "disk": (_extra(S(), "with open('big.bin', 'wb') as f:\n    for _ in range(100):\n        f.write(bytes(1024 * 1024))"),
                 12.0, "File too large"),
        "printer": (_extra(S(), "for _ in range(20000):\n    print('spam ' * 200)"), 12.0, "printed more than 16 KiB"),
        # the notebook's structure
        "deleted": (deleted, 12.0, "test cell 'test_perplexity' was missing; it was restored"),
        "reordered": (reordered, 12.0, "reordered"),
        "duplicated": (duplicated, 12.0, "appears more than once"),
        "edited": (edited, 10.0, "test cell 'test_perplexity' was edited; the original was restored"),
        "metadata": (metadata, 12.0, "metadata of cell 'test_count_ngrams'"),
        # gaming the harness
        "patcher": (_extra(_body(S(), "add_k_probability", *buggy_add_k),
                           "import llmcourse.grading as g\ng.check = lambda *a, **k: None\ng._first_difference = lambda *a, **k: None",
                           after="add_k_probability"), 10.0, "the grader restored it"),
        "midpatch": (_first_line(_body(S(), "add_k_probability", *buggy_add_k), "add_k_probability",
                                 "import llmcourse.grading as g; g._first_difference = lambda *a, **k: None"), 10.0, "GraderTampering"),
        "reference": (_body(S(), "perplexity", "return float(np.exp(-log_probs.mean()))",
                            "import llmcourse.information as ref\n    return ref.perplexity(log_probs)"), 10.0, "reference implementation"),
        "untrace": (_body(S(), "perplexity", "return float(np.exp(-log_probs.mean()))",
                          "import sys, llmcourse.information as ref\n    sys.settrace(None)\n    return ref.perplexity(log_probs)"),
                    10.0, "sys.settrace"),
        # reading what is not theirs, and the network
        "snoop": (_extra(S(), f"print(open({course + '/solutions/ps1/ps1.ipynb'!r}).read())"), 12.0, "does not allow reading"),
        "peek": (_extra(S(), f"print(open({course + '/submitted/alice/ps1/ps1.ipynb'!r}).read())"), 12.0, "does not allow reading"),
        "frames": (_first_line(S(), "count_ngrams", "import sys; print(sys._getframe(1).f_code.co_consts)"), 10.0,
                   "inspecting the frames"),
        "network": (_extra(S(), "import socket\nsocket.create_connection(('127.0.0.1', 80), timeout=1)"), 12.0, "no network"),
    }


HONEST = ("alice", "carol")


def _write(root: Path, student: str, content: object) -> None:
    folder = root / "submitted" / student / NAME
    folder.mkdir(parents=True)
    filename = f"{NAME}.ipynb"
    if isinstance(content, tuple):
        filename, content = content
    if content is None:
        (folder / "notes.txt").write_text("I forgot to attach it")
        return
    (folder / filename).write_text(content if isinstance(content, str) else json.dumps(content, indent=1))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = assignments.copy_course(REPO_ROOT, tmp_path_factory.mktemp("course"))
    cases = corpus(root)
    for student, (content, _, _) in cases.items():
        _write(root, student, content)
    (root / "autograder.toml").write_text("")
    start = time.perf_counter()
    report = autograder.grade_assignment(root, NAME, jobs=2, limits=LIMITS, progress=False)
    seconds = time.perf_counter() - start
    alone = assignments.copy_course(REPO_ROOT, tmp_path_factory.mktemp("alone"))
    for student in HONEST:
        _write(alone, student, cases[student][0])
    autograder.grade_assignment(alone, NAME, jobs=1, limits=LIMITS, progress=False)
    return root, alone, cases, report, seconds


def _csv(root: Path) -> dict[str, dict]:
    with open(root / "grades.csv", newline="") as f:
        return {row["student_id"]: row for row in csv.DictReader(f) if row["assignment"] == NAME}


def test_every_case_gets_its_score_and_reason(graded):
    root, _, cases, report, _ = graded
    rows = _csv(root)
    assert set(rows) == set(cases)
    wrong = {}
    for student, (_, score, reason) in cases.items():
        row = rows[student]
        if student == "slow":  # killed by the whole-notebook limit: some tests never ran
            ok = float(row["score"]) < 12.0 and reason in row["reason"]
        else:
            ok = float(row["score"]) == score and reason in row["reason"]
        if not ok:
            wrong[student] = (row["score"], row["reason"][:300])
    print(json.dumps(wrong, indent=1))
    assert wrong == {}
    assert all(row["reason"].strip() for row in rows.values())
    assert set(report.failed) == {"notjson", "notnotebook", "oldformat", "empty", "missing"}


def test_feedback_for_everyone_with_the_reason_and_no_hidden_test(graded):
    root, _, cases, report, _ = graded
    source = autograder.nbformat.read(root / "solutions" / NAME / f"{NAME}.ipynb", as_version=4)
    secrets = autograder.hidden_secrets(source)
    hidden_lines = [s for s in secrets if not s.isdigit()]
    assert len(hidden_lines) > 10 and {"90210", "31337"} <= set(secrets)
    for student in cases:
        page = (root / "feedback" / student / NAME / f"{NAME}.html").read_text()
        text = autograder.html.unescape(page)
        assert report.results[student].reason[:60] in text, student
        assert [line for line in hidden_lines if line in text] == [], student
        assert not re.search(r"(?<!\d)(90210|31337|4242|2718)(?!\d)", page), student
        assert "BEGIN HIDDEN TESTS" not in text


def test_honest_students_score_as_when_graded_alone(graded):
    root, alone, _, _, _ = graded

    def cells(course: Path, student: str) -> dict[str, float]:
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            return {g.name: g.auto_score for g in gb.find_submission_notebook(NAME, NAME, student).grades}

    for student in HONEST:
        assert cells(root, student) == cells(alone, student)
    assert cells(root, "carol")["test_add_k_probability"] == 0.0
    assert cells(root, "alice")["test_add_k_probability"] == 2.0


def test_gradebook_intact_and_nbgrader_export_agrees(graded):
    root, _, cases, _, _ = graded
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        assignment = gb.find_assignment(NAME)
        assert assignment.max_score == 15.0
        assert {s.student.id for s in assignment.submissions} == set(cases)
        # the edited metadata did not change the points on record
        assert gb.find_grade_cell("test_count_ngrams", NAME, NAME).max_score == 2.0
    out = root / "nbgrader_export.csv"
    subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "export", "--to", str(out)],
                   cwd=root, env=tool_env(), check=True, capture_output=True)
    with open(out, newline="") as f:
        theirs = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    assert theirs == {s: float(r["score"]) for s, r in _csv(root).items()}


def test_nothing_escapes_and_the_run_is_bounded(graded):
    _, _, cases, _, seconds = graded
    leftover = subprocess.run(["pgrep", "-f", f"sleep {SLEEP_MARK}"], capture_output=True, text=True).stdout.split()
    assert leftover == []
    assert seconds < 10 * len(cases)


def test_rerun_only_regrades_changed_submissions(graded):
    root, _, cases, _, _ = graded
    solution = json.loads((root / "submitted" / "alice" / NAME / f"{NAME}.ipynb").read_text())
    (root / "submitted" / "empty" / NAME / f"{NAME}.ipynb").write_text(json.dumps(solution))
    report = autograder.grade_assignment(root, NAME, jobs=2, limits=LIMITS, progress=False,
                                         students=["alice", "carol", "empty"])
    assert [s for s, r in report.results.items() if not r.skipped] == ["empty"]
    assert report.results["empty"].score == 12.0 and report.results["alice"].score == 12.0


def test_limits_file_and_bad_input(tmp_path):
    (tmp_path / "grading.toml").write_text("[limits]\ncell_timeout = 5\nmemory_mb = 300\n")
    limits = autograder.GradingLimits.from_file(tmp_path / "grading.toml")
    assert (limits.cell_timeout, limits.memory_mb, limits.max_processes) == (5, 300, 32)
    (tmp_path / "bad.toml").write_text("[limits]\ncpu_seconds = 5\n")
    with pytest.raises(ValueError, match="unknown grading limit"):
        autograder.GradingLimits.from_file(tmp_path / "bad.toml")
    with pytest.raises(ValueError, match="must be a positive number"):
        autograder.GradingLimits(cell_timeout=0)
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        autograder.Grader(LIMITS, 0, [], [], tmp_path)


def test_redaction_and_hidden_stripping():
    text = "a\n### BEGIN HIDDEN TESTS\ncheck(f, seed=90210)\n### END HIDDEN TESTS\nb"
    assert autograder.strip_hidden(text) == "a\nb"
    assert autograder.redact("seed 90210 and 190210", ["90210"]) == "seed [hidden] and 190210"


@pytest.fixture
def postgres(tmp_path):
    """A throwaway PostgreSQL server on a unix socket in tmp_path (no TCP), or a skip saying why not."""
    pytest.importorskip("psycopg2", reason="the PostgreSQL driver psycopg2 is not installed (pip install psycopg2-binary)")
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's initdb/pg_ctl are not on PATH: cannot start a server to test db_url against")
    tmp_path = Path(tempfile.mkdtemp(prefix="llmcourse-pg-"))  # pytest's tmp folders are private to root
    os.chmod(tmp_path, 0o755)
    data, sock = tmp_path / "pgdata", tmp_path / "sock"
    sock.mkdir()

    def as_postgres_user():  # PostgreSQL refuses to run as root
        if os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)

    if os.geteuid() == 0:
        for path in (tmp_path, sock):
            os.chown(path, 65534, 65534)
    run = dict(capture_output=True, text=True, preexec_fn=as_postgres_user, cwd=tmp_path)
    made = subprocess.run([initdb, "-D", str(data), "-U", "grader", "--auth=trust"], **run)
    if made.returncode != 0:
        pytest.skip(f"initdb could not create a cluster here: {made.stderr.strip()[-200:]}")
    started = subprocess.run([pg_ctl, "-D", str(data), "-w", "-l", str(tmp_path / "pg.log"), "-o",
                              f"-k {sock} -c listen_addresses=''", "start"], **run)
    if started.returncode != 0:
        pytest.skip(f"PostgreSQL could not start here: {(tmp_path / 'pg.log').read_text()[-300:]}")
    try:
        yield f"postgresql+psycopg2://grader@/postgres?host={sock}"
    finally:
        subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], **run)
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_gradebook_on_postgresql(postgres, tmp_path):
    root = assignments.copy_course(REPO_ROOT, tmp_path / "course")
    _write(root, "alice", _solution())
    _write(root, "erin", "{ not json")
    report = autograder.grade_assignment(root, NAME, jobs=2, limits=LIMITS, progress=False, db_url=postgres)
    assert {s: r.score for s, r in report.results.items()} == {"alice": 12.0, "erin": 0.0}
    assert not (root / "gradebook.db").exists()
    with Gradebook(postgres) as gb:
        assert gb.find_submission(NAME, "alice").score == 12.0
        assert gb.find_grade("test_perplexity", NAME, NAME, "alice").auto_score == 2.0
    assert float(_csv(root)["alice"]["score"]) == 12.0
