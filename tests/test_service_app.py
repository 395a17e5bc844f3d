import pytest
from fastapi.testclient import TestClient

from helpers import service_app
from helpers.models import mlp


@pytest.fixture
def client(tmp_path, monkeypatch):
    path = service_app.save_model(mlp(64, [16], 10), tmp_path / "m.safetensors", version="test-v3")
    monkeypatch.setenv(service_app.MODEL_PATH_ENV, str(path))
    monkeypatch.setattr(service_app, "STATE", service_app._State())
    with TestClient(service_app.app) as client:
        for _ in range(200):  # the model loads in a background thread
            if client.get("/ready").status_code == 200:
                break
        yield client


def test_save_and_load_round_trip_reproduces_the_outputs(tmp_path):
    import torch

    model = mlp(64, [8, 8], 10).eval()
    path = service_app.save_model(model, tmp_path / "m.safetensors", version="v1")
    loaded, version = service_app.load_model(path)
    x = torch.rand(5, 64)
    assert version == "v1"
    assert torch.equal(model(x), loaded(x))


def test_load_refuses_a_file_without_metadata(tmp_path):
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "bare.safetensors"))
    with pytest.raises(ValueError, match="metadata"):
        service_app.load_model(tmp_path / "bare.safetensors")


def test_every_response_carries_the_model_version(client):
    for response in (client.get("/health"), client.get("/ready"),
                     client.post("/predict", json={"features": [1.0] * 64}),
                     client.post("/predict", json={"features": [1.0] * 3})):
        assert response.headers["X-Model-Version"] == "test-v3"
    assert client.get("/ready").json()["model_version"] == "test-v3"


def test_predict_and_batch_agree(client):
    rows = [[float((i * j) % 17) for j in range(64)] for i in range(5)]
    singles = [client.post("/predict", json={"features": row}).json()["label"] for row in rows]
    batch = client.post("/predict/batch", json={"instances": rows}).json()
    assert batch["labels"] == singles
    assert all(0 < c <= 1 for c in batch["confidences"])


@pytest.mark.parametrize("body, where", [
    ({"features": [1.0] * 63}, "features"),
    ({"features": [1.0] * 63 + [17.0]}, 63),
    ({"features": [1.0] * 63 + [-1.0]}, 63),
    ({"features": [1.0] * 63 + ["x"]}, 63),
    ({"features": [1.0] * 64, "extra": 1}, "extra"),
    ({}, "features"),
])
def test_bad_input_gets_a_422_that_names_the_field(client, body, where):
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    assert where in response.json()["detail"][0]["loc"]


def test_not_ready_without_a_model(monkeypatch):
    monkeypatch.delenv(service_app.MODEL_PATH_ENV, raising=False)
    monkeypatch.setattr(service_app, "STATE", service_app._State())
    with TestClient(service_app.app) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503 and service_app.MODEL_PATH_ENV in ready.json()["detail"]
        assert client.post("/predict", json={"features": [0.0] * 64}).status_code == 503


def test_injected_faults_and_metrics(client):
    client.post("/admin/faults", json={"error_rate": 1.0})
    assert client.post("/predict", json={"features": [0.0] * 64}).status_code == 500
    text = client.get("/metrics").text
    assert 'mllab_requests_total{endpoint="/predict",status="500"} 1.0' in text
    assert "mllab_request_seconds_bucket" in text
    assert client.post("/admin/faults", json={"error_rate": 2.0}).status_code == 422


def test_nan_is_a_422_not_a_500(client):
    body = '{"features": [NaN' + ", 0" * 63 + "]}"  # Python's json accepts NaN; JSON does not
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422 and "finite" in response.json()["detail"][0]["msg"]
