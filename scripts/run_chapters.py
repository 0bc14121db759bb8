"""Re-execute chapters in place and store their outputs tidily (what a chapter author runs after an edit).

    python scripts/run_chapters.py                     # every chapter in _toc.yml
    python scripts/run_chapters.py book/part1/ngram_models.ipynb

Runs each notebook top to bottom in a fresh kernel from its own folder, then drops the
per-cell execution timestamps and the interpreter version and merges each cell's
consecutive print outputs, so that a re-run changes the
file only where an output really changed. nbval (in `make test`) then checks the stored
outputs are reproducible.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient
from nbconvert.preprocessors import CoalesceStreamsPreprocessor

ROOT = Path(__file__).resolve().parent.parent
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def toc_chapters() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [entry["file"] for part in toc.get("parts", []) for entry in part.get("chapters", [])]
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").is_file()]


def run(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(path.parent)}}).execute()
    # A cell's prints arrive as several stream messages, split wherever the kernel happened
    # to flush; merging them makes the stored output (and the rendered page) one block.
    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            output.get("metadata", {}).pop("execution", None)
    language = {k: v for k, v in nb.metadata.get("language_info", {"name": "python"}).items() if k != "version"}
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": language}
    nbformat.validate(nb)
    path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    paths = [Path(a).resolve() for a in argv] or toc_chapters()
    for path in paths:
        if path.suffix != ".ipynb" or not path.is_file():
            print(f"run_chapters: not a notebook: {path}", file=sys.stderr)
            return 2
        run(path)
        print(f"executed {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
