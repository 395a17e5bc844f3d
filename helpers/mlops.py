"""A small team's model pipeline: config → train → metrics.json → promotion gate → run record.

Every step is a command, so a CI job can run it and fail on its exit code::

    python -m helpers.mlops train --config run.json --out runs/candidate
    python -m helpers.mlops gate runs/candidate/metrics.json runs/champion/metrics.json

``train`` writes the model (safetensors, served by ``helpers.service_app``), ``metrics.json`` and
a run record: the full config, the metrics, the SHA-256 of the data, the git commit and the
library versions, which is enough to reproduce the run and to write its model card. ``gate``
exits 1 and says why when the candidate is worse than the champion by more than the allowed
margins.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.config import REPO_ROOT

if TYPE_CHECKING:
    import torch
    from torch import nn

# The gate runs first in CI and must start in a fraction of a second: torch, the service and the
# training loop are imported inside the functions that train.

DEFAULT_MAX_DROP = {"accuracy": 0.01}
DEFAULT_MAX_RISE = {"log_loss": 0.05}


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a training run's result."""

    seed: int = 0
    hidden: tuple[int, ...] = (128,)
    lr: float = 3e-3
    epochs: int = 40
    batch_size: int = 64
    label_noise: float = 0.0  # share of training labels flipped: the "deliberately degraded" knob
    version: str = "digits-mlp"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        values = json.loads(text)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        if "hidden" in values:
            values["hidden"] = tuple(values["hidden"])
        return cls(**values)


def data_sha256(*arrays: np.ndarray) -> str:
    """SHA-256 over the arrays' dtypes, shapes and bytes: changes whenever the data does."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def git_commit(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """The checked-out commit and whether the work tree has uncommitted changes ("unknown" outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True,
                                check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def train(config: RunConfig) -> tuple[nn.Sequential, dict[str, float], str]:
    """Train the digits MLP described by ``config``; return the model, test metrics and data hash."""
    import torch

    from helpers.data import flip_labels, load_digits, split
    from helpers.device import seed_everything
    from helpers.models import mlp
    from helpers.train import evaluate, fit

    seed_everything(config.seed)
    X, y = load_digits()
    parts = split(X, y, seed=0)  # the split is part of the benchmark, not of the run: fixed
    y_train = flip_labels(parts.y_train, config.label_noise, seed=config.seed) if config.label_noise else parts.y_train

    def tensor(a: np.ndarray) -> torch.Tensor:  # load_digits gives pixels / 16, what the service feeds the model
        return torch.tensor(a, dtype=torch.float32)

    model = mlp(X.shape[1], list(config.hidden), 10)
    fit(model, tensor(parts.X_train), torch.tensor(y_train), epochs=config.epochs, batch_size=config.batch_size,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr), progress=False)
    log_loss, accuracy = evaluate(model, tensor(parts.X_test), torch.tensor(parts.y_test), torch.nn.CrossEntropyLoss())
    metrics = {"accuracy": accuracy, "log_loss": log_loss}
    return model, metrics, data_sha256(parts.X_train, y_train, parts.X_test, parts.y_test)


def run_record(config: RunConfig, metrics: Mapping[str, float], data_hash: str) -> dict[str, Any]:
    """What a later reader needs to trust and reproduce a run."""
    import torch

    return {"config": dataclasses.asdict(config), "metrics": dict(metrics), "data_sha256": data_hash,
            "git": git_commit(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__}


def run_pipeline(config: RunConfig, out_dir: str | Path) -> dict[str, Any]:
    """Train, then write ``model.safetensors``, ``metrics.json``, ``run.json`` and ``config.json``."""
    from helpers.service_app import save_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, metrics, data_hash = train(config)
    save_model(model, out / "model.safetensors", version=config.version)
    record = run_record(config, metrics, data_hash)
    (out / "config.json").write_text(config.to_json())
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "run.json").write_text(json.dumps(record, indent=2))
    return record


@dataclass
class GateResult:
    """The promotion decision and every reason against it."""

    promote: bool
    reasons: list[str] = field(default_factory=list)


def promotion_check(candidate: Mapping[str, float], champion: Mapping[str, float], *,
                    max_drop: Mapping[str, float] = DEFAULT_MAX_DROP,
                    max_rise: Mapping[str, float] = DEFAULT_MAX_RISE) -> GateResult:
    """Refuse the candidate if a higher-is-better metric drops, or a lower-is-better one rises,
    by more than its margin against the champion. A metric missing from either side is a refusal."""
    reasons = []
    for limits, sign, verb in ((max_drop, -1, "dropped"), (max_rise, 1, "rose")):
        for name, margin in limits.items():
            if name not in candidate or name not in champion:
                reasons.append(f"{name} is missing from the candidate or the champion metrics")
                continue
            change = sign * (candidate[name] - champion[name])
            if change > margin:
                reasons.append(f"{name} {verb} by {change:.4f} ({champion[name]:.4f} -> {candidate[name]:.4f}), "
                               f"more than the allowed {margin}")
    return GateResult(promote=not reasons, reasons=reasons)


def model_card(record: Mapping[str, Any]) -> str:
    """A short model card (Mitchell et al., 2019) in Markdown, written from a run record."""
    config, metrics, git = record["config"], record["metrics"], record["git"]
    metric_rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in metrics.items())
    return f"""# Model card: {config['version']}

## Model
A multi-layer perceptron (hidden widths {list(config['hidden'])}) trained with Adam (lr {config['lr']},
{config['epochs']} epochs, batch {config['batch_size']}, seed {config['seed']}).

## Intended use
Classifying 8×8 grey-scale images of handwritten digits (pixel values 0–16), as in scikit-learn's
digits data set. Not for other image sizes, scans of documents, or any decision about a person.

## Data
Training and test split of scikit-learn's digits (1,797 images); data SHA-256 `{record['data_sha256'][:16]}…`.
Label noise injected in training: {config['label_noise']:.0%}.

## Evaluation (held-out test split)
| metric | value |
|---|---:|
{metric_rows}

## Provenance
Git commit `{git['commit'][:12]}`{' (uncommitted changes)' if git['dirty'] else ''}; Python {record['python']},
PyTorch {record['torch']}, NumPy {record['numpy']}.

## Limitations
Small data; no robustness guarantee under noise, missing pixels or out-of-range values beyond what
the service's input validation rejects.
"""


def _parse_limits(pairs: Sequence[str]) -> dict[str, float]:
    limits = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not name or not value:
            raise SystemExit(f"expected NAME=MARGIN, got {pair!r}")
        limits[name] = float(value)
    return limits


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``train`` and ``gate`` (exit code 1 when the gate refuses)."""
    parser = argparse.ArgumentParser(prog="python -m helpers.mlops", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train_cmd = commands.add_parser("train", help="train from a config file and write the run's files")
    train_cmd.add_argument("--config", required=True, type=Path)
    train_cmd.add_argument("--out", required=True, type=Path)
    gate_cmd = commands.add_parser("gate", help="compare a candidate's metrics.json with the champion's")
    gate_cmd.add_argument("candidate", type=Path)
    gate_cmd.add_argument("champion", type=Path)
    gate_cmd.add_argument("--max-drop", nargs="*", default=[f"{k}={v}" for k, v in DEFAULT_MAX_DROP.items()])
    gate_cmd.add_argument("--max-rise", nargs="*", default=[f"{k}={v}" for k, v in DEFAULT_MAX_RISE.items()])
    args = parser.parse_args(argv)
    if args.command == "train":
        record = run_pipeline(RunConfig.from_json(args.config.read_text()), args.out)
        print(json.dumps(record["metrics"]))
        return 0
    result = promotion_check(json.loads(args.candidate.read_text()), json.loads(args.champion.read_text()),
                             max_drop=_parse_limits(args.max_drop), max_rise=_parse_limits(args.max_rise))
    print("PROMOTE" if result.promote else "REFUSE: " + "; ".join(result.reasons))
    return 0 if result.promote else 1


if __name__ == "__main__":
    sys.exit(main())
