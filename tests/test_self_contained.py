"""The repository stands alone: no file in it links to, or reads from, a place outside it.

A learner's clone holds this repository and nothing next to it, so a link from the README to a file
one folder up, a notebook that opens a data file two folders up, or a mention of the ``shared``
folder that sits beside the repository on the authors' machine is broken for every reader even when
it works for the author.

What is checked, in every file git lists (tracked files plus new files that are not ignored):

- markdown links and images ``](target)``, reference definitions ``[name]: target`` and HTML
  ``href=`` / ``src=`` attributes: a target is resolved from the folder of the file that holds it
  and must stay inside the repository; an absolute path or a ``file:`` URL is outside by definition.
  URLs with a scheme (``https:``, ``mailto:`` ...) and anchors (``#section``) are not paths;
- plain paths that climb to a parent folder (a ``..`` segment followed by a slash), resolved from
  the file's folder;
- any mention of the sibling ``shared`` folder, written as one path or as joined parts (``".."``
  then ``"shared"``), wherever it would resolve;
- tracked symbolic links whose target leaves the repository.

Inside a fenced shell block of a markdown text (bash, sh, console ...) commands are usually run from
the repository root, so a parent-folder path there is accepted when it stays inside from the file's folder
or from the root, following any ``cd`` earlier in the block; after a ``cd`` the checker cannot
follow (``cd $DIR``), such a path is reported.

Files checked: .md, .ipynb (markdown and code cells), .py, .yml/.yaml, .toml, .cfg, .ini, .txt,
.sh, Makefile, .gitmodules and .ci/run.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

CHECKED_SUFFIXES = frozenset({".md", ".ipynb", ".py", ".yml", ".yaml", ".toml", ".cfg", ".ini", ".txt", ".sh"})
CHECKED_NAMES = frozenset({"Makefile", ".gitmodules"})
CHECKED_PATHS = frozenset({".ci/run"})
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "zsh", "console", "shell-session", "shellsession"})

# A markdown link or image: the target after "](", up to whitespace, ")" or ">".
MARKDOWN_LINK = re.compile(r"\]\(\s*<?([^)\s>]*)")
# A markdown reference definition at the start of a line: [name]: target
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]\n]+\]:\s*<?([^\s>]+)")
HTML_ATTRIBUTE = re.compile(r"""\b(?:href|src)\s*=\s*(["'])(.*?)\1""", re.IGNORECASE)
# A path token holding a parent-folder segment that does not continue a longer token (a URL, $VAR/...).
PARENT_PATH = re.compile(r"(?<![\w.~$/\\:-])((?:[\w.-]+/)*\.\./[^\s\"'`()<>\[\]{},;|*]*)")
# The sibling "shared" folder, spelled as a path (either slash) or as joined path parts (".." and "shared").
SHARED_MENTION = re.compile(r"""\.\.(?:/|\\|["']\s*[,/]\s*["'])shared\b""")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
CD = re.compile(r"(?:^|[;&|(]|\s)cd\s+([^\s;&|)]+)")


@dataclass(frozen=True)
class Escape:
    """One place where a text points outside the repository."""

    line: int  # 1-based line in the text
    target: str
    reason: str


# ---- the detector ------------------------------------------------------------------------------


def path_problem(path: str, folder: PurePosixPath) -> str | None:
    """Why ``path`` (relative, from ``folder`` of the repository) leaves the repository, or None."""
    resolved = posixpath.normpath(posixpath.join(folder.as_posix(), path))
    if resolved == ".." or resolved.startswith("../"):
        return f"resolves to {resolved}, outside the repository"
    return None


def link_target_problem(target: str, folder: PurePosixPath) -> str | None:
    """Why a link target leaves the repository, or None (inside, a URL with a scheme, an anchor)."""
    target = target.strip()
    if not target or target.startswith("#") or target.startswith("//"):  # anchor; scheme-relative URL
        return None
    if SCHEME.match(target):
        return "a file: URL points outside the repository" if target.lower().startswith("file:") else None
    path = re.split(r"[?#]", target, maxsplit=1)[0]
    if path.startswith("/"):
        return "an absolute path points outside the repository"
    return path_problem(path, folder)


@dataclass
class _Reporter:
    """Records an escape on one line unless an earlier check already judged that stretch of it."""

    found: list[Escape]
    taken: list[tuple[int, int]]
    line: int

    def __call__(self, span: tuple[int, int], target: str, reason: str | None) -> None:
        if reason and not any(span[0] < end and start < span[1] for start, end in self.taken):
            self.found.append(Escape(self.line, target, reason))
        self.taken.append(span)


def _shell_problem(path: str, bases: list[PurePosixPath] | None) -> str | None:
    """A parent-folder path in a shell example: fine when it stays inside from any place the example may run."""
    if bases is None:
        return "after a cd the checker cannot follow, it may point outside the repository"
    problems = [path_problem(path, base) for base in bases]
    return None if not bases or any(p is None for p in problems) else problems[0]


def _follow_cd(bases: list[PurePosixPath] | None, directory: str) -> list[PurePosixPath] | None:
    """The folders a shell example may be in after ``cd directory`` (None: cannot tell)."""
    if bases is None or not re.fullmatch(r"[\w./-]+", directory) or directory.startswith("/"):
        return None
    moved = [PurePosixPath(posixpath.normpath(posixpath.join(b.as_posix(), directory))) for b in bases]
    return [b for b in moved if not (b.as_posix() == ".." or b.as_posix().startswith("../"))]


def find_escapes(text: str, folder: PurePosixPath | str = ".", *, markdown: bool = False) -> list[Escape]:
    """Every link or path in ``text`` that points outside the repository.

    ``folder`` is the folder of the file holding ``text``, relative to the repository root (``"."``
    for the root). ``markdown=True`` enables markdown rules: reference definitions, and fenced code
    blocks, whose contents are code rather than links (shell blocks get the leniency described in
    the module docstring).
    """
    folder = PurePosixPath(folder)
    found: list[Escape] = []
    fence: str | None = None  # the opening fence while inside a fenced block
    shell_bases: list[PurePosixPath] | None = None
    is_shell = False
    for number, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line) if markdown else None
        if opening and fence is None:
            fence, is_shell = opening.group(1), opening.group(2).lower() in SHELL_LANGUAGES
            shell_bases = [folder, PurePosixPath(".")]
            continue
        if opening and fence is not None and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
            fence = None
            continue
        taken: list[tuple[int, int]] = []  # spans already judged on this line: one report per place
        report = _Reporter(found, taken, number)
        for match in SHARED_MENTION.finditer(line):
            report(match.span(), match.group(0), "names the sibling shared folder, which a clone does not have")
        if fence is None:
            link_matches = [(m.span(1), m.group(1)) for m in MARKDOWN_LINK.finditer(line)]
            link_matches += [(m.span(2), m.group(2)) for m in HTML_ATTRIBUTE.finditer(line)]
            if markdown:
                link_matches += [(m.span(1), m.group(1)) for m in REFERENCE_DEFINITION.finditer(line)]
            for span, target in link_matches:
                report(span, target, link_target_problem(target, folder))
        if fence is not None and is_shell:
            events = [(m.start(1), "cd", m) for m in CD.finditer(line)]
            events += [(m.start(1), "path", m) for m in PARENT_PATH.finditer(line)]
            for _, kind, match in sorted(events, key=lambda event: event[0]):
                if kind == "cd":
                    shell_bases = _follow_cd(shell_bases, match.group(1))
                else:
                    report(match.span(1), match.group(1), _shell_problem(match.group(1), shell_bases))
            continue
        for match in PARENT_PATH.finditer(line):
            report(match.span(1), match.group(1), path_problem(match.group(1), folder))
    return found


# ---- the repository's files --------------------------------------------------------------------


def listed_files(root: Path = REPO_ROOT) -> list[str] | None:
    """Files git lists under ``root`` (tracked, plus untracked files that are not ignored), or None
    when git is missing or ``root`` is not a git checkout."""
    if shutil.which("git") is None:
        return None
    try:
        result = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root, capture_output=True, check=False, timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return sorted({name for name in result.stdout.decode("utf-8", "replace").split("\0") if name})


def is_checked(relative: str) -> bool:
    """Whether a file, by its path relative to the root, is one whose text is checked."""
    path = PurePosixPath(relative)
    return relative in CHECKED_PATHS or path.name in CHECKED_NAMES or path.suffix in CHECKED_SUFFIXES


def file_escapes(root: Path, relative: str) -> list[str]:
    """``file:line: target (reason)`` for every place in one file that points outside the repository."""
    path = root / relative
    folder = PurePosixPath(relative).parent
    if path.is_symlink():
        target = os.readlink(path)
        reason = ("an absolute link target" if os.path.isabs(target)
                  else path_problem(PurePosixPath(target).as_posix(), folder))
        return [f"{relative}: symbolic link to {target} ({reason})"] if reason else []
    if not path.is_file() or not is_checked(relative):
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix != ".ipynb":
        return [f"{relative}:{e.line}: {e.target} ({e.reason})"
                for e in find_escapes(text, folder, markdown=path.suffix == ".md")]
    try:
        cells = json.loads(text).get("cells", [])
    except (json.JSONDecodeError, AttributeError):
        return [f"{relative}: not a readable notebook, so it could not be checked"]
    problems = []
    for index, cell in enumerate(cells, start=1):
        if cell.get("cell_type") not in ("markdown", "code"):
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        for e in find_escapes(source, folder, markdown=cell["cell_type"] == "markdown"):
            problems.append(f"{relative}:cell {index}, line {e.line}: {e.target} ({e.reason})")
    return problems


def test_no_file_points_outside_the_repository():
    files = listed_files(REPO_ROOT)
    if files is None:
        pytest.skip("git is not installed or this folder is not a git checkout, so there is no file list")
    checked = [f for f in files if is_checked(f) or (REPO_ROOT / f).is_symlink()]
    assert checked, "git listed no file of a checked type; the file list or the filter is wrong"
    problems = [problem for relative in checked for problem in file_escapes(REPO_ROOT, relative)]
    assert not problems, (
        "these links or paths point outside the repository, which a learner's clone does not have:\n  "
        + "\n  ".join(problems)
    )


# ---- the detector on small texts ----------------------------------------------------------------

UP = ".." + "/"  # written this way so that this file's own text holds no parent-folder path
SHARED = UP + "shared"
ABSOLUTE = "/" + "home/me/course"  # an absolute path and a file URL, likewise kept out of the source
FILE_URL = "file:" + "//" + "/tmp/x.html"


def targets(text: str, folder: str = ".", *, markdown: bool = True) -> list[str]:
    return [e.target for e in find_escapes(text, folder, markdown=markdown)]


def test_a_markdown_link_that_leaves_the_repository_is_found():
    text = f"Intro.\nRead [the guide]({UP}{UP}other/GUIDE.md) first."
    (escape,) = find_escapes(text, ".", markdown=True)
    assert escape.line == 2 and escape.target == f"{UP}{UP}other/GUIDE.md"
    assert "outside the repository" in escape.reason


def test_a_link_that_climbs_but_stays_inside_is_accepted():
    assert targets(f"See [the data]({UP}data/README.md) and ![plot]({UP}book/fig.png).", "notebooks") == []
    assert targets(f"[x](notebooks/{UP}README.md)") == []


def test_the_same_link_from_the_root_leaves_the_repository():
    assert targets(f"[data]({UP}data/README.md)", ".") == [f"{UP}data/README.md"]


def test_urls_anchors_and_mail_addresses_are_not_paths():
    text = (f"[a](https://example.org/{UP}x) [b](#the-rule) [c](mailto:someone@example.org) "
            f"[d](http://example.org) <a href=\"https://example.org/{UP}{UP}y\">e</a>")
    assert targets(text) == []


def test_absolute_paths_and_file_urls_in_links_are_outside():
    assert targets(f"[a]({ABSOLUTE}/x.md) [b]({FILE_URL})") == [f"{ABSOLUTE}/x.md", FILE_URL]


def test_html_href_and_src_are_checked():
    text = f'<img src="{UP}logo.png"> <a href=\'{UP}{UP}page.html\'>x</a> <img src="figs/a.png">'
    assert targets(text, ".") == [f"{UP}logo.png", f"{UP}{UP}page.html"]
    assert targets(text, "book") == [f"{UP}{UP}page.html"]


def test_reference_definitions_are_checked_in_markdown():
    assert targets(f"[guide]: {UP}{UP}GUIDE.md\n[ok]: book/intro.md") == [f"{UP}{UP}GUIDE.md"]


def test_plain_parent_paths_in_code_resolve_from_the_files_folder():
    code = (f'df = pd.read_csv("{UP}data/x.csv")\n'
            f'secret = open("{UP}{UP}keys.txt").read()\n'
            f'other = Path("notebooks/{UP}{UP}{UP}outside")')
    found = find_escapes(code, "notebooks")
    assert [(e.line, e.target) for e in found] == [
        (2, f"{UP}{UP}keys.txt"), (3, f"notebooks/{UP}{UP}{UP}outside")]


def test_a_path_after_a_variable_or_inside_a_url_is_not_a_parent_path():
    assert targets(f'cd "$ROOT/{UP}x"; curl https://example.org/a/{UP}b', markdown=False) == []


def test_any_mention_of_the_shared_folder_is_found_even_when_it_resolves_inside():
    joined = 'REPO / "' + '..' + '" / "shared" / "GUIDE.md"'
    found = find_escapes(f"[guide]({SHARED}/GUIDE.md)\n{joined}", "notebooks", markdown=True)
    assert [e.line for e in found] == [1, 2]
    assert all("shared folder" in e.reason for e in found)


def test_fenced_shell_examples_that_stay_inside_are_accepted():
    readme = "\n".join([
        "```bash",
        f"cd notebooks && ls {UP}data",
        f"python {UP}tools/x.py",
        "```",
    ])
    assert targets(readme, ".") == []
    assert targets(f"```sh\nls {UP}helpers\n```", "book") == []  # fine from the file's folder


def test_fenced_shell_examples_that_leave_the_repository_are_found():
    assert targets(f"```bash\nls {UP}{UP}x\n```", "book") == [f"{UP}{UP}x"]
    assert targets(f"```bash\ncd $SOMEWHERE\nls {UP}y\n```") == [f"{UP}y"]
    assert targets(f"```console\n$ cat {SHARED}/GUIDE.md\n```", "notebooks") == [SHARED]


def test_links_inside_any_fenced_block_are_code_not_links():
    assert targets(f"```python\nx = a[0]({ABSOLUTE})\n```\n```text\n[x]({ABSOLUTE}/x.md)\n```") == []
    assert targets(f"[x]({ABSOLUTE}/x.md)") == [f"{ABSOLUTE}/x.md"]


def test_a_fenced_block_in_a_non_shell_language_still_checks_plain_paths():
    assert targets(f"```python\nopen('{UP}{UP}x')\n```", "notebooks") == [f"{UP}{UP}x"]


def test_fence_markers_are_ignored_outside_markdown():
    assert targets(f"```bash\nls {UP}x\n```", ".", markdown=False) == [f"{UP}x"]


def test_file_escapes_reads_notebook_cells_and_reports_cell_and_line(tmp_path):
    notebook = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n", f"[guide]({UP}{UP}x.md)\n"]},
        {"cell_type": "code", "metadata": {}, "source": f"open('{UP}data/a.csv')", "outputs": []},
        {"cell_type": "raw", "metadata": {}, "source": f"{UP}{UP}ignored"},
    ]}
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_x.ipynb").write_text(json.dumps(notebook), encoding="utf-8")
    assert file_escapes(tmp_path, "notebooks/01_x.ipynb") == [
        f"notebooks/01_x.ipynb:cell 1, line 2: {UP}{UP}x.md (resolves to {UP}x.md, outside the repository)"]


def test_file_escapes_reports_file_and_line_and_skips_unchecked_types(tmp_path):
    (tmp_path / "README.md").write_text(f"ok\n[a]({SHARED}/GUIDE.md)\n", encoding="utf-8")
    (tmp_path / "data.csv").write_text(f"{UP}{UP}x\n", encoding="utf-8")
    (tmp_path / "Makefile").write_text(f"include {UP}common.mk\n", encoding="utf-8")
    assert file_escapes(tmp_path, "README.md") == [
        f"README.md:2: {SHARED} (names the sibling shared folder, which a clone does not have)"]
    assert file_escapes(tmp_path, "data.csv") == []
    assert file_escapes(tmp_path, "Makefile") == [
        f"Makefile:1: {UP}common.mk (resolves to {UP}common.mk, outside the repository)"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="this platform has no symbolic links")
def test_a_symbolic_link_that_leaves_the_repository_is_found(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "inside.md").write_text("x", encoding="utf-8")
    (tmp_path / "repo" / "out").symlink_to(Path("..") / "elsewhere")
    (tmp_path / "repo" / "in").symlink_to("inside.md")
    assert file_escapes(tmp_path / "repo", "in") == []
    (problem,) = file_escapes(tmp_path / "repo", "out")
    assert problem.startswith("out: symbolic link to") and "outside the repository" in problem


def test_is_checked_covers_the_file_types_of_the_course():
    for name in ("README.md", "notebooks/00_x.ipynb", "helpers/bench.py", "book/_toc.yml", "a.yaml",
                 "pyproject.toml", "setup.cfg", "Makefile", "tools/x.sh", ".ci/run", "requirements.txt"):
        assert is_checked(name), name
    for name in ("data/MANIFEST.csv", "LICENSE", "figure.png", ".ci/other"):
        assert not is_checked(name), name


def test_listed_files_is_none_outside_a_git_checkout(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=tmp_path,
                            capture_output=True, check=False)
    if inside.returncode == 0:
        pytest.skip("the temporary folder lies inside a git checkout on this machine")
    assert listed_files(tmp_path) is None
