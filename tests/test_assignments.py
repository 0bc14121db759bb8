"""The assignment pipeline, run for real through nbgrader, the same way for every assignment.

Each assignment has a :class:`Spec` (its points, one deliberate bug, one call of the reference,
its hidden seeds and the scores they must give). For each, a class of five is graded once:

* alice hands in the solution: full autograded marks;
* bob hands in the release untouched: 0, without crashing the grader;
* carol's notebook has one bug: she loses exactly that exercise's points;
* dave calls the reference implementation in one exercise: he loses exactly its points;
* erin's file is not a notebook: it is reported, and nobody else is disturbed.

Besides: assignments/ is exactly what nbgrader generates from solutions/ (no drift) and holds no
solution code and no hidden test, and feedback never shows hidden tests or hidden seeds.
A new assignment needs one more entry in SPECS (a test fails until it has one).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from conftest import REPO_ROOT, tool_env
from llmcourse import assignments

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Spec:
    """What the pipeline tests expect of one assignment.

    ``buggy`` and ``cheat`` are plain source text (not JSON) that must occur exactly once in the
    solution notebook, inside a solution cell; each hidden seed must appear in the hidden tests as
    ``seed=N`` or ``default_rng(N)`` (pick distinctive numbers: the feedback pages are searched for them).
    """

    name: str
    autograded_points: float
    max_points: float  # autograded + graded by hand
    buggy: tuple[str, str]  # (text of the solution, its replacement): one wrong exercise
    buggy_loses: str  # grade_id of the test cell that must then score 0, and only it
    buggy_feedback: str  # what the buggy student's feedback must tell them
    cheat: tuple[str, str]  # (text of the solution, its replacement): one exercise calls the reference
    cheat_loses: str
    hidden_seeds: tuple[str, ...]  # seeds of hidden tests: they must never reach a student
    scores: Mapping[str, float]  # the expected total per student (see STUDENTS)


SPECS = [
    Spec(
        name="ps1",
        autograded_points=12.0,
        max_points=15.0,
        buggy=("(total + k * vocab_size)", "(total + vocab_size)"),
        buggy_loses="test_add_k_probability",
        buggy_feedback="add_k_probability gives a wrong answer",
        cheat=(
            "return float(np.exp(-log_probs.mean()))",
            "import llmcourse.information as ref\n    return ref.perplexity(log_probs)",
        ),
        cheat_loses="test_perplexity",
        hidden_seeds=("90210", "31337"),
        scores={"alice": 12.0, "bob": 0.0, "carol": 10.0, "dave": 10.0, "erin": 0.0},
    ),
    Spec(
        name="ps2",
        autograded_points=12.0,
        max_points=15.0,
        # natural log instead of log10 in the idf: wrong weights, right shape
        buggy=("idf = np.log10(n_documents / document_frequency)", "idf = np.log(n_documents / document_frequency)"),
        buggy_loses="test_tf_idf",
        buggy_feedback="tf_idf gives a wrong answer",
        cheat=(
            "return float(a @ b / norms)",
            "import llmcourse.vectors as ref\n    return ref.cosine_similarity(a, b)",
        ),
        cheat_loses="test_cosine_similarity",
        hidden_seeds=("86420", "97531", "60221", "66743", "29979", "16180", "14142"),
        scores={"alice": 12.0, "bob": 0.0, "carol": 10.0, "dave": 10.0, "erin": 0.0},
    ),
    Spec(
        name="ps3",
        autograded_points=12.0,
        max_points=15.0,
        # BPTT without tanh's derivative: right shapes, wrong gradients (the forward pass is untouched)
        buggy=("da = dh * (1.0 - hidden[t] ** 2)", "da = dh"),
        buggy_loses="test_rnn_loss_and_gradients",
        buggy_feedback="rnn_loss_and_gradients gives a wrong answer",
        cheat=(
            "return clipped, norm",
            "import llmcourse.rnn as ref\n    return ref.clip_gradient_norm(grads, max_norm)",
        ),
        cheat_loses="test_clip_gradient_norm",
        hidden_seeds=("860521", "731904", "582037", "649183", "907316", "275849", "318462", "194657", "503218"),
        scores={"alice": 12.0, "bob": 0.0, "carol": 10.0, "dave": 10.0, "erin": 0.0},
    ),
    Spec(
        name="ps4",
        autograded_points=12.0,
        max_points=15.0,
        # softmax without subtracting the maximum: right on ordinary scores, nan on x + 1000 (hidden tests only)
        buggy=("exponentials = np.exp(x - top)", "exponentials = np.exp(x)"),
        buggy_loses="test_softmax",
        buggy_feedback="softmax gives a wrong answer",
        cheat=(
            "return gamma * (x - mean) / np.sqrt(variance + eps) + beta",
            "import llmcourse.transformer as ref\n    return ref.layer_norm(x, gamma, beta, eps)",
        ),
        cheat_loses="test_layer_norm",
        hidden_seeds=("417293", "528164", "639075", "740186", "851297", "962308", "173084"),
        scores={"alice": 12.0, "bob": 0.0, "carol": 10.0, "dave": 10.0, "erin": 0.0},
    ),
    Spec(
        name="ps5",
        autograded_points=12.0,
        max_points=15.0,
        # the nucleus keeps tokens until the mass exceeds p, not until it reaches p: right unless a
        # running total equals p exactly (hidden cases with powers of 2 only)
        buggy=("np.cumsum(probs[order]) >= p", "np.cumsum(probs[order]) > p"),
        buggy_loses="test_top_k_top_p",
        buggy_feedback="top_p_filter gives a wrong answer",
        cheat=(
            "return int(rng.choice(q.size, p=q))",
            "import llmcourse.decoding as ref\n    return ref.sample(probs, rng, temperature, top_k, top_p)",
        ),
        cheat_loses="test_sample",
        hidden_seeds=("584213", "692417", "703528", "715302", "826413", "937524", "148635", "259746", "360857",
                      "471968", "582960", "693071"),
        scores={"alice": 12.0, "bob": 0.0, "carol": 10.0, "dave": 10.0, "erin": 0.0},
    ),
]

# Who hands in what (the same class for every assignment).
STUDENTS = {"alice": "solution", "bob": "release", "carol": "buggy", "dave": "cheat", "erin": "corrupt"}
NAMES = assignments.assignment_names(REPO_ROOT)


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _sources(path: Path) -> list[str]:
    return ["".join(cell["source"]) for cell in _cells(path)]


def _marked_lines(path: Path, marker: str) -> list[str]:
    """Lines between ``### BEGIN <marker>`` and ``### END <marker>`` that appear nowhere else in the notebook.

    Only lines longer than 25 characters count (short ones, such as ``return counts``, may well
    appear in a visible part too); a line repeated outside the markers is not secret.
    """
    inside_lines, outside_lines, inside = [], set(), False
    for source in _sources(path):
        for line in source.splitlines():
            if f"BEGIN {marker}" in line:
                inside = True
            elif f"END {marker}" in line:
                inside = False
            elif inside:
                inside_lines.append(line.strip())
            else:
                outside_lines.add(line.strip())
    return [line for line in inside_lines if len(line) > 25 and line not in outside_lines]


def _replace_once(notebook_text: str, old: str, new: str) -> str:
    """The notebook with ``old`` replaced by ``new`` in its one cell that contains it (exactly once)."""
    notebook = json.loads(notebook_text)
    hits = [cell for cell in notebook["cells"] if old in "".join(cell["source"])]
    assert len(hits) == 1 and "".join(hits[0]["source"]).count(old) == 1, f"{old!r} must occur exactly once"
    assert hits[0]["metadata"]["nbgrader"].get("solution"), f"{old!r} must be in a solution cell (students edit only those)"
    hits[0]["source"] = "".join(hits[0]["source"]).replace(old, new)
    return json.dumps(notebook, indent=1)


def _page_text(page: str) -> str:
    """The text a student reads in an HTML page: tags removed, entities decoded (code spans rejoined)."""
    page = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_spec_matches_the_source(spec):
    """The spec's bug, cheat and seeds refer to what is really in the solution (so they cannot go stale)."""
    source = REPO_ROOT / "solutions" / spec.name / f"{spec.name}.ipynb"
    text = source.read_text()
    for old, new in (spec.buggy, spec.cheat):
        assert _replace_once(text, old, new) != text
    hidden = "\n".join(_marked_lines(source, "HIDDEN TESTS"))
    for seed in spec.hidden_seeds:
        assert re.search(rf"seed={seed}\b|default_rng\({seed}\)", hidden), f"seed {seed} is not a hidden-test seed"
    assert set(spec.scores) == set(STUDENTS)


def test_every_assignment_has_a_release():
    assert NAMES == [spec.name for spec in SPECS], "every assignment in solutions/ needs a Spec here, in order"
    for name in NAMES:
        assert (REPO_ROOT / "assignments" / name / f"{name}.ipynb").is_file()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_release_holds_no_solution_and_no_hidden_test(spec):
    name = spec.name
    source = REPO_ROOT / "solutions" / name / f"{name}.ipynb"
    release = REPO_ROOT / "assignments" / name / f"{name}.ipynb"
    text = "\n".join(_sources(release))
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    solutions, hidden = _marked_lines(source, "SOLUTION"), _marked_lines(source, "HIDDEN TESTS")
    assert len(solutions) > 10 and len(hidden) > 10
    leaked = [line for line in solutions + hidden if line in text]
    assert leaked == []
    assert not any(seed in text for seed in spec.hidden_seeds)
    for cell in _cells(release):
        assert cell.get("outputs", []) == []
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("solution") and cell["cell_type"] == "code":
            assert "raise NotImplementedError()" in "".join(cell["source"])
        if meta.get("solution") and cell["cell_type"] == "markdown":
            assert "".join(cell["source"]).strip() == "YOUR ANSWER HERE"


@dataclass(frozen=True)
class Graded:
    """A course folder in which one assignment was graded for the class of STUDENTS."""

    spec: Spec
    root: Path

    @property
    def name(self) -> str:
        return self.spec.name

    def feedback(self, student: str) -> str:
        return (self.root / "feedback" / student / self.name / f"{self.name}.html").read_text()


@pytest.fixture(scope="module", params=SPECS, ids=lambda s: s.name)
def graded(request, tmp_path_factory) -> Graded:
    """A copy of the course, the assignment regenerated, a class of five submissions graded once by `llmcourse grade`."""
    spec: Spec = request.param
    name = spec.name
    root = assignments.copy_course(REPO_ROOT, tmp_path_factory.mktemp(f"course_{name}"))
    shutil.rmtree(root / "assignments" / name)
    subprocess.run([sys.executable, "-m", "llmcourse.cli", "assignments", name], cwd=root, env=tool_env(), check=True)

    solution = (root / "solutions" / name / f"{name}.ipynb").read_text()
    notebooks = {
        "solution": solution,
        "release": (root / "assignments" / name / f"{name}.ipynb").read_text(),
        "buggy": _replace_once(solution, *spec.buggy),
        "cheat": _replace_once(solution, *spec.cheat),
        "corrupt": "{ this is not json",
    }
    for student, role in STUDENTS.items():
        folder = root / "submitted" / student / name
        folder.mkdir(parents=True)
        (folder / f"{name}.ipynb").write_text(notebooks[role])
    result = subprocess.run(
        [sys.executable, "-m", "llmcourse.cli", "grade", name], cwd=root, env=tool_env(), capture_output=True, text=True
    )
    (root / "grade.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 1, result.stdout + result.stderr  # erin's notebook cannot be graded
    return Graded(spec, root)


def test_no_drift_between_solutions_and_assignments(graded):
    """Regenerating from solutions/ gives exactly the committed assignments/."""
    name = graded.name
    generated = (graded.root / "assignments" / name / f"{name}.ipynb").read_text()
    committed = (REPO_ROOT / "assignments" / name / f"{name}.ipynb").read_text()
    assert generated == committed, f"assignments/{name} is stale: run `make assignments` and commit the result"


def test_grades(graded):
    grades = assignments.read_grades(graded.root / "grades.csv")
    rows = {student: row for (a, student), row in grades.items() if a == graded.name}
    assert {student: float(row["score"]) for student, row in rows.items()} == dict(graded.spec.scores)
    assert {float(row["max_score"]) for row in rows.values()} == {graded.spec.max_points}


def test_each_grade_cell_scores_as_expected(graded):
    """Cell by cell in the gradebook: the solution gets every autograded point, the release none,
    and the bug and the cheat lose exactly their own test cell's points."""
    spec, name = graded.spec, graded.name
    lost = {"solution": None, "release": "every test", "buggy": spec.buggy_loses, "cheat": spec.cheat_loses}
    with Gradebook(f"sqlite:///{graded.root / 'gradebook.db'}") as gb:
        for student, role in STUDENTS.items():
            if role == "corrupt":
                continue
            grades = gb.find_submission_notebook(name, name, student).grades
            # Autograded cells are the code test cells (an unchanged written answer also gets an automatic 0).
            autograded = [g for g in grades if g.cell.cell_type == "code"]
            assert sum(g.max_score for g in autograded) == spec.autograded_points
            names = {g.name for g in autograded}
            assert lost[role] in names | {None, "every test"}, f"{lost[role]} is not a grade cell of {name}"
            for grade in autograded:
                expected = 0.0 if lost[role] in (grade.name, "every test") else grade.max_score
                assert grade.auto_score == expected, (student, role, grade.name)


def test_unreadable_submission_is_reported_and_isolated(graded):
    log = (graded.root / "grade.log").read_text()
    assert re.search(r"FAILED erin: .+", log)
    assert "graded 4 of 5 submissions" in log
    # erin still gets a feedback page that tells her why (issue 7: a score and a reason for everyone)
    assert "not valid JSON" in (graded.root / "feedback" / "erin" / graded.name / f"{graded.name}.html").read_text()


def test_feedback_never_shows_hidden_tests(graded):
    source = graded.root / "solutions" / graded.name / f"{graded.name}.ipynb"
    hidden = _marked_lines(source, "HIDDEN TESTS")
    assert hidden
    for student, role in STUDENTS.items():
        if role == "corrupt":
            continue
        page = graded.feedback(student)
        text = _page_text(page)
        assert "BEGIN HIDDEN TESTS" not in text
        assert [line for line in hidden if line in text] == []
        assert [seed for seed in graded.spec.hidden_seeds if seed in page] == []
        assert "hidden tests were run here" in text
    # The buggy and the cheating student are told which exercise failed and why, without the test code.
    assert graded.spec.buggy_feedback in _page_text(graded.feedback("carol"))
    assert "part of the course's reference implementation" in _page_text(graded.feedback("dave"))


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
