"""The book builds strictly and its pages load nothing from the web.

Builds the whole Jupyter Book (as `make book` does, but with -W -n into a temporary
folder) once per module, then inspects every built page:

* no <script src>, resource <link href>, <img src>, ... and no CSS url(...) points to
  http(s):// or a protocol-relative // URL;
* every local script, stylesheet, image and CSS url(...) exists in the build output;
* pages with mathematics contain MathJax markup and load the vendored MathJax
  (one script tag, the file from book/_vendor/mathjax, with its fonts);
* every page listed in _toc.yml is built, and the bibliography lists every entry.
"""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from conftest import REPO_ROOT, tool_env, venv_bin

pytestmark = pytest.mark.slow

VENDORED_MATHJAX = REPO_ROOT / "book" / "_vendor" / "mathjax"
MATHJAX_SCRIPT = "tex-chtml.js"
BUILD_TIMEOUT_S = 600

# <link rel=...> values that make the browser fetch something (as opposed to navigation links).
LOADING_RELS = {
    "stylesheet", "preload", "modulepreload", "prefetch", "preconnect", "dns-prefetch",
    "icon", "shortcut", "apple-touch-icon", "mask-icon", "manifest",
}
# (tag, attribute) pairs whose URL the browser fetches when rendering the page.
LOADING_ATTRS = {
    ("script", "src"), ("img", "src"), ("iframe", "src"), ("embed", "src"),
    ("source", "src"), ("video", "src"), ("video", "poster"), ("audio", "src"),
    ("track", "src"), ("object", "data"), ("input", "src"),
}
CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)""")
CSS_IMPORT = re.compile(r"""@import\s+(?:"([^"]*)"|'([^']*)')""")


def is_remote(url: str) -> bool:
    url = url.strip().lower()
    return url.startswith(("http://", "https://", "//", "ftp://"))


def is_inline(url: str) -> bool:
    return url.strip().lower().startswith(("data:", "blob:", "about:", "javascript:", "#")) or not url.strip()


def local_target(base: Path, url: str) -> Path:
    """Where a relative URL found in `base` (a file) points to on disk."""
    path = unquote(urlsplit(url.strip()).path)
    return (base.parent / path).resolve()


class PageResources(HTMLParser):
    """Collects what a page makes the browser fetch, plus the text of its math elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.loads: list[tuple[str, str]] = []  # (what, url)
        self.styles: list[str] = []  # inline <style> bodies and style="" attributes
        self.math: list[str] = []  # text of <span>/<div> elements with class "math"
        self._in_style = False
        self._math_depth = 0
        self._math_text: list[str] = []
        self._eqno_depth = 0  # inside <span class="eqno">(1.1)#</span>: a numbered equation's label, not math

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        for t, attr in LOADING_ATTRS:
            if tag == t and a.get(attr):
                self.loads.append((f"<{tag} {attr}>", a[attr]))
        if tag in ("img", "source") and a.get("srcset"):
            for candidate in a["srcset"].split(","):
                if candidate.strip():
                    self.loads.append((f"<{tag} srcset>", candidate.split()[0]))
        if tag == "link" and a.get("href"):
            rels = set(a.get("rel", "").lower().split())
            if rels & LOADING_RELS:
                self.loads.append((f"<link rel={a.get('rel')}>", a["href"]))
        if a.get("style"):
            self.styles.append(a["style"])
        if tag == "style":
            self._in_style = True
        if tag in ("br", "img", "input", "link", "meta", "hr", "source", "wbr"):
            return  # void elements never close
        classes = a.get("class", "").split()
        if self._math_depth:
            self._math_depth += 1
            if self._eqno_depth or "eqno" in classes:
                self._eqno_depth += 1
        elif "math" in classes and tag in ("span", "div"):
            self._math_depth = 1
            self._math_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        if self._math_depth:
            self._math_depth -= 1
            if self._eqno_depth:
                self._eqno_depth -= 1
            if not self._math_depth:
                self.math.append("".join(self._math_text).strip())

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
        if self._math_depth and not self._eqno_depth:
            self._math_text.append(data)


def css_urls(text: str) -> list[str]:
    urls = [next(g for g in m.groups() if g is not None) for m in CSS_URL.finditer(text)]
    urls += [next(g for g in m.groups() if g is not None) for m in CSS_IMPORT.finditer(text)]
    return urls


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess:
    out = tmp_path_factory.mktemp("book")
    cmd = [
        str(venv_bin() / "jupyter-book"), "build", "--all", "-W", "-n", "--keep-going",
        "--path-output", str(out), str(REPO_ROOT),
    ]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=tool_env(), capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    proc.html_dir = out / "_build" / "html"  # type: ignore[attr-defined]
    return proc


@pytest.fixture(scope="module")
def html_dir(build: subprocess.CompletedProcess) -> Path:
    if build.returncode != 0:
        pytest.fail(f"jupyter-book build failed (exit {build.returncode}); its log is in test_build_is_clean")
    return build.html_dir  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def pages(html_dir: Path) -> dict[Path, PageResources]:
    parsed = {}
    for page in sorted(html_dir.rglob("*.html")):
        if "_static" in page.relative_to(html_dir).parts:
            continue  # theme templates copied as static assets, not pages
        parser = PageResources()
        parser.feed(page.read_text(encoding="utf-8"))
        parser.close()
        parsed[page] = parser
    assert parsed, "the build produced no HTML pages"
    return parsed


def toc_files() -> list[str]:
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))
            walk(entry.get("chapters", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return files


def test_build_is_clean(build: subprocess.CompletedProcess) -> None:
    def plain(text: str) -> str:
        return re.sub(r"\x1b\[[0-9;]*m", "", text)

    assert build.returncode == 0, (
        f"warnings/errors:\n{plain(build.stderr)[-6000:]}\nlog tail:\n{plain(build.stdout)[-2000:]}"
    )
    assert "build succeeded" in build.stdout


def test_every_toc_entry_is_built(html_dir: Path) -> None:
    assert (html_dir / "index.html").is_file()
    files = toc_files()
    assert "book/part1/language_models_and_shannon" in files
    missing = [f for f in files if not (html_dir / f"{Path(f).with_suffix('')}.html").is_file()]
    assert not missing, f"pages listed in _toc.yml but not built: {missing}"


def test_pages_load_nothing_from_the_web(html_dir: Path, pages: dict[Path, PageResources]) -> None:
    remote = []
    for page, res in pages.items():
        urls = list(res.loads) + [("inline CSS url()", u) for s in res.styles for u in css_urls(s)]
        remote += [f"{page.relative_to(html_dir)}: {what} {url}" for what, url in urls if is_remote(url)]
    for css in html_dir.joinpath("_static").rglob("*.css"):
        remote += [f"{css.relative_to(html_dir)}: url({u})"
                   for u in css_urls(css.read_text(encoding="utf-8", errors="replace")) if is_remote(u)]
    assert not remote, "remote resources:\n" + "\n".join(remote)


def test_local_resources_exist(html_dir: Path, pages: dict[Path, PageResources]) -> None:
    missing = []
    for page, res in pages.items():
        for what, url in res.loads:
            if not is_remote(url) and not is_inline(url) and not local_target(page, url).is_file():
                missing.append(f"{page.relative_to(html_dir)}: {what} {url}")
    for css in html_dir.joinpath("_static").rglob("*.css"):
        for url in css_urls(css.read_text(encoding="utf-8", errors="replace")):
            if not is_remote(url) and not is_inline(url) and not local_target(css, url).is_file():
                missing.append(f"{css.relative_to(html_dir)}: url({url})")
    assert not missing, "missing local resources:\n" + "\n".join(missing)


def test_math_is_marked_up_for_mathjax(pages: dict[Path, PageResources]) -> None:
    with_math = {page: res.math for page, res in pages.items() if res.math}
    assert with_math, "no page contains a math element; expected at least the Part 1 chapters"
    for page, elements in with_math.items():
        for tex in elements:
            assert tex.startswith(("\\(", "\\[", "$$", "\\begin")), f"{page.name}: unexpected math markup {tex!r}"


def test_pages_use_the_vendored_mathjax(html_dir: Path, pages: dict[Path, PageResources]) -> None:
    vendored = (VENDORED_MATHJAX / MATHJAX_SCRIPT).read_bytes()
    checked = 0
    for page, res in pages.items():
        scripts = [url for what, url in res.loads if what == "<script src>" and "mathjax" in url.lower()]
        if res.math:
            assert scripts, f"{page.name} has math but loads no MathJax"
        if not scripts:
            continue
        # Exactly one: a root-level _static/ folder would make Jupyter Book add a tag per .js file.
        assert len(scripts) == 1, f"{page.name} loads several MathJax scripts: {scripts}"
        target = local_target(page, scripts[0])
        assert target == (html_dir / "_static" / "mathjax" / MATHJAX_SCRIPT).resolve(), scripts[0]
        assert target.read_bytes() == vendored, "built MathJax differs from book/_vendor/mathjax"
        checked += 1
    assert checked, "no page loads MathJax"

    # MathJax finds its fonts at [mathjax]/output/chtml/fonts/woff-v2 relative to the script.
    fonts = html_dir / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    names = set(re.findall(r"MathJax_[A-Za-z0-9-]+\.woff", vendored.decode("utf-8", "replace")))
    assert "MathJax_Main-Regular.woff" in names
    absent = sorted(n for n in names if not (fonts / n).is_file())
    assert not absent, f"MathJax fonts missing from the build: {absent}"
    assert (html_dir / "_static" / "mathjax" / "LICENSE").is_file()


def test_bibliography_lists_every_entry(html_dir: Path) -> None:
    bib = (REPO_ROOT / "book" / "references.bib").read_text(encoding="utf-8")
    n_entries = len(re.findall(r"^@\w+\s*\{", bib, flags=re.MULTILINE))
    page = (html_dir / "book" / "bibliography.html").read_text(encoding="utf-8")
    assert page.count('role="doc-biblioentry"') == n_entries
    assert "A mathematical theory of communication" in page
