import pytest

from tools import stress


def test_the_conditions_cover_one_core_other_seeds_and_a_busy_cpu():
    by_name = {c.name: c for c in stress.CONDITIONS}
    assert by_name["one core"].one_core
    assert {c.seed for c in stress.CONDITIONS} >= {1, 2}
    assert by_name["busy CPU"].busy


def test_table_marks_pass_fail_missing_and_skipped():
    results = {
        "one core": {"seconds": {"a": 10.0, "b": 20.0}, "failed": ["b"], "wall_s": 31.0},
        "seed 1": {"seconds": {"a": 5.0}, "failed": [], "wall_s": 6.0},
        "busy CPU": {"skipped": "no sched_setaffinity"},
    }
    lines = stress.table(results, ["a", "b"]).splitlines()
    assert lines[0] == "| notebook | one core | seed 1 | busy CPU |"
    assert lines[2] == "| a | ✔ 10.0 s | ✔ 5.0 s | not run |"
    assert lines[3] == "| b | ✘ 20.0 s | ✘ did not run | not run |"
    assert lines[4] == "| whole run | 31 s | 6 s | no sched_setaffinity |"


def test_pytest_command_runs_nbval_with_the_timing_plugin(tmp_path):
    command = stress.pytest_command(tmp_path, tmp_path / "d.json", workers="0")
    assert "--nbval-lax" in command and "tools.nbtiming" in command
    assert f"--nb-cap={stress.CAP_S}" in command and command[command.index("-n") + 1] == "0"


def test_unknown_conditions_and_notebooks_are_refused():
    with pytest.raises(SystemExit):
        stress.main(["--conditions", "underwater"])
    with pytest.raises(SystemExit):
        stress.main(["no_such_notebook"])


def test_prepare_injects_the_seed(tmp_path):
    import json

    from tools.notebooks import course_notebooks

    notebook = course_notebooks()[0]
    stress.prepare(stress.Condition("seed 7", seed=7), [notebook], tmp_path)
    cells = json.loads((tmp_path / "seed-7" / notebook.name).read_text())["cells"]
    injected = next(c for c in cells if "injected-parameters" in c["metadata"].get("tags", []))
    assert "SEED = 7" in "".join(injected["source"]) and "FAST = True" in "".join(injected["source"])


def test_prepare_removes_copies_left_by_an_earlier_run(tmp_path):
    from tools.notebooks import course_notebooks

    condition = stress.Condition("seed 7", seed=7)
    stale = tmp_path / "seed-7" / "99_stale.ipynb"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    notebook = course_notebooks()[0]
    stress.prepare(condition, [notebook], tmp_path)
    assert sorted(p.name for p in (tmp_path / "seed-7").iterdir()) == [notebook.name]
