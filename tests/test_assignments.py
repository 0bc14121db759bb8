"""The assignment pipeline, run for real through nbgrader.

* assignments/ is exactly what nbgrader generates from solutions/ (no drift), and holds
  no solution code and no hidden test;
* grading a class: the solution scores full marks, the notebook as handed out scores 0,
  a notebook with one bug loses exactly that exercise's points, a notebook that calls the
  reference loses that exercise's points, and a corrupt notebook is reported without
  disturbing anyone else;
* feedback never shows hidden tests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from conftest import REPO_ROOT, tool_env
from llmcourse import assignments

pytestmark = pytest.mark.slow

NAMES = assignments.assignment_names(REPO_ROOT)
AUTOGRADED_POINTS = {"ps1": 12.0}
MAX_POINTS = {"ps1": 15.0}  # 12 autograded + 3 graded by hand


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _solution_lines(path: Path) -> list[str]:
    """Non-trivial lines between BEGIN/END SOLUTION and BEGIN/END HIDDEN TESTS in a source notebook."""
    lines, inside = [], False
    for cell in _cells(path):
        for line in "".join(cell["source"]).splitlines():
            if "BEGIN SOLUTION" in line or "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END SOLUTION" in line or "END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) > 25:
                lines.append(line.strip())
    return lines


def test_every_assignment_has_a_release():
    assert NAMES == ["ps1"]
    for name in NAMES:
        assert (REPO_ROOT / "assignments" / name / f"{name}.ipynb").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_release_holds_no_solution_and_no_hidden_test(name):
    source = REPO_ROOT / "solutions" / name / f"{name}.ipynb"
    release = REPO_ROOT / "assignments" / name / f"{name}.ipynb"
    text = release.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    secret = _solution_lines(source)
    assert len(secret) > 20
    leaked = [line for line in secret if line in text]
    assert leaked == []
    for cell in _cells(release):
        assert cell.get("outputs", []) == []
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("solution") and cell["cell_type"] == "code":
            assert "raise NotImplementedError()" in "".join(cell["source"])
        if meta.get("solution") and cell["cell_type"] == "markdown":
            assert "".join(cell["source"]).strip() == "YOUR ANSWER HERE"


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A copy of the course with a class of five submissions, graded once by `llmcourse grade`."""
    root = assignments.copy_course(REPO_ROOT, tmp_path_factory.mktemp("course"))
    shutil.rmtree(root / "assignments")
    subprocess.run([sys.executable, "-m", "llmcourse.cli", "assignments"], cwd=root, env=tool_env(), check=True)

    solution = (root / "solutions/ps1/ps1.ipynb").read_text()
    release = (root / "assignments/ps1/ps1.ipynb").read_text()
    buggy = solution.replace("(total + k * vocab_size)", "(total + vocab_size)")
    assert buggy != solution
    cheat = solution.replace(
        'return float(np.exp(-log_probs.mean()))', 'import llmcourse.information as ref\\n    return ref.perplexity(log_probs)'
    )
    assert cheat != solution
    submissions = {"alice": solution, "bob": release, "carol": buggy, "dave": cheat, "erin": "{ this is not json"}
    for student, text in submissions.items():
        folder = root / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        (folder / "ps1.ipynb").write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "llmcourse.cli", "grade", "ps1"], cwd=root, env=tool_env(), capture_output=True, text=True
    )
    (root / "grade.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 1, result.stdout + result.stderr  # erin's notebook cannot be graded
    return root


def test_no_drift_between_solutions_and_assignments(course):
    """Regenerating from solutions/ gives exactly the committed assignments/."""
    for name in NAMES:
        generated = (course / "assignments" / name / f"{name}.ipynb").read_text()
        committed = (REPO_ROOT / "assignments" / name / f"{name}.ipynb").read_text()
        assert generated == committed, f"assignments/{name} is stale: run `make assignments` and commit the result"


def test_grades(course):
    grades = assignments.read_grades(course / "grades.csv")
    score = {student: float(row["score"]) for (a, student), row in grades.items() if a == "ps1"}
    assert score == {"alice": 12.0, "bob": 0.0, "carol": 10.0, "dave": 10.0, "erin": 0.0}
    assert {float(row["max_score"]) for row in grades.values()} == {MAX_POINTS["ps1"]}


def test_a_bug_loses_exactly_its_exercise(course):
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student, lost in [("carol", "test_add_k_probability"), ("dave", "test_perplexity")]:
            submission = gb.find_submission_notebook("ps1", "ps1", student)
            for grade in submission.grades:
                if grade.auto_score is None:  # the hand-graded answer
                    continue
                expected = 0.0 if grade.name == lost else grade.max_score
                assert grade.auto_score == expected, (student, grade.name)


def test_unreadable_submission_is_reported_and_isolated(course):
    log = (course / "grade.log").read_text()
    assert re.search(r"FAILED erin: .+", log)
    assert "graded 4 of 5 submissions" in log
    assert not (course / "feedback" / "erin").exists()


def test_feedback_never_shows_hidden_tests(course):
    source = course / "solutions/ps1/ps1.ipynb"
    hidden = [line for line in _solution_lines(source) if "check(" in line or "seed=" in line]
    assert hidden
    for student in ("alice", "bob", "carol", "dave"):
        html = (course / "feedback" / student / "ps1" / "ps1.html").read_text()
        assert "BEGIN HIDDEN TESTS" not in html
        assert "90210" not in html and "31337" not in html  # hidden seeds
        assert "hidden tests were run here" in html
    # Carol's feedback tells her which exercise failed and why, without the test code.
    carol = (course / "feedback" / "carol" / "ps1" / "ps1.html").read_text()
    assert "add_k_probability gives a wrong answer" in carol


@pytest.mark.parametrize(
    "args, message",
    [
        (["grade", "ps9"], "no assignment named 'ps9'"),
        (["grade", "ps1"], "no submissions found"),
        (["assignments", "homework"], "no assignment named 'homework'"),
    ],
)
def test_cli_bad_input(tmp_path, args, message):
    root = assignments.copy_course(REPO_ROOT, tmp_path / "course")
    result = subprocess.run([sys.executable, "-m", "llmcourse.cli", *args], cwd=root, env=tool_env(), capture_output=True, text=True)
    assert result.returncode == 2
    assert message in result.stderr


def test_cli_outside_a_course(tmp_path):
    result = subprocess.run([sys.executable, "-m", "llmcourse.cli", "grade", "ps1"], cwd=tmp_path, env=tool_env(), capture_output=True, text=True)
    assert result.returncode == 2
    assert "no course folder found" in result.stderr
