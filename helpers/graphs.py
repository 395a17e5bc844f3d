"""Graph neural networks from scratch: the GCN propagation matrix, a dense GCN, label spreading,
a stochastic block model with node features, and two measures of over-smoothing.

Written by hand because the formulas are the lesson and each is a few lines; the tests check them
against their definitions and against the libraries they imitate (networkx's stochastic block
model, scikit-learn's ``LabelSpreading``, PyTorch Geometric's ``GCNConv`` where it is installed).
Graphs are dense NumPy adjacency matrices: the course's graphs have at most a few hundred nodes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from helpers.validation import check_int


def _check_adjacency(adj: np.ndarray) -> np.ndarray:
    adj = np.asarray(adj, dtype=float)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1] or adj.shape[0] == 0:
        raise ValueError(f"adj must be a non-empty square matrix, got shape {adj.shape}")
    if (adj < 0).any() or not np.allclose(adj, adj.T):
        raise ValueError("adj must be symmetric with non-negative weights (an undirected graph)")
    return adj


def normalized_adjacency(adj: np.ndarray, *, self_loops: bool = True) -> np.ndarray:
    """The GCN propagation matrix Â = D^-1/2 (A + I) D^-1/2 (Kipf & Welling, 2017), D the degrees of A + I.

    With ``self_loops=False`` it is D^-1/2 A D^-1/2; a node without edges then gets a zero row.
    """
    adj = _check_adjacency(adj)
    if self_loops:
        adj = adj - np.diag(np.diag(adj)) + np.eye(len(adj))
    degree = adj.sum(axis=1)
    inv_sqrt = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    return inv_sqrt[:, None] * adj * inv_sqrt[None, :]


def make_sbm(
    sizes: Sequence[int],
    p_in: float,
    p_out: float,
    *,
    n_features: int,
    signal: float,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stochastic block model with Gaussian node features: ``(adj, features, labels)``.

    Nodes of the same block are linked with probability ``p_in``, of different blocks with ``p_out``
    (independently, no self-loops). Each block has a random feature mean of norm ``signal``; every
    node's features are its block's mean plus standard normal noise, so ``signal`` sets how much
    the features alone say about the block.
    """
    if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"sizes must be at least two ints >= 1, got {sizes!r}")
    for name, p in (("p_in", p_in), ("p_out", p_out)):
        if not 0 <= p <= 1:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    check_int("n_features", n_features, 1)
    if signal < 0:
        raise ValueError(f"signal must be >= 0, got {signal!r}")
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    n = len(labels)
    probability = np.where(labels[:, None] == labels[None, :], p_in, p_out)
    upper = np.triu(rng.random((n, n)) < probability, k=1)
    adj = (upper | upper.T).astype(float)
    means = rng.standard_normal((len(sizes), n_features))
    means *= signal / np.linalg.norm(means, axis=1, keepdims=True)
    features = means[labels] + rng.standard_normal((n, n_features))
    return adj, features, labels


def label_spreading(
    adj: np.ndarray,
    labels: np.ndarray,
    labelled: np.ndarray,
    *,
    alpha: float = 0.9,
    max_iter: int = 1000,
    tol: float = 1e-6,
) -> np.ndarray:
    """Label spreading (Zhou et al., 2004): class distributions of every node, shape (nodes, classes).

    Iterates F ← α S F + (1 − α) Y with S = D^-1/2 A D^-1/2 and Y the one-hot labels of the
    ``labelled`` nodes (zero rows elsewhere), until F moves less than ``tol``; each row is then
    normalized to sum to 1. ``labels`` of unlabelled nodes are ignored.
    """
    adj = _check_adjacency(adj)
    labels, labelled = np.asarray(labels), np.asarray(labelled, dtype=bool)
    if labels.shape != (len(adj),) or labelled.shape != (len(adj),):
        raise ValueError(f"labels and labelled must have one entry per node ({len(adj)})")
    if not labelled.any():
        raise ValueError("labelled must mark at least one node")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    check_int("max_iter", max_iter, 1)
    n_classes = int(labels[labelled].max()) + 1
    seeds = np.zeros((len(adj), n_classes))
    seeds[np.flatnonzero(labelled), labels[labelled]] = 1.0
    spread = normalized_adjacency(adj, self_loops=False)
    scores = seeds.copy()
    for _ in range(max_iter):
        updated = alpha * spread @ scores + (1 - alpha) * seeds
        change = np.abs(updated - scores).sum()
        scores = updated
        if change < tol:
            break
    totals = scores.sum(axis=1, keepdims=True)
    return np.divide(scores, totals, out=np.full_like(scores, 1 / n_classes), where=totals > 0)


def dirichlet_energy(h: np.ndarray, adj: np.ndarray, *, normalized: bool = True) -> float:
    """Dirichlet energy of node embeddings ``h`` (nodes x features) on the graph with self-loops:

    E(H) = trace(Hᵀ (I − Â) H) = ½ Σ_ij ã_ij ‖h_i / √d̃_i − h_j / √d̃_j‖², with Ã = A + I.

    It is 0 when every row is proportional to √d̃_i, the state repeated propagation converges to.
    With ``normalized=True`` it is divided by ‖H‖²_F, which makes it a Rayleigh quotient in [0, 2)
    that ignores the embeddings' scale.
    """
    h = np.asarray(h, dtype=float)
    laplacian = np.eye(len(adj)) - normalized_adjacency(adj)
    if h.ndim != 2 or h.shape[0] != len(laplacian):
        raise ValueError(f"h must be a 2-D array with one row per node ({len(laplacian)}), got shape {h.shape}")
    energy = max(float(np.einsum("if,ij,jf->", h, laplacian, h)), 0.0)  # I − Â is positive semi-definite: clip rounding
    if not normalized:
        return energy
    norm = float((h**2).sum())
    return energy / norm if norm > 0 else 0.0


def mean_average_distance(h: np.ndarray) -> float:
    """Mean cosine distance over all pairs of distinct nodes (MAD, Chen et al., 2020); zero rows are skipped.

    It falls towards 0 as the embeddings of all nodes point the same way.
    """
    h = np.asarray(h, dtype=float)
    if h.ndim != 2:
        raise ValueError(f"h must be a 2-D array (nodes x features), got shape {h.shape}")
    norms = np.linalg.norm(h, axis=1)
    unit = h[norms > 0] / norms[norms > 0, None]
    if len(unit) < 2:
        raise ValueError("h needs at least two non-zero rows")
    cosine = unit @ unit.T
    off_diagonal = ~np.eye(len(unit), dtype=bool)
    return float((1 - cosine[off_diagonal]).mean())


class GCNLayer(nn.Module):
    """One graph convolution, H' = Â H W + b, with Â given to ``forward`` as a dense tensor.

    Laid out like PyTorch Geometric's ``GCNConv``: a bias-free ``lin`` applied first, then the
    propagation, then ``bias``, so weights copy across one to one.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        check_int("in_features", in_features, 1)
        check_int("out_features", out_features, 1)
        self.lin = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor, adj_hat: torch.Tensor) -> torch.Tensor:
        return adj_hat @ self.lin(x) + self.bias


class GCN(nn.Module):
    """A stack of ``GCNLayer``: ReLU and dropout between layers, logits out.

    ``forward(x, adj_hat, return_hidden=True)`` also returns the input of the last layer, the node
    embeddings whose over-smoothing the notebook measures.
    """

    def __init__(self, in_features: int, hidden: int, out_features: int, *, n_layers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        check_int("n_layers", n_layers, 1)
        check_int("hidden", hidden, 1)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        widths = [in_features] + [hidden] * (n_layers - 1) + [out_features]
        self.layers = nn.ModuleList(GCNLayer(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, adj_hat: torch.Tensor, *, return_hidden: bool = False):
        for layer in self.layers[:-1]:
            x = torch.relu(layer(self.dropout(x), adj_hat))
        out = self.layers[-1](self.dropout(x), adj_hat)
        return (out, x) if return_hidden else out


def edge_index(adj: np.ndarray) -> torch.Tensor:
    """The graph in PyTorch Geometric's format: a (2, edges) long tensor listing both directions."""
    rows, cols = np.nonzero(np.triu(_check_adjacency(adj), k=1))
    return torch.as_tensor(np.stack([np.r_[rows, cols], np.r_[cols, rows]]), dtype=torch.long)


def train_node_classifier(
    model: nn.Module,
    forward: object,
    labels: torch.Tensor,
    train_mask: torch.Tensor,
    *,
    epochs: int = 200,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
) -> nn.Module:
    """Full-batch training on the labelled nodes only: Adam, cross-entropy, ``epochs`` steps.

    ``forward(model)`` returns the logits of every node, so the same loop trains a GCN (which sees
    the whole graph) and an MLP (which sees node features only). Returns the model in eval mode.
    """
    if not callable(forward):
        raise TypeError("forward must be a callable: model -> logits of every node")
    check_int("epochs", epochs, 1)
    if train_mask.dtype != torch.bool or not train_mask.any():
        raise ValueError("train_mask must be a boolean tensor marking at least one node")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(forward(model)[train_mask], labels[train_mask])
        loss.backward()
        optimizer.step()
    return model.eval()
