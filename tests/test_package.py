import json
import subprocess
import sys

import helpers
from helpers.config import REPO_ROOT

IMPORT_PROBE = (
    "import json, sys, time\n"
    "t = time.perf_counter()\n"
    "import helpers\n"
    "seconds = time.perf_counter() - t\n"
    "print(json.dumps({'seconds': seconds, 'heavy': sorted({'torch', 'tensorflow', 'keras'} & set(sys.modules))}))\n"
)


def test_import_helpers_is_cheap_and_loads_no_framework():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout)
    assert report["heavy"] == []
    assert report["seconds"] < 0.3


def test_package_exports_the_line_helpers_and_pick():
    assert helpers.__all__ == ["claim", "claim_if", "pick", "worked"]
    assert helpers.pick(True, "fast", "full") == "fast"
