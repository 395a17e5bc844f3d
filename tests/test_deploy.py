"""The deployment files under deploy/ are checked here, without Docker or a cluster."""

import json
import re

import yaml

from helpers import service_app
from helpers.config import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


def _quantity_bytes(text: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi)?", str(text))
    assert match, f"unexpected memory quantity {text!r}"
    return float(match[1]) * units.get(match[2], 1)


def _cpu(text: str) -> float:
    text = str(text)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _container():
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "deployment.yaml").read_text()))
    return docs[0]["spec"]["template"]["spec"]["containers"][0]


def test_probes_point_at_routes_the_app_has():
    routes = {route.path for route in service_app.app.routes}
    container = _container()
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in routes
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_resource_limits_are_at_least_the_requests():
    resources = _container()["resources"]
    assert _quantity_bytes(resources["limits"]["memory"]) >= _quantity_bytes(resources["requests"]["memory"])
    assert _cpu(resources["limits"]["cpu"]) >= _cpu(resources["requests"]["cpu"])


def test_service_and_deployment_agree_on_the_port():
    service = yaml.safe_load((DEPLOY / "k8s" / "service.yaml").read_text())
    container = _container()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["containerPort"]
    assert service["spec"]["selector"] == yaml.safe_load(
        (DEPLOY / "k8s" / "deployment.yaml").read_text())["spec"]["selector"]["matchLabels"]


def test_dockerfile_runs_the_app_unprivileged_with_a_healthcheck():
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")  # join continuation lines
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    instructions = [line.split()[0] for line in lines]
    assert lines[0].startswith("FROM python:3.11")
    assert "USER" in instructions and "HEALTHCHECK" in instructions
    assert instructions.index("USER") < instructions.index("CMD")
    cmd = json.loads(next(line for line in lines if line.startswith("CMD")).removeprefix("CMD"))
    assert cmd[:2] == ["uvicorn", "helpers.service_app:app"]
    exposed = next(line for line in lines if line.startswith("EXPOSE")).split()[1]
    assert cmd[cmd.index("--port") + 1] == exposed == str(_container()["ports"][0]["containerPort"])
    for copied in (line.split()[1] for line in lines if line.startswith("COPY") and "model" not in line):
        assert (REPO_ROOT / copied).exists(), copied


def test_serving_requirements_are_pinned_like_the_course():
    pins = dict(line.split("==") for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    pins = {name.split("[")[0].strip(): version.split("#")[0].strip() for name, version in pins.items()}
    for line in (DEPLOY / "requirements-serve.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            assert pins[name] == version, name


def test_example_pipeline_gates_before_it_deploys():
    workflow = yaml.safe_load((DEPLOY / "model-ci.yml").read_text())
    steps = [step.get("name", "") for step in workflow["jobs"]["train-gate-deploy"]["steps"]]
    assert steps.index("Promotion gate (fails the job if the candidate regresses)") < steps.index("Deploy")
    config = json.loads((DEPLOY / "run-config.json").read_text())
    assert set(config) <= {"seed", "hidden", "lr", "epochs", "batch_size", "label_noise", "version"}
    assert set(json.loads((DEPLOY / "champion-metrics.json").read_text())) == {"accuracy", "log_loss"}
