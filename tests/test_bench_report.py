"""The benchmark report: reading durations.json in every format, statuses, and a CLI that never fails."""

import json

import pytest

from tools import bench_report
from tools.bench_report import Failure, Run, load_run, report, status

FULL = {"mode": "full", "speed_index_gflops": 48.2, "jobs": 2,
        "seconds": {"00_a": 80.0, "01_b": 130.5, "02_c": 12.0},
        "failed": {"02_c": {"cell": 7, "cell_index": 12, "error": "AssertionError: Claim failed: x (y = 1)"}}}
FAST = {"mode": "fast", "speed_index_gflops": 51.0, "seconds": {"00_a": 12.0, "01_b": 20.0, "03_d": 45.0},
        "failed": ["03_d"]}


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_a_missing_file_is_an_empty_run(tmp_path):
    run = load_run(tmp_path / "nope.json", "fast")
    assert run == Run("fast") and not run.found
    assert load_run(None, "full").mode == "full"


def test_the_new_full_format(tmp_path):
    run = load_run(_write(tmp_path, "full.json", FULL), "full")
    assert run.found and run.speed_index_gflops == 48.2 and run.jobs == 2
    assert run.seconds["01_b"] == 130.5
    assert run.failed == {"02_c": Failure(7, "AssertionError: Claim failed: x (y = 1)", 12)}


def test_the_new_fast_format_lists_failed_stems(tmp_path):
    run = load_run(_write(tmp_path, "fast.json", FAST), "fast")
    assert run.mode == "fast" and run.failed == {"03_d": Failure()} and run.speed_index_gflops == 51.0


@pytest.mark.parametrize(
    ("data", "mode"),
    [({"00_a": 12.5, "01_b": 3}, "fast"), ({"fast": True, "seconds": {"00_a": 12.5, "01_b": 3}}, "fast"),
     ({"fast": False, "seconds": {"00_a": 12.5, "01_b": 3}}, "full")],
)
def test_the_old_formats(tmp_path, data, mode):
    run = load_run(_write(tmp_path, "d.json", data), "fast")
    assert run.seconds == {"00_a": 12.5, "01_b": 3.0} and run.mode == mode
    assert run.failed == {} and run.speed_index_gflops is None


def test_a_file_that_is_not_an_object_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="JSON object"):
        load_run(_write(tmp_path, "d.json", [1, 2]), "fast")


def test_status_failed_over_within_and_not_run():
    fast = Run("fast", {"00_a": 12.0, "01_b": 31.0}, {"03_d": Failure()}, found=True)
    full = Run("full", {"00_a": 80.0, "02_c": 121.0}, {"04_e": Failure(3, "E: x")}, found=True)
    assert status("00_a", fast, full) == "within target"
    assert status("01_b", fast, full) == "over target (fast 31 s > 30 s)"
    assert status("02_c", fast, full) == "over target (full 121 s > 120 s)"
    assert status("03_d", fast, full) == "❌ failed in fast mode"
    assert status("04_e", fast, full) == "❌ failed at cell In [3]"
    assert status("05_f", fast, full) == "not run"


def test_report_table_speed_indices_and_scaling_note(tmp_path):
    text = report(load_run(_write(tmp_path, "fast.json", FAST), "fast"),
                  load_run(_write(tmp_path, "full.json", FULL), "full"))
    assert "| notebook | fast s | fast target 30 | full s | full target 120 | status |" in text
    assert "- fast run: speed index 51.0 GFLOP/s" in text
    assert "- full run: speed index 48.2 GFLOP/s, 2 notebooks at a time" in text
    assert "compare machines by seconds × GFLOP/s" in text
    rows = [line for line in text.splitlines() if line.startswith("| 0")]
    assert [r.split("|")[1].strip() for r in rows] == ["00_a", "01_b", "02_c", "03_d"]
    assert rows[0] == "| 00_a | 12.0 | 30 | 80.0 | 120 | within target |"
    assert rows[1].endswith("| over target (full 130 s > 120 s) |")
    assert rows[2].endswith("| ❌ failed at cell In [7] |") and rows[3].endswith("| ❌ failed in fast mode |")


def test_report_without_runs(tmp_path):
    text = report(Run("fast"), Run("full"))
    assert "not run (no durations.json)" in text and "(no run found)" in text


def test_cli_prints_writes_and_exits_0_over_target_and_with_missing_files(tmp_path, capsys):
    out = tmp_path / "sub" / "bench.md"
    fast = _write(tmp_path, "fast.json", {"00_a": 99.0})  # the old flat format, far over target
    assert bench_report.main(["--fast", str(fast), "--full", str(tmp_path / "none.json"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| 00_a | 99.0 | 30 |  | 120 | over target (fast 99 s > 30 s) |" in printed
    assert out.read_text(encoding="utf-8") in printed
    assert "- full run: not run (no durations.json)" in printed
    assert "- fast run: speed index not recorded" in printed
