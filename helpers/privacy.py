"""Privacy and model protection, the building blocks of notebook 16.

Written by hand where the algorithm is the lesson: the linkage attack and k-anonymity by generalization
(Sweeney, 2002; Samarati, 2001), the Laplace mechanism, federated averaging (McMahan et al., 2017), the
loss-threshold membership-inference attack (Yeom et al., 2018), regex scanners for personal data and secrets,
and a hash-chained audit log. The cryptography itself (Fernet, Ed25519) comes from the ``cryptography``
package; this module only connects it to files.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from helpers.metrics import rank_auc
from helpers.validation import check_int, check_positive

# --- Files only their owner can read --------------------------------------------------------------

def write_private(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` with mode 0o600 (owner read/write only), atomically.

    The bytes go to a temporary file in the same folder, created private (``mkstemp``), which is then
    renamed over ``path``: at no moment is the file readable by others or half-written.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"path must be in an existing folder, {path.parent} does not exist")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.chmod(temporary, 0o600)  # mkstemp already does; say it where the reader looks
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


# --- Scanners for personal data and secrets -------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """One match of a scanner: its kind and where it is in the text."""

    kind: str
    start: int
    end: int
    text: str


def luhn_valid(number: str) -> bool:
    """Whether the digits of ``number`` (spaces and dashes ignored) pass the Luhn checksum of cards."""
    compact = re.sub(r"[ -]", "", number)
    if not compact.isdigit():
        return False
    digits = [int(c) for c in compact]
    total = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    return total % 10 == 0


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def national_id_valid(number: str) -> bool:
    """Whether an 18-character Chinese resident ID number has a valid check character (GB 11643-1999)."""
    if not re.fullmatch(r"\d{17}[\dXx]", number):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == number[17].upper()


PII_PATTERNS: dict[str, tuple[str, Callable[[str], bool] | None]] = {
    "email": (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", None),
    "national_id": (r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])", national_id_valid),
    "card": (r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])", luhn_valid),
    "phone": (r"(?<![\d+])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)", None),
}
"""Kind -> (regular expression, checksum that a match must also pass). Checked in this order; a match that
overlaps an earlier one is dropped (an ID number is not also a card number)."""

SECRET_PATTERNS: dict[str, tuple[str, Callable[[str], bool] | None]] = {
    "private_key": (r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----", None),
    "aws_access_key": (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", None),
    "fernet_key": (r"(?<![A-Za-z0-9_=-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])", None),
    "assigned_secret": (
        r"(?i)\b(?:password|passwd|secret|api_key|apikey|token)\b\s*[:=]\s*['\"][^'\"\s]{8,}['\"]", None),
}
"""Kind -> (regular expression, check): a Fernet key is 32 random bytes in URL-safe base64 (44 characters)."""


def _scan(text: str, patterns: Mapping[str, tuple[str, Callable[[str], bool] | None]]) -> list[Finding]:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    found: list[Finding] = []
    for kind, (pattern, check) in patterns.items():
        for match in re.finditer(pattern, text):
            overlaps = any(f.start < match.end() and match.start() < f.end for f in found)
            if not overlaps and (check is None or check(match.group())):
                found.append(Finding(kind, match.start(), match.end(), match.group()))
    return sorted(found, key=lambda f: f.start)


def find_pii(text: str, *, checksums: bool = True) -> list[Finding]:
    """E-mail addresses, Chinese ID numbers, payment cards and mobile numbers in ``text``.

    With ``checksums`` an ID number must have a valid check character and a card number must pass the
    Luhn test; without, any run of digits of the right length counts. Formats only: names and addresses
    need a named-entity model (Microsoft Presidio, for one).
    """
    patterns = PII_PATTERNS if checksums else {kind: (p, None) for kind, (p, _) in PII_PATTERNS.items()}
    return _scan(text, patterns)


def find_secrets(text: str) -> list[Finding]:
    """Private keys, AWS access keys, Fernet keys and secrets assigned to a variable named like one."""
    return _scan(text, SECRET_PATTERNS)


# --- A tamper-evident audit log -------------------------------------------------------------------

class AuditLog:
    """An append-only log whose entries are chained by SHA-256.

    Each entry's hash covers its fields and the previous entry's hash, so editing, deleting or reordering
    any entry breaks the chain from that point. Cutting off the tail, or rewriting the whole chain, is caught
    only against a copy of the last hash (``head``) kept somewhere the writer cannot change.
    """

    GENESIS = "0" * 64

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    @staticmethod
    def _digest(fields: Mapping[str, Any], previous: str) -> str:
        text = json.dumps(fields, sort_keys=True, default=str) + previous
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def head(self) -> str:
        """The hash of the last entry (the genesis value while the log is empty)."""
        return self.entries[-1]["hash"] if self.entries else self.GENESIS

    def append(self, **fields: Any) -> dict[str, Any]:
        """Add an entry with ``fields`` (who, what, on which resource, allowed or not...) and return it."""
        if not fields or {"hash", "previous"} & set(fields):
            raise ValueError("fields must be non-empty and avoid the reserved names 'hash' and 'previous'")
        entry = {**fields, "previous": self.head}
        entry["hash"] = self._digest(fields, entry["previous"])
        self.entries.append(entry)
        return entry

    def verify(self, expected_head: str | None = None) -> int | None:
        """Index of the first entry that breaks the chain, or None when it is intact.

        With ``expected_head`` (a copy of ``head`` kept elsewhere), a log whose tail was cut off or whose
        chain was recomputed reports ``len(entries)``.
        """
        previous = self.GENESIS
        for index, entry in enumerate(self.entries):
            fields = {k: v for k, v in entry.items() if k not in ("hash", "previous")}
            if entry.get("previous") != previous or entry.get("hash") != self._digest(fields, previous):
                return index
            previous = entry["hash"]
        if expected_head is not None and expected_head != previous:
            return len(self.entries)
        return None


# --- Linkage attacks and k-anonymity --------------------------------------------------------------

Hierarchy = Sequence[Callable[[pd.Series], pd.Series]]
"""Generalizations of one column, from the mildest (level 1) to the coarsest; level 0 is the column as is."""


def _check_columns(table: pd.DataFrame, columns: Sequence[str], name: str) -> list[str]:
    columns = list(columns)
    if not columns:
        raise ValueError(f"{name} must name at least one column")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} names columns the table lacks: {missing}")
    return columns


def group_sizes(table: pd.DataFrame, quasi_identifiers: Sequence[str]) -> pd.Series:
    """For each row, the number of rows that share its quasi-identifier values (its equivalence class)."""
    columns = _check_columns(table, quasi_identifiers, "quasi_identifiers")
    return table.groupby(columns, dropna=False, observed=True)[columns[0]].transform("size")


def generalize(table: pd.DataFrame, hierarchies: Mapping[str, Hierarchy],
               levels: Mapping[str, int]) -> pd.DataFrame:
    """A copy of ``table`` with each column in ``levels`` replaced by its generalization at that level."""
    out = table.copy()
    for column, level in levels.items():
        if column not in hierarchies or not 0 <= level <= len(hierarchies[column]):
            raise ValueError(f"levels[{column!r}] must be from 0 to the length of its hierarchy, got {level}")
        if level:
            out[column] = hierarchies[column][level - 1](table[column])
    return out


@dataclass(frozen=True)
class Anonymized:
    """Result of ``k_anonymize``: the released table, the generalization levels and the rows suppressed."""

    table: pd.DataFrame
    levels: dict[str, int]
    suppressed: int


def k_anonymize(table: pd.DataFrame, hierarchies: Mapping[str, Hierarchy], k: int, *,
                max_suppression: float = 0.0) -> Anonymized:
    """Full-domain generalization to k-anonymity (Samarati, 2001).

    Among the combinations of levels with the smallest total, keep those after which at most
    ``max_suppression`` of the rows sit in equivalence classes smaller than ``k``; those rows are removed
    (suppressed), and the combination leaving the most classes, then suppressing the fewest rows, wins.
    Every class of the result has at least k rows.
    """
    check_int("k", k, 1)
    if not 0 <= max_suppression < 1:
        raise ValueError(f"max_suppression must be in [0, 1), got {max_suppression!r}")
    columns = _check_columns(table, list(hierarchies), "hierarchies")
    if len(table) < k:
        raise ValueError(f"the table has {len(table)} rows, fewer than k={k}")
    # Each column at each level, coded once as integers; a combination's classes are then one np.unique away.
    codes = {c: [pd.factorize(generalize(table[[c]], hierarchies, {c: level})[c])[0]
                 for level in range(len(hierarchies[c]) + 1)] for c in columns}
    combos = itertools.product(*(range(len(hierarchies[c]) + 1) for c in columns))
    for _, group in itertools.groupby(sorted(combos, key=sum), key=sum):
        # (classes, -suppressed, levels, rows in small classes) of the best combination at this height
        best: tuple[int, int, dict[str, int], np.ndarray] | None = None
        for combo in group:
            levels = dict(zip(columns, combo, strict=True))
            key = np.stack([codes[c][level] for c, level in levels.items()], axis=1)
            _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
            small = counts[inverse.ravel()] < k
            if small.sum() <= max_suppression * len(table):
                candidate = (int((counts >= k).sum()), -int(small.sum()), levels, small)
                if best is None or candidate[:2] > best[:2]:
                    best = candidate
        if best is not None:
            _, _, levels, small = best
            return Anonymized(generalize(table, hierarchies, levels)[~small], levels, int(small.sum()))
    raise ValueError("no combination of levels reaches k; end every hierarchy with one value for all rows")


@dataclass(frozen=True)
class Linkage:
    """Result of ``linkage_attack``, as shares of the released rows."""

    unique: float
    """Rows that match exactly one public row, which is the right person: re-identified with certainty."""
    expected: float
    """Expected share re-identified by an attacker who picks one of the matching public rows at random."""


def linkage_attack(released: pd.DataFrame, public: pd.DataFrame, quasi_identifiers: Sequence[str],
                   identity: str) -> Linkage:
    """Join a de-identified table to a public one (a voter roll) on the quasi-identifiers (Sweeney, 2002).

    ``identity`` is a column both tables carry only to score the attack: the join never uses it.
    """
    columns = _check_columns(released, quasi_identifiers, "quasi_identifiers")
    _check_columns(public, [*columns, identity], "quasi_identifiers and identity")
    _check_columns(released, [identity], "identity")
    if released.empty:
        raise ValueError("released must have at least one row")
    candidates = public.groupby(columns, dropna=False, observed=True).size().rename("_candidates")
    scored = released[[*columns, identity]].merge(candidates.reset_index(), on=columns, how="left")
    truth = public[[*columns, identity]].drop_duplicates().assign(_present=True)
    scored = scored.merge(truth, on=[*columns, identity], how="left")
    present = scored["_present"].fillna(False).astype(bool).to_numpy()
    n = scored["_candidates"].fillna(0).to_numpy()
    unique = float(np.mean(present & (n == 1)))
    expected = float(np.mean(np.where(present, 1 / np.maximum(n, 1), 0.0)))
    return Linkage(unique, expected)


# --- Differential privacy -------------------------------------------------------------------------

def laplace_mechanism(value: float | np.ndarray, *, sensitivity: float, epsilon: float,
                      rng: np.random.Generator,
                      size: int | tuple[int, ...] | None = None) -> float | np.ndarray:
    """``value`` plus Laplace noise of scale ``sensitivity / epsilon`` (Dwork et al., 2006).

    epsilon-differentially private for a query whose answer moves by at most ``sensitivity`` when one
    person's record is added or removed (1 for a count). ``size`` draws that many independent answers.
    """
    check_positive("sensitivity", sensitivity)
    check_positive("epsilon", epsilon)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    shape = size if size is not None else np.shape(value) or None
    noise = rng.laplace(0.0, sensitivity / epsilon, size=shape)
    return value + noise


# --- Federated averaging --------------------------------------------------------------------------

def label_skew_partition(y: np.ndarray, n_clients: int, classes_per_client: int, *,
                         seed: int = 0) -> list[np.ndarray]:
    """Indices of ``y`` split among clients that each hold ``classes_per_client`` classes (non-IID data).

    Every class is held by the same number of clients, ``n_clients * classes_per_client / n_classes``, which
    share its examples at random; which classes go together is random too. As in McMahan et al. (2017),
    where each phone holds the digits of two classes.
    """
    check_int("n_clients", n_clients, 1)
    check_int("classes_per_client", classes_per_client, 1)
    y = np.asarray(y)
    classes = np.unique(y)
    slots = n_clients * classes_per_client
    if y.ndim != 1 or classes_per_client > len(classes) or slots % len(classes):
        raise ValueError(f"y must be 1-D and n_clients * classes_per_client a multiple of its {len(classes)} "
                         f"classes, got {n_clients} * {classes_per_client}")
    rng = np.random.default_rng(seed)
    copies = slots // len(classes)
    shards = [part for c in rng.permutation(classes)
              for part in np.array_split(rng.permutation(np.flatnonzero(y == c)), copies)]
    if any(len(shard) == 0 for shard in shards):
        raise ValueError("some class has fewer examples than the clients that should share it")
    # Shards are grouped by class; dealing them round-robin never gives a client two shards of one class.
    return [np.sort(np.concatenate(shards[i::n_clients])) for i in range(n_clients)]


def _average(tensors: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    if not tensors[0].is_floating_point():  # counters such as BatchNorm's num_batches_tracked
        return tensors[0]
    return sum(w * t for w, t in zip(weights, tensors, strict=True))


def fedavg(model: nn.Module, clients: Sequence[tuple[torch.Tensor, torch.Tensor]], *, rounds: int,
           local_epochs: int = 1, lr: float = 0.1, batch_size: int | None = None, seed: int = 0,
           on_round: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """Federated averaging (McMahan et al., 2017); ``model`` is updated in place and returned.

    Every round, each client trains a copy of the global model on its own ``(X, y)`` with plain SGD for
    ``local_epochs`` (mini-batches of ``batch_size``, the whole client when None), and the server replaces the
    global weights by the clients' weights averaged in proportion to their numbers of examples. Only weights
    travel; the examples never leave their client. ``on_round(round, model)`` runs after each round.
    """
    check_int("rounds", rounds, 1)
    check_int("local_epochs", local_epochs, 1)
    check_positive("lr", lr)
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
    if not clients or any(len(X) != len(y) or len(X) == 0 for X, y in clients):
        raise ValueError("clients must be a non-empty sequence of non-empty (X, y) pairs of equal length")
    sizes = torch.tensor([float(len(X)) for X, _ in clients])
    weights = (sizes / sizes.sum()).tolist()
    generator = torch.Generator().manual_seed(seed)
    for round_ in range(1, rounds + 1):
        states = []
        for X, y in clients:
            local = copy.deepcopy(model).train()
            optimizer = torch.optim.SGD(local.parameters(), lr=lr)
            step = batch_size or len(X)
            for _ in range(local_epochs):
                order = torch.randperm(len(X), generator=generator)
                for begin in range(0, len(X), step):
                    batch = order[begin:begin + step]
                    optimizer.zero_grad()
                    nn.functional.cross_entropy(local(X[batch]), y[batch]).backward()
                    optimizer.step()
            states.append(local.state_dict())
        averaged = {name: _average([state[name] for state in states], weights) for name in states[0]}
        model.load_state_dict(averaged)
        if on_round is not None:
            on_round(round_, model)
    return model


# --- Membership inference -------------------------------------------------------------------------

def per_example_loss(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Cross-entropy of each example under ``model`` in eval mode (what a loss-threshold attack uses)."""
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X and y must be non-empty and of equal length, got {len(X)} and {len(y)}")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss = nn.functional.cross_entropy(model(X), y, reduction="none").numpy()
    model.train(was_training)
    return loss


def membership_auc(model: nn.Module, members: tuple[torch.Tensor, torch.Tensor],
                   non_members: tuple[torch.Tensor, torch.Tensor]) -> float:
    """ROC-AUC of the loss-threshold membership-inference attack (Yeom et al., 2018).

    The attacker guesses "was in the training set" when the model's loss on a record is low. 0.5 is a coin
    toss; 1.0 tells every training record from every other.
    """
    member_loss, other_loss = per_example_loss(model, *members), per_example_loss(model, *non_members)
    truth = np.r_[np.ones(len(member_loss)), np.zeros(len(other_loss))]
    return rank_auc(truth, -np.r_[member_loss, other_loss])


# --- Signed model files ---------------------------------------------------------------------------

SIGNATURE_SUFFIX = ".sig"


def save_signed(tensors: Mapping[str, torch.Tensor], path: str | Path, private_key: Any) -> Path:
    """Save ``tensors`` with safetensors and an Ed25519 signature of the file's bytes beside it (``.sig``).

    ``private_key`` is a ``cryptography`` ``Ed25519PrivateKey``; in production it lives in a key management
    service or a hardware module, and only the public key ships with the code that loads models.
    """
    from safetensors.torch import save

    if not tensors:
        raise ValueError("tensors must hold at least one tensor")
    data = save({name: t.detach().contiguous() for name, t in tensors.items()})
    path = Path(path)
    path.write_bytes(data)
    path.with_name(path.name + SIGNATURE_SUFFIX).write_bytes(private_key.sign(data))
    return path


def load_verified(path: str | Path, public_key: Any) -> dict[str, torch.Tensor]:
    """The tensors of a file written by ``save_signed``, after checking its signature.

    The bytes are verified before any of them is parsed: a changed file, or one signed with another key,
    raises ``cryptography.exceptions.InvalidSignature``.
    """
    from safetensors.torch import load

    path = Path(path)
    data = path.read_bytes()
    public_key.verify(path.with_name(path.name + SIGNATURE_SUFFIX).read_bytes(), data)
    return load(data)
