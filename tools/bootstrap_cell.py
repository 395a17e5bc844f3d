"""The first code cell of every notebook: fetch the course when the notebook was opened without it.

A notebook opened in Colab or Binder, or downloaded from the website, has no clone of the course
beside it, so ``import helpers`` would fail. The cell clones the repository (``MLLAB_SOURCE``
overrides where from) into ``mllab-course`` and puts it on the path of this kernel and of the
processes it starts; inside a clone it does nothing. The repository URL is the one setting in
``book/_config.yml`` that also drives the website's launch buttons.

``python -m tools.bootstrap_cell`` writes the cell into every notebook (first code cell, tagged
``remove-cell`` so the website hides it); ``--check`` only reports notebooks whose cell differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

import yaml

from helpers.config import REPO_ROOT
from tools.notebooks import course_notebooks

TAG = "course-bootstrap"
CELL_TEMPLATE = '''\
# Opened without the course beside it (Colab, Binder, a downloaded file)? Fetch it first.
# Inside a clone of the repository this cell does nothing.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("helpers") is None:
    course = os.path.abspath("mllab-course")
    if not os.path.isdir(course):
        source = os.environ.get("MLLAB_SOURCE", "{url}.git")
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", source, course], check=True)
    sys.path.insert(0, course)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [course, os.environ.get("PYTHONPATH")]))
    print(f"the course is in {{course}}; libraries it needs beyond this environment's: {{course}}/requirements.txt")'''


def repository_url(config: Path = REPO_ROOT / "book" / "_config.yml") -> str:
    """The repository URL set in the book's configuration (``repository.url``)."""
    url = (yaml.safe_load(config.read_text(encoding="utf-8")).get("repository") or {}).get("url", "")
    if not url.startswith("https://"):
        raise ValueError(f"{config}: repository.url must be an https URL, got {url!r}")
    return url.rstrip("/")


def cell_source(url: str | None = None) -> str:
    """The bootstrap cell's code for the repository at ``url`` (default: the book's setting)."""
    return CELL_TEMPLATE.format(url=url or repository_url())


def bootstrap_cell(notebook: dict) -> dict | None:
    """The notebook's bootstrap cell, or None."""
    return next((c for c in notebook["cells"] if TAG in c.get("metadata", {}).get("tags", [])), None)


def apply(path: Path, source: str) -> bool:
    """Make the notebook's first code cell the bootstrap cell with ``source``; True when the file changed."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cell = bootstrap_cell(notebook)
    if cell is not None and "".join(cell["source"]) == source:
        return False
    if cell is None:
        cell = {"cell_type": "code", "execution_count": None, "id": uuid.uuid4().hex[:8],
                "metadata": {"tags": [TAG, "remove-cell"]}, "outputs": [], "source": []}
        first_code = next(i for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "code")
        notebook["cells"].insert(first_code, cell)
    lines = source.split("\n")
    cell["source"] = [line + "\n" for line in lines[:-1]] + [lines[-1]]
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks whose cell differs")
    args = parser.parse_args(argv)
    source = cell_source()
    stale = []
    for path in course_notebooks():
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cell = bootstrap_cell(notebook)
        if cell is None or "".join(cell["source"]) != source:
            stale.append(path.name)
            if not args.check:
                apply(path, source)
    if stale:
        print(("differs in: " if args.check else "written to: ") + ", ".join(stale))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
