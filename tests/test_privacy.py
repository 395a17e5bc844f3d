import os
import stat

import numpy as np
import pandas as pd
import pytest
import torch
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from torch import nn

from helpers import privacy as pv

torch.set_num_threads(1)


# --- write_private --------------------------------------------------------------------------------

def test_write_private_gives_the_owner_alone_access_even_under_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        path = pv.write_private(tmp_path / "secret.bin", b"payload")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"payload"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.bin"]  # no temporary file left behind


def test_write_private_replaces_a_readable_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old")
    path.chmod(0o644)
    pv.write_private(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_private_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="bytes"):
        pv.write_private(tmp_path / "x", "text")
    with pytest.raises(ValueError, match="folder"):
        pv.write_private(tmp_path / "missing" / "x", b"1")


# --- scanners -------------------------------------------------------------------------------------

def test_luhn_and_national_id_checksums():
    assert pv.luhn_valid("4111 1111 1111 1111") and pv.luhn_valid("79927398713")
    assert not pv.luhn_valid("4111 1111 1111 1112") and not pv.luhn_valid("41a1") and not pv.luhn_valid("")
    assert pv.national_id_valid("11010519491231002X")  # the standard's worked example
    assert not pv.national_id_valid("110105194912310021") and not pv.national_id_valid("1234")


def test_find_pii_finds_each_kind_and_skips_failed_checksums():
    text = ("mail li.wei@example.com.cn, phone +86 138 0013 8000, id 11010519491231002X, "
            "card 4111-1111-1111-1111, order 4111-1111-1111-1112, product 20231108")
    kinds = [(f.kind, f.text) for f in pv.find_pii(text)]
    assert kinds == [("email", "li.wei@example.com.cn"), ("phone", "+86 138 0013 8000"),
                     ("national_id", "11010519491231002X"), ("card", "4111-1111-1111-1111")]


def test_find_pii_without_checksums_flags_any_run_of_digits_of_the_right_length():
    text = "order 4111-1111-1111-1112, tracking 110105194912310021"
    kinds = [f.kind for f in pv.find_pii(text, checksums=False)]
    assert kinds == ["card", "national_id"]


def test_find_pii_does_not_report_an_id_number_twice():
    assert [f.kind for f in pv.find_pii("11010519491231002X")] == ["national_id"]


def test_find_secrets_finds_keys_and_assignments():
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    text = (f'KEY = "{key}"\naws = AKIAABCDEFGHIJKLMNOP\n-----BEGIN PRIVATE KEY-----\n'
            'password = "hunter2hunter2"\nos.environ["MLLAB_DEMO_KEY"]')
    assert {f.kind for f in pv.find_secrets(text)} == {"fernet_key", "aws_access_key", "private_key",
                                                        "assigned_secret"}
    assert pv.find_secrets('key = os.environ["MLLAB_DEMO_KEY"]; n = 3') == []


def test_scanners_need_text():
    with pytest.raises(TypeError, match="str"):
        pv.find_pii(b"bytes")


# --- audit log ------------------------------------------------------------------------------------

def _log(n=4):
    log = pv.AuditLog()
    for i in range(n):
        log.append(user=f"user{i}", action="read", resource="table", allowed=i % 2 == 0)
    return log


def test_audit_log_verifies_and_finds_the_first_edited_entry():
    log = _log()
    assert log.verify() is None and log.verify(expected_head=log.head) is None
    log.entries[2]["user"] = "someone else"
    assert log.verify() == 2


def test_audit_log_detects_deletion_and_reordering():
    log = _log()
    del log.entries[1]
    assert log.verify() == 1
    log = _log()
    log.entries[0], log.entries[1] = log.entries[1], log.entries[0]
    assert log.verify() == 0


def test_audit_log_truncation_is_caught_only_against_a_kept_head():
    log = _log()
    head = log.head
    log.entries.pop()
    assert log.verify() is None
    assert log.verify(expected_head=head) == len(log.entries)


def test_audit_log_rejects_reserved_or_empty_fields():
    with pytest.raises(ValueError, match="reserved"):
        pv.AuditLog().append(hash="x")
    with pytest.raises(ValueError, match="non-empty"):
        pv.AuditLog().append()


# --- k-anonymity and linkage ----------------------------------------------------------------------

def _people(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"person": np.arange(n), "zip": rng.choice(["02138", "02139", "02141", "02142"], n),
                         "age": rng.integers(20, 80, n), "sex": rng.choice(["F", "M"], n),
                         "diagnosis": rng.choice(["flu", "asthma", "diabetes"], n)})


HIERARCHIES = {"zip": [lambda s: s.str[:4] + "*", lambda s: pd.Series("*", index=s.index)],
               "age": [lambda s: s // 10 * 10, lambda s: s // 30 * 30, lambda s: pd.Series(0, index=s.index)],
               "sex": [lambda s: pd.Series("*", index=s.index)]}
QI = ["zip", "age", "sex"]


@pytest.mark.parametrize("k", [1, 2, 5, 20])
def test_k_anonymize_leaves_every_class_with_at_least_k_rows(k):
    table = _people()
    result = pv.k_anonymize(table, HIERARCHIES, k, max_suppression=0.02)
    assert pv.group_sizes(result.table, QI).min() >= k
    assert result.suppressed <= 0.02 * len(table) and len(result.table) + result.suppressed == len(table)
    if k == 1:
        assert result.levels == {"zip": 0, "age": 0, "sex": 0} and result.suppressed == 0


def test_k_anonymize_takes_the_least_generalization_that_works():
    table = _people()
    result = pv.k_anonymize(table, HIERARCHIES, 5)
    lower = [c for c in QI if result.levels[c] > 0]
    for column in lower:  # one level less on any column breaks k-anonymity
        levels = {**result.levels, column: result.levels[column] - 1}
        assert pv.group_sizes(pv.generalize(table, HIERARCHIES, levels), QI).min() < 5


def test_k_anonymize_rejects_bad_input():
    table = _people(10)
    with pytest.raises(ValueError, match="k must"):
        pv.k_anonymize(table, HIERARCHIES, 0)
    with pytest.raises(ValueError, match="fewer than k"):
        pv.k_anonymize(table, HIERARCHIES, 11)
    with pytest.raises(ValueError, match="lacks"):
        pv.k_anonymize(table, {"height": []}, 2)
    with pytest.raises(ValueError, match="max_suppression"):
        pv.k_anonymize(table, HIERARCHIES, 2, max_suppression=1.0)
    with pytest.raises(ValueError, match="levels"):
        pv.generalize(table, HIERARCHIES, {"sex": 2})


def test_linkage_attack_on_raw_and_generalized_tables():
    people = _people()
    released = people.sample(200, random_state=0)
    raw = pv.linkage_attack(released, people, QI, "person")
    sizes = pv.group_sizes(people, QI).loc[released.index].to_numpy()
    assert raw.unique == pytest.approx(np.mean(sizes == 1))
    assert raw.expected == pytest.approx(np.mean(1 / sizes))
    result = pv.k_anonymize(released, HIERARCHIES, 10)
    public = pv.generalize(people, HIERARCHIES, result.levels)
    safe = pv.linkage_attack(result.table, public, QI, "person")
    assert safe.unique == 0 and safe.expected <= 1 / 10


def test_linkage_attack_rejects_bad_input():
    people = _people()
    with pytest.raises(ValueError, match="at least one row"):
        pv.linkage_attack(people.iloc[:0], people, QI, "person")
    with pytest.raises(ValueError, match="identity"):
        pv.linkage_attack(people, people.drop(columns="person"), QI, "person")
    with pytest.raises(ValueError, match="at least one column"):
        pv.group_sizes(people, [])


def test_linkage_attack_misses_people_absent_from_the_public_table():
    people = _people()
    attack = pv.linkage_attack(people, people.iloc[:0], QI, "person")
    assert attack.unique == 0 and attack.expected == 0


# --- Laplace mechanism ----------------------------------------------------------------------------

@pytest.mark.parametrize("epsilon", [0.1, 1.0, 5.0])
def test_laplace_noise_has_scale_sensitivity_over_epsilon(epsilon):
    rng = np.random.default_rng(0)
    answers = pv.laplace_mechanism(100.0, sensitivity=2.0, epsilon=epsilon, rng=rng, size=200_000)
    noise = answers - 100.0
    assert abs(noise.mean()) < 0.02 * 2 / epsilon
    assert np.abs(noise).mean() == pytest.approx(2 / epsilon, rel=0.01)  # E|Laplace(b)| = b


def test_laplace_mechanism_keeps_the_shape_of_its_input():
    rng = np.random.default_rng(0)
    assert np.ndim(pv.laplace_mechanism(3.0, sensitivity=1, epsilon=1, rng=rng)) == 0
    assert pv.laplace_mechanism(np.zeros(4), sensitivity=1, epsilon=1, rng=rng).shape == (4,)


@pytest.mark.parametrize(("kwargs", "message"), [({"epsilon": 0}, "epsilon"),
                                                 ({"sensitivity": -1}, "sensitivity"), ({"rng": 0}, "rng")])
def test_laplace_mechanism_rejects_bad_input(kwargs, message):
    arguments = {"sensitivity": 1.0, "epsilon": 1.0, "rng": np.random.default_rng(0), **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        pv.laplace_mechanism(1.0, **arguments)


# --- federated averaging --------------------------------------------------------------------------

def _data(n=120, seed=0):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 5, generator=generator)
    return X, (X[:, 0] + X[:, 1] > 0).long()


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))


def _centralized(model, X, y, steps, lr):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()
    return model


def test_fedavg_with_one_client_is_centralized_gradient_descent():
    X, y = _data()
    federated = pv.fedavg(_net(), [(X, y)], rounds=4, local_epochs=3, lr=0.5)
    central = _centralized(_net(), X, y, steps=12, lr=0.5)
    for a, b in zip(federated.parameters(), central.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)  # the same steps; only the order of the mean's sum differs


def test_one_local_step_per_round_averages_to_one_step_on_the_pooled_data():
    X, y = _data()
    clients = [(X[:40], y[:40]), (X[40:], y[40:])]  # unequal sizes: the weights must follow them
    federated = pv.fedavg(_net(), clients, rounds=1, lr=0.5)
    central = _centralized(_net(), X, y, steps=1, lr=0.5)
    for a, b in zip(federated.parameters(), central.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_fedavg_calls_back_every_round_and_learns():
    X, y = _data()
    seen = []
    model = pv.fedavg(_net(), [(X[:60], y[:60]), (X[60:], y[60:])], rounds=5, local_epochs=2, lr=0.5,
                      batch_size=16, on_round=lambda r, m: seen.append(r))
    assert seen == [1, 2, 3, 4, 5]
    assert (model(X).argmax(1) == y).float().mean() > 0.85


@pytest.mark.parametrize(("kwargs", "message"), [({"rounds": 0}, "rounds"), ({"lr": 0}, "lr"),
                                                 ({"batch_size": 0}, "batch_size"),
                                                 ({"clients": []}, "clients")])
def test_fedavg_rejects_bad_input(kwargs, message):
    X, y = _data()
    arguments = {"clients": [(X, y)], "rounds": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        pv.fedavg(_net(), **arguments)


@pytest.mark.parametrize(("n_clients", "per_client"), [(5, 2), (10, 3), (2, 10)])
def test_label_skew_partition_gives_each_client_its_own_classes(n_clients, per_client):
    y = np.random.default_rng(0).permutation(np.repeat(np.arange(10), 30))[:290]  # unequal class sizes
    parts = pv.label_skew_partition(y, n_clients, per_client, seed=1)
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))  # disjoint and complete
    assert all(len(np.unique(y[p])) == per_client for p in parts)
    holders = [sum(c in set(y[p]) for p in parts) for c in range(10)]
    assert holders == [n_clients * per_client // 10] * 10


def test_label_skew_partition_draws_which_classes_go_together():
    y = np.repeat(np.arange(10), 30)
    draws = [pv.label_skew_partition(y, 5, 2, seed=s) for s in range(5)]
    pairs = {tuple(tuple(np.unique(y[p])) for p in parts) for parts in draws}
    assert len(pairs) > 1


@pytest.mark.parametrize(("y", "n_clients", "per_client", "message"), [
    (np.repeat(np.arange(10), 30), 0, 2, "n_clients"), (np.repeat(np.arange(10), 30), 3, 3, "multiple"),
    (np.repeat(np.arange(10), 30), 5, 11, "multiple"), (np.r_[np.zeros(30), [1]], 4, 1, "fewer examples"),
])
def test_label_skew_partition_rejects_bad_input(y, n_clients, per_client, message):
    with pytest.raises(ValueError, match=message):
        pv.label_skew_partition(y, n_clients, per_client)


# --- membership inference -------------------------------------------------------------------------

def test_membership_auc_of_a_memorizing_model_and_of_a_coin():
    X, _ = _data(200)
    y = torch.randint(0, 2, (200,), generator=torch.Generator().manual_seed(1))  # random labels to memorize
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 128), nn.ReLU(), nn.Linear(128, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(500):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X[:100]), y[:100]).backward()
        optimizer.step()
    assert pv.membership_auc(model, (X[:100], y[:100]), (X[100:], y[100:])) > 0.8
    coin = pv.membership_auc(model, (X[100:150], y[100:150]), (X[150:], y[150:]))  # both non-members
    assert coin == pytest.approx(0.5, abs=0.15)
    assert model.training  # the mode the caller set is kept


def test_per_example_loss_rejects_mismatched_input():
    with pytest.raises(ValueError, match="equal length"):
        pv.per_example_loss(_net(), torch.zeros(3, 5), torch.zeros(2, dtype=torch.long))


# --- signed model files ---------------------------------------------------------------------------

def test_signed_weights_round_trip_and_every_tampering_is_rejected(tmp_path):
    key = Ed25519PrivateKey.generate()
    weights = {name: p.detach() for name, p in _net().state_dict().items()}
    path = pv.save_signed(weights, tmp_path / "model.safetensors", key)
    loaded = pv.load_verified(path, key.public_key())
    assert all(torch.equal(loaded[k], weights[k]) for k in weights)
    with pytest.raises(InvalidSignature):
        pv.load_verified(path, Ed25519PrivateKey.generate().public_key())
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidSignature):
        pv.load_verified(path, key.public_key())


def test_save_signed_needs_tensors(tmp_path):
    with pytest.raises(ValueError, match="tensors"):
        pv.save_signed({}, tmp_path / "m.safetensors", Ed25519PrivateKey.generate())
