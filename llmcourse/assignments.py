"""The instructor's workflow on top of nbgrader: generate student versions, autograde, feedback, export.

Each step is one nbgrader command run in the course folder (the repository root,
where ``nbgrader_config.py`` lives), so the gradebook, cell checksums and folder
layout are nbgrader's own and an instructor's nbgrader knowledge applies::

    solutions/psN/psN.ipynb          source (solutions, hidden tests)   -- edited by hand
    assignments/psN/psN.ipynb        release, generated                 -- `llmcourse assignments`
    submitted/<student>/psN/*.ipynb  collected submissions              -- from students
    autograded/, feedback/, grades.csv                                  -- `llmcourse grade psN`

Book section: the README's instructor guide.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nbgrader.preprocessors import NbGraderPreprocessor

from llmcourse.autograder import strip_hidden

SOURCE_DIR = "solutions"
RELEASE_DIR = "assignments"
SUBMITTED_DIR = "submitted"
GRADES_FILE = "grades.csv"

_ASSIGNMENT_NAME = re.compile(r"^ps\d+$")


def nbgrader_settings() -> dict[str, dict[str, object]]:
    """The course's nbgrader settings, section by section (used by ``nbgrader_config.py``)."""
    return {
        "CourseDirectory": {
            "source_directory": SOURCE_DIR,
            "release_directory": RELEASE_DIR,
            "submitted_directory": SUBMITTED_DIR,
            "autograded_directory": "autograded",
            "feedback_directory": "feedback",
        },
        # A test cell that runs longer than this is killed and scores 0.
        "ExecutePreprocessor": {"timeout": 120},
        "Execute": {"timeout": 120},
        "ClearSolutions": {
            "code_stub": {"python": "# YOUR CODE HERE\nraise NotImplementedError()"},
            "text_stub": "YOUR ANSWER HERE",
        },
    }


class HideHiddenTests(NbGraderPreprocessor):
    """Feedback preprocessor: remove hidden-test source, and shorten the errors of hidden-test cells.

    nbgrader's own ``ClearHiddenTests`` removes the hidden lines from the cell, but
    a failed hidden test still prints a traceback that quotes them. Here such a
    cell keeps only the error's last line (the harness writes it for students:
    which input failed and how), never the test code. (Subclassing nbgrader's base
    makes it enabled by default; a plain nbconvert Preprocessor would be skipped.)
    """

    begin = "BEGIN HIDDEN TESTS"

    def preprocess_cell(self, cell, resources, index):  # noqa: ANN001 - nbconvert's signature
        if cell.cell_type != "code" or self.begin not in cell.source:
            return cell, resources
        cell.source = strip_hidden(cell.source) + "\n# (hidden tests were run here; they are not shown)"
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources


FEEDBACK_PREPROCESSORS = [
    "nbgrader.preprocessors.GetGrades",
    "llmcourse.assignments.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]


# ------------------------------------------------------------------------------------------- running nbgrader
def find_course_root(start: Path | None = None) -> Path:
    """The folder holding ``nbgrader_config.py`` and ``solutions/``: ``start`` or one of its parents."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / SOURCE_DIR).is_dir():
            return folder
    raise ValueError(
        f"no course folder found at or above {here}: it must contain nbgrader_config.py and {SOURCE_DIR}/. "
        "Run the command from the repository root, or pass --root."
    )


def _environment() -> dict[str, str]:
    """nbgrader shells out to `alembic` and starts kernels: put this Python's bin/ first on PATH."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def run_nbgrader(args: list[str], root: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``nbgrader <args>`` in the course folder; on failure raise with the end of its log."""
    exe = Path(sys.executable).parent / "nbgrader"
    command = [str(exe) if exe.exists() else "nbgrader", *args]
    result = subprocess.run(command, cwd=root, env=_environment(), capture_output=True, text=True)
    if check and result.returncode != 0:
        log = (result.stdout + result.stderr).strip().splitlines()
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed (exit {result.returncode}):\n" + "\n".join(log[-30:]))
    return result


def assignment_names(root: Path) -> list[str]:
    """Every assignment in ``solutions/`` (folders named ps1, ps2, ...), in order."""
    names = [p.name for p in (root / SOURCE_DIR).iterdir() if p.is_dir() and _ASSIGNMENT_NAME.match(p.name)]
    return sorted(names, key=lambda n: int(n[2:]))


def _check_assignment(root: Path, name: str) -> None:
    if not _ASSIGNMENT_NAME.match(name) or not (root / SOURCE_DIR / name).is_dir():
        known = ", ".join(assignment_names(root)) or "none"
        raise ValueError(f"no assignment named {name!r} in {root / SOURCE_DIR}; known assignments: {known}")


def generate_assignments(root: Path, names: list[str] | None = None) -> list[Path]:
    """Regenerate ``assignments/psN`` from ``solutions/psN`` with nbgrader (solutions and hidden tests removed)."""
    names = names or assignment_names(root)
    released = []
    for name in names:
        _check_assignment(root, name)
        run_nbgrader(["generate_assignment", name, "--force"], root)
        released.append(root / RELEASE_DIR / name)
    return released


@dataclass
class GradeReport:
    """What one grading run did."""

    assignment: str
    students: list[str]
    failed: dict[str, str]  # student -> why autograding failed
    grades_csv: Path
    seconds: float

    def summary(self) -> str:
        ok = len(self.students) - len(self.failed)
        lines = [f"{self.assignment}: graded {ok} of {len(self.students)} submissions in {self.seconds:.1f} s; grades in {self.grades_csv}"]
        lines += [f"  FAILED {student}: {why}" for student, why in sorted(self.failed.items())]
        return "\n".join(lines)


def submitted_students(root: Path, assignment: str) -> list[str]:
    """Students with a submission folder ``submitted/<student>/<assignment>/``."""
    base = root / SUBMITTED_DIR
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / assignment).is_dir())


def grade(root: Path, assignment: str, output: Path | None = None, **options):  # noqa: ANN201
    """Autograde every submission of ``assignment``, write feedback, and export the grades to CSV.

    The work is done by :func:`llmcourse.autograder.grade_assignment` (sandboxed, parallel,
    a score and a reason for every student); ``options`` are its keyword arguments.
    """
    from llmcourse.autograder import grade_assignment

    return grade_assignment(root, assignment, output=output, **options)


def grade_with_nbgrader(root: Path, assignment: str, output: Path | None = None) -> GradeReport:
    """Plain nbgrader: ``autograde``, ``generate_feedback`` and ``export`` for the whole class.

    Kept for comparison (the grading benchmark times it); a submission nbgrader cannot grade
    does not stop the others and is listed in the report with nbgrader's reason.
    """
    _check_assignment(root, assignment)
    if not (root / RELEASE_DIR / assignment).is_dir():
        raise ValueError(f"{assignment} has not been released: run `llmcourse assignments {assignment}` first")
    students = submitted_students(root, assignment)
    if not students:
        raise ValueError(
            f"no submissions found: expected notebooks in {root / SUBMITTED_DIR}/<student>/{assignment}/ "
            "(nbgrader's collect/zip_collect puts them there)"
        )
    start = time.perf_counter()
    if not _gradebook_knows(root, assignment):
        # Autograde needs the assignment's notebooks and grade cells in the gradebook, and only
        # generate_assignment records them; the release it writes is the same as the committed one.
        run_nbgrader(["generate_assignment", assignment, "--force"], root)
    # One nbgrader call for the whole class (its start-up costs seconds). nbgrader carries on past a
    # submission it cannot grade and removes that student's autograded folder, which is how we find it.
    result = run_nbgrader(["autograde", assignment, "--force"], root, check=False)
    failed = {
        student: _student_error(result.stdout + result.stderr, student)
        for student in students
        if not (root / "autograded" / student / assignment).is_dir()
    }
    run_nbgrader(["generate_feedback", assignment, "--force"], root, check=False)
    output = output or root / GRADES_FILE
    run_nbgrader(["export", "--to", str(output)], root)
    return GradeReport(assignment, students, failed, output, time.perf_counter() - start)


def _gradebook_knows(root: Path, assignment: str, db_url: str | None = None) -> bool:
    """Whether the gradebook (``gradebook.db``, or ``db_url``) has the assignment with its notebooks."""
    from nbgrader.api import Gradebook, MissingEntry

    if db_url is None:
        if not (root / "gradebook.db").exists():
            return False
        db_url = f"sqlite:///{root / 'gradebook.db'}"
    with Gradebook(db_url) as gradebook:
        try:
            return len(gradebook.find_assignment(assignment).notebooks) > 0
        except MissingEntry:
            return False


def _student_error(log: str, student: str) -> str:
    """The first error nbgrader logged while grading ``student`` (later ones only point back to it)."""
    block, errors = "", []
    for line in log.splitlines():
        if "[AutogradeApp | INFO] Creating/updating student with ID" in line:
            block = line.split("ID '", 1)[-1].split("'", 1)[0]
        elif "[ERROR]" in line or "| ERROR]" in line:
            if block == student:
                errors.append(line.split("]", 1)[-1].strip())
    return errors[0][:300] if errors else "nbgrader could not grade this submission (see its log)"


def read_grades(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    """The exported CSV as {(assignment, student): row}."""
    with open(path, newline="") as f:
        return {(row["assignment"], row["student_id"]): row for row in csv.DictReader(f)}


def copy_course(root: Path, dest: Path) -> Path:
    """Copy what grading needs (config, solutions, assignments) into a fresh course folder ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "nbgrader_config.py", dest / "nbgrader_config.py")
    for folder in (SOURCE_DIR, RELEASE_DIR):
        if (root / folder).is_dir():
            shutil.copytree(root / folder, dest / folder, dirs_exist_ok=True)
    return dest
