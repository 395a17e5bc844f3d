import json

import pytest

from helpers import mlops


def test_gate_promotes_an_equal_or_better_candidate():
    champion = {"accuracy": 0.95, "log_loss": 0.20}
    assert mlops.promotion_check(champion, champion).promote
    assert mlops.promotion_check({"accuracy": 0.96, "log_loss": 0.10}, champion).promote
    assert mlops.promotion_check({"accuracy": 0.945, "log_loss": 0.24}, champion).promote  # within margins


def test_gate_refuses_a_regression_and_says_why():
    result = mlops.promotion_check({"accuracy": 0.90, "log_loss": 0.40}, {"accuracy": 0.95, "log_loss": 0.20})
    assert not result.promote and len(result.reasons) == 2
    assert "accuracy dropped by 0.0500" in result.reasons[0]
    missing = mlops.promotion_check({"accuracy": 0.99}, {"accuracy": 0.95, "log_loss": 0.2})
    assert not missing.promote and "log_loss is missing" in missing.reasons[0]


def test_gate_command_exit_codes(tmp_path, capsys):
    (tmp_path / "champ.json").write_text(json.dumps({"accuracy": 0.95, "log_loss": 0.2}))
    (tmp_path / "bad.json").write_text(json.dumps({"accuracy": 0.5, "log_loss": 0.2}))
    assert mlops.main(["gate", str(tmp_path / "champ.json"), str(tmp_path / "champ.json")]) == 0
    assert mlops.main(["gate", str(tmp_path / "bad.json"), str(tmp_path / "champ.json")]) == 1
    assert "REFUSE: accuracy dropped" in capsys.readouterr().out
    assert mlops.main(["gate", str(tmp_path / "bad.json"), str(tmp_path / "champ.json"), "--max-drop",
                       "accuracy=0.5"]) == 0


def test_config_round_trip_and_unknown_keys():
    config = mlops.RunConfig(hidden=(32, 16), label_noise=0.2)
    assert mlops.RunConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown"):
        mlops.RunConfig.from_json('{"learning_rate": 0.1}')


def test_data_hash_changes_with_values_dtype_and_shape():
    import numpy as np

    a = np.arange(6)
    hashes = {mlops.data_sha256(a), mlops.data_sha256(a + 1), mlops.data_sha256(a.astype(np.int32)),
              mlops.data_sha256(a.reshape(2, 3))}
    assert len(hashes) == 4 and mlops.data_sha256(a.copy()) == mlops.data_sha256(a)


def test_pipeline_is_reproducible_and_writes_a_complete_record(tmp_path):
    config = mlops.RunConfig(epochs=3, hidden=(16,))
    first = mlops.run_pipeline(config, tmp_path / "a")
    second = mlops.run_pipeline(mlops.RunConfig.from_json((tmp_path / "a" / "config.json").read_text()), tmp_path / "b")
    assert first["metrics"] == second["metrics"] and first["data_sha256"] == second["data_sha256"]
    assert json.loads((tmp_path / "a" / "metrics.json").read_text()) == first["metrics"]
    assert {"config", "metrics", "data_sha256", "git", "python", "torch"} <= set(first)
    noisy = mlops.run_pipeline(mlops.RunConfig(epochs=3, hidden=(16,), label_noise=0.3), tmp_path / "c")
    assert noisy["data_sha256"] != first["data_sha256"]  # flipped labels are different data
    card = mlops.model_card(first)
    assert card.startswith("# Model card: digits-mlp") and f"{first['metrics']['accuracy']:.4f}" in card


def test_git_commit_outside_a_repository(tmp_path):
    assert mlops.git_commit(tmp_path) == {"commit": "unknown", "dirty": None}
