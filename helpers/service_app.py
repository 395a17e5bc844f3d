"""The course's model service: a FastAPI app that serves a digits classifier.

Run it with uvicorn (``helpers.serving.start_server`` does, in a subprocess)::

    MLLAB_MODEL_PATH=model.safetensors uvicorn helpers.service_app:app --port 8000

The model is an MLP saved with safetensors; its widths and version travel in the file's metadata
(``save_model``), so loading it unpickles nothing. Endpoints:

- ``GET /health``: liveness. The process answers, even while the model is still loading.
- ``GET /ready``: readiness. 503 until the model is loaded, then 200 with the load time.
- ``POST /predict``: one example of 64 pixel values in [0, 16]; pydantic rejects anything else
  with a 422 that names the field.
- ``POST /predict/batch``: up to ``MAX_BATCH`` examples in one call.
- ``GET /metrics``: Prometheus counters and a latency histogram (``prometheus_client``).
- ``POST /admin/faults``: injects errors and delay, for the monitoring exercise; never in production.

Every response carries the model version in the ``X-Model-Version`` header, and JSON bodies
carry it as ``model_version``.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from helpers.models import mlp

N_FEATURES = 64  # the 8x8 digits
PIXEL_MAX = 16.0
MAX_BATCH = 1024
MODEL_PATH_ENV = "MLLAB_MODEL_PATH"
LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

Pixel = Annotated[float, Field(ge=0.0, le=PIXEL_MAX, allow_inf_nan=False)]


class PredictRequest(BaseModel):
    """One digit image, flattened: 64 pixel intensities in [0, 16]."""

    model_config = ConfigDict(extra="forbid")
    features: list[Pixel] = Field(min_length=N_FEATURES, max_length=N_FEATURES)


class BatchRequest(BaseModel):
    """Several digit images in one call."""

    model_config = ConfigDict(extra="forbid")
    instances: list[Annotated[list[Pixel], Field(min_length=N_FEATURES, max_length=N_FEATURES)]] = Field(
        min_length=1, max_length=MAX_BATCH
    )


class Faults(BaseModel):
    """Injected faults: the share of /predict calls that fail, and extra delay per call."""

    error_rate: float = Field(0.0, ge=0.0, le=1.0)
    delay_ms: float = Field(0.0, ge=0.0, le=5000.0)


def save_model(model: nn.Sequential, path: str | Path, *, version: str) -> Path:
    """Save an ``helpers.models.mlp`` network as safetensors, with its widths and version as metadata."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("model has no Linear layers: expected a helpers.models.mlp network")
    widths = [linears[0].in_features] + [m.out_features for m in linears]
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"version": version, "widths": ",".join(map(str, widths))})
    return Path(path)


def load_model(path: str | Path) -> tuple[nn.Sequential, str]:
    """Rebuild the network saved by ``save_model``; return it (in eval mode) and its version."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    state = load_file(str(path))
    if "widths" not in metadata or "version" not in metadata:
        raise ValueError(f"{path} has no 'widths'/'version' metadata: save it with save_model")
    widths = [int(w) for w in metadata["widths"].split(",")]
    model = mlp(widths[0], widths[1:-1], widths[-1])
    model.load_state_dict(state)
    return model.eval(), metadata["version"]


class _State:
    """What the running service knows: the model once loaded, and the injected faults."""

    def __init__(self) -> None:
        self.model: nn.Sequential | None = None
        self.version = "loading"
        self.load_seconds: float | None = None
        self.load_error: str | None = None
        self.faults = Faults()
        self.rng = np.random.default_rng(0)

    def load(self, path: str) -> None:
        start = time.perf_counter()
        try:
            self.model, self.version = load_model(path)
        except Exception as error:  # reported by /ready, which stays 503
            self.load_error = f"{type(error).__name__}: {error}"
            return
        self.load_seconds = time.perf_counter() - start


STATE = _State()
disable_created_metrics()  # no *_created series: they only add noise to the scrape
REGISTRY = CollectorRegistry()
REQUESTS = Counter("mllab_requests", "HTTP requests by endpoint and status code", ["endpoint", "status"],
                   registry=REGISTRY)
LATENCY = Histogram("mllab_request_seconds", "Request latency by endpoint", ["endpoint"],
                    buckets=LATENCY_BUCKETS_S, registry=REGISTRY)
PREDICTIONS = Counter("mllab_predictions", "Examples classified", registry=REGISTRY)


@asynccontextmanager
async def _lifespan(_app: FastAPI):
    torch.set_num_threads(1)
    path = os.environ.get(MODEL_PATH_ENV)
    if path is None:
        STATE.load_error = f"environment variable {MODEL_PATH_ENV} is not set"
    else:  # load in the background: /health answers at once, /ready when the model is in
        threading.Thread(target=STATE.load, args=(path,), daemon=True).start()
    yield


app = FastAPI(title="ML Interview Lab digits service", lifespan=_lifespan)


@app.exception_handler(RequestValidationError)
async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
    """422 with where and why, without echoing the input back: FastAPI's default handler repeats it,
    and fails with a 500 when it holds a NaN, which JSON cannot encode."""
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
    return JSONResponse({"detail": detail, "model_version": STATE.version}, status_code=422)


@app.middleware("http")
async def _measure(request: Request, call_next):
    start = time.perf_counter()
    response = await call_next(request)
    endpoint = request.scope.get("route").path if request.scope.get("route") else "unmatched"
    if endpoint != "/metrics":
        LATENCY.labels(endpoint).observe(time.perf_counter() - start)
        REQUESTS.labels(endpoint, str(response.status_code)).inc()
    response.headers["X-Model-Version"] = STATE.version
    return response


def _model() -> nn.Sequential:
    if STATE.model is None:
        raise HTTPException(503, detail=STATE.load_error or "model is loading")
    return STATE.model


def _apply_faults() -> None:
    if STATE.faults.delay_ms:
        time.sleep(STATE.faults.delay_ms / 1000)
    if STATE.rng.random() < STATE.faults.error_rate:
        raise HTTPException(500, detail="injected fault")


def _classify(rows: list[list[float]]) -> tuple[list[int], list[float]]:
    with torch.inference_mode():
        probs = torch.softmax(_model()(torch.tensor(rows, dtype=torch.float32) / PIXEL_MAX), dim=1)
    confidence, label = probs.max(dim=1)
    PREDICTIONS.inc(len(rows))
    return label.tolist(), confidence.tolist()


@app.get("/health")
def health() -> dict:
    return {"status": "ok", "model_version": STATE.version}


@app.get("/ready")
def ready() -> JSONResponse:
    if STATE.model is None:
        detail = STATE.load_error or "model is loading"
        return JSONResponse({"ready": False, "detail": detail, "model_version": STATE.version}, status_code=503)
    return JSONResponse({"ready": True, "load_seconds": STATE.load_seconds, "model_version": STATE.version})


@app.post("/predict")
def predict(request: PredictRequest) -> dict:  # a plain def: FastAPI runs it in a thread, off the event loop
    _apply_faults()
    labels, confidences = _classify([request.features])
    return {"label": labels[0], "confidence": confidences[0], "model_version": STATE.version}


@app.post("/predict/batch")
def predict_batch(request: BatchRequest) -> dict:
    _apply_faults()
    labels, confidences = _classify(request.instances)
    return {"labels": labels, "confidences": confidences, "model_version": STATE.version}


@app.post("/admin/faults")
def set_faults(faults: Faults) -> dict:
    STATE.faults = faults
    return {"faults": faults.model_dump(), "model_version": STATE.version}


@app.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
