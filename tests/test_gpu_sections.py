import json

from tools import gpu_sections


def _notebook(tmp_path, cells):
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": tags}, "source": source} for source, tags in cells],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "99_demo.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_runs_up_to_the_gpu_cell_with_fast_injected(tmp_path):
    path = _notebook(tmp_path, [
        ("FAST = False\nSEED = 0", ["parameters"]),
        ("%matplotlib inline\nvalue = 21 * 2 if FAST else 0", []),
        ("import keras\nmodel = keras.Sequential()", []),
        ("undefined_name + 1", []),
        ("def gpu_skip_reason():\n    return 'no GPU'\nif gpu_skip_reason():\n    print('skipped', value)", []),
        ("raise RuntimeError('after the last GPU cell: never run')", []),
    ])
    run = gpu_sections.run_notebook(path)
    statuses = [c.status for c in run.cells]
    assert statuses[0] == statuses[1] == "ok"
    assert statuses[2].startswith("skipped") and statuses[3] == "failed"
    gpu = run.cells[-1]
    assert gpu.gpu and gpu.status == "ok" and gpu.output == "skipped 42\n"
    assert len(run.cells) == 5 and not run.gpu_failed


def test_a_failing_gpu_cell_is_reported(tmp_path):
    path = _notebook(tmp_path, [("if PLAN.gpu_demo is None:\n    pass", [])])
    run = gpu_sections.run_notebook(path)
    assert [c.index for c in run.gpu_failed] == [0] and "NameError" in run.gpu_failed[0].error
    assert "| 99_demo | 1 | 1 | 0 | 0 |" in gpu_sections.report([run])


def test_notebooks_without_gpu_cells_run_nothing(tmp_path):
    assert gpu_sections.run_notebook(_notebook(tmp_path, [("x = 1", [])])).cells == []


def test_every_course_notebook_with_a_gpu_path_is_found():
    from tools.notebooks import course_notebooks

    found = {p.stem for p in course_notebooks()
             if any(gpu_sections.is_gpu_cell(gpu_sections._source(c))
                    for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code")}
    assert {"01a_training_memory", "09_mixed_precision", "10a_distributed_training",
            "10b_data_processing", "11a_quantization", "11c_inference_speed"} <= found
