import networkx as nx
import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_distances
from sklearn.semi_supervised import LabelSpreading

from helpers import graphs


def _random_graph(n: int = 30, p: float = 0.15, seed: int = 0) -> np.ndarray:
    return nx.to_numpy_array(nx.gnp_random_graph(n, p, seed=seed), weight=None)


KARATE = nx.to_numpy_array(nx.karate_club_graph(), weight=None)
PATH = nx.to_numpy_array(nx.path_graph(6))  # bipartite


@pytest.mark.parametrize("adj", [KARATE, PATH, _random_graph(), _random_graph(50, 0.05, seed=3)])
def test_normalized_adjacency_is_symmetric_with_eigenvalues_in_minus_one_one(adj):
    adj_hat = graphs.normalized_adjacency(adj)
    eigenvalues = np.linalg.eigvalsh(adj_hat)
    assert np.allclose(adj_hat, adj_hat.T)
    assert eigenvalues.max() == pytest.approx(1.0)
    assert eigenvalues.min() > -1 + 1e-6


def test_normalized_adjacency_matches_the_formula_and_its_top_eigenvector():
    tilde = KARATE + np.eye(34)
    d = tilde.sum(1)
    adj_hat = graphs.normalized_adjacency(KARATE)
    assert np.allclose(adj_hat, np.diag(d**-0.5) @ tilde @ np.diag(d**-0.5))
    assert np.allclose(adj_hat @ np.sqrt(d), np.sqrt(d))  # eigenvalue 1, eigenvector sqrt(degree)


def test_eigenvalue_one_has_the_multiplicity_of_the_connected_components():
    two_parts = np.zeros((10, 10))
    two_parts[:5, :5] = _random_graph(5, 1.0)
    two_parts[5:, 5:] = _random_graph(5, 1.0)
    eigenvalues = np.linalg.eigvalsh(graphs.normalized_adjacency(two_parts))
    assert np.isclose(eigenvalues, 1.0).sum() == 2


def test_without_self_loops_a_bipartite_graph_has_eigenvalue_minus_one_and_isolated_nodes_get_zero_rows():
    assert np.linalg.eigvalsh(graphs.normalized_adjacency(PATH, self_loops=False)).min() == pytest.approx(-1.0)
    isolated = np.zeros((3, 3))
    isolated[0, 1] = isolated[1, 0] = 1
    assert not graphs.normalized_adjacency(isolated, self_loops=False)[2].any()


@pytest.mark.parametrize("adj", [np.ones((2, 3)), np.array([[0, 1], [0, 0]]), -np.ones((2, 2)), np.zeros((0, 0))])
def test_normalized_adjacency_rejects_bad_matrices(adj):
    with pytest.raises(ValueError, match="adj"):
        graphs.normalized_adjacency(adj)


def _block_densities(adj: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    return adj[same & off_diagonal].mean(), adj[~same].mean()


def test_make_sbm_has_the_densities_of_networkx_stochastic_block_model():
    adj, features, labels = graphs.make_sbm([150, 150, 150], 0.1, 0.02, n_features=4, signal=2.0, seed=0)
    reference = nx.stochastic_block_model([150, 150, 150], [[0.1, 0.02, 0.02], [0.02, 0.1, 0.02], [0.02, 0.02, 0.1]],
                                          seed=0)
    ref_labels = np.array([reference.nodes[i]["block"] for i in reference])
    ours, theirs = _block_densities(adj, labels), _block_densities(nx.to_numpy_array(reference), ref_labels)
    assert ours == pytest.approx(theirs, abs=0.006)
    assert ours == pytest.approx((0.1, 0.02), abs=0.006)
    assert np.array_equal(adj, adj.T) and not np.diag(adj).any()
    assert features.shape == (450, 4) and np.bincount(labels).tolist() == [150] * 3
    means = np.stack([features[labels == k].mean(0) for k in range(3)])
    assert np.linalg.norm(means, axis=1) == pytest.approx([2.0] * 3, abs=0.3)


@pytest.mark.parametrize("kwargs", [dict(sizes=[10]), dict(p_in=1.5), dict(p_out=-0.1), dict(n_features=0),
                                    dict(signal=-1.0)])
def test_make_sbm_rejects_bad_arguments(kwargs):
    arguments = dict(sizes=[10, 10], p_in=0.5, p_out=0.1, n_features=2, signal=1.0) | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        graphs.make_sbm(arguments.pop("sizes"), arguments.pop("p_in"), arguments.pop("p_out"), **arguments)


@pytest.mark.parametrize("alpha", [0.2, 0.9])
def test_label_spreading_matches_scikit_learn(alpha):
    adj, _, labels = graphs.make_sbm([40, 40, 40], 0.15, 0.02, n_features=1, signal=0.0, seed=1)
    labelled = np.zeros(120, dtype=bool)
    labelled[[0, 1, 40, 41, 80, 81]] = True
    ours = graphs.label_spreading(adj, labels, labelled, alpha=alpha, tol=1e-12)

    def kernel(a, b):  # the nodes' "features" are their indices: the kernel looks the graph up
        return adj[np.ix_(a[:, 0].astype(int), b[:, 0].astype(int))]

    reference = LabelSpreading(kernel=kernel, alpha=alpha, max_iter=1000, tol=1e-12)
    reference.fit(np.arange(120.0)[:, None], np.where(labelled, labels, -1))
    assert np.allclose(ours, reference.label_distributions_, atol=1e-6)
    assert (ours.argmax(1) == labels).mean() > 0.8


def test_label_spreading_rejects_bad_input():
    labels, labelled = np.zeros(34, dtype=int), np.zeros(34, dtype=bool)
    with pytest.raises(ValueError, match="at least one"):
        graphs.label_spreading(KARATE, labels, labelled)
    labelled[0] = True
    with pytest.raises(ValueError, match="alpha"):
        graphs.label_spreading(KARATE, labels, labelled, alpha=1.0)
    with pytest.raises(ValueError, match="one entry per node"):
        graphs.label_spreading(KARATE, labels[:5], labelled)


def test_dirichlet_energy_is_the_sum_over_edges_and_vanishes_on_sqrt_degree():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((34, 3))
    tilde = KARATE + np.eye(34)
    scaled = h / np.sqrt(tilde.sum(1))[:, None]
    by_edges = 0.5 * sum(tilde[i, j] * ((scaled[i] - scaled[j]) ** 2).sum() for i in range(34) for j in range(34))
    assert graphs.dirichlet_energy(h, KARATE, normalized=False) == pytest.approx(by_edges)
    assert graphs.dirichlet_energy(h, KARATE) == pytest.approx(by_edges / (h**2).sum())
    smooth = np.sqrt(tilde.sum(1))[:, None] * rng.standard_normal((1, 3))
    assert graphs.dirichlet_energy(smooth, KARATE) == pytest.approx(0.0, abs=1e-12)


def test_dirichlet_energy_falls_under_propagation_and_stays_below_two():
    adj_hat = graphs.normalized_adjacency(KARATE)
    h = np.random.default_rng(1).standard_normal((34, 4))
    energies = [graphs.dirichlet_energy(np.linalg.matrix_power(adj_hat, k) @ h, KARATE) for k in range(6)]
    assert all(a > b for a, b in zip(energies, energies[1:], strict=False))
    assert 0 <= energies[-1] < energies[0] < 2
    with pytest.raises(ValueError, match="one row per node"):
        graphs.dirichlet_energy(h[:5], KARATE)


def test_mean_average_distance_matches_scikit_learn_cosine_distances():
    h = np.random.default_rng(2).standard_normal((20, 5))
    distances = cosine_distances(h)
    assert graphs.mean_average_distance(h) == pytest.approx(distances[~np.eye(20, dtype=bool)].mean())
    assert graphs.mean_average_distance(np.ones((5, 3)) * np.arange(1, 6)[:, None]) == pytest.approx(0.0, abs=1e-12)
    assert graphs.mean_average_distance(np.r_[np.eye(2), np.zeros((1, 2))]) == pytest.approx(1.0)  # zero row skipped
    with pytest.raises(ValueError, match="two non-zero rows"):
        graphs.mean_average_distance(np.zeros((3, 2)))


def test_gcn_layer_is_the_dense_formula_and_gcn_returns_its_hidden_embeddings():
    torch.manual_seed(0)
    adj_hat = torch.tensor(graphs.normalized_adjacency(KARATE), dtype=torch.float32)
    x = torch.randn(34, 5)
    layer = graphs.GCNLayer(5, 3)
    torch.nn.init.normal_(layer.bias)
    expected = adj_hat @ x @ layer.lin.weight.T + layer.bias
    assert torch.allclose(layer(x, adj_hat), expected, atol=1e-6)
    model = graphs.GCN(5, 8, 2, n_layers=3).eval()
    logits, hidden = model(x, adj_hat, return_hidden=True)
    assert logits.shape == (34, 2) and hidden.shape == (34, 8) and (hidden >= 0).all()
    with pytest.raises(ValueError, match="n_layers"):
        graphs.GCN(5, 8, 2, n_layers=0)


def test_gcn_layer_matches_pytorch_geometric_gcnconv():
    pyg = pytest.importorskip("torch_geometric.nn", reason="PyTorch Geometric is not installed")
    torch.manual_seed(1)
    x = torch.randn(34, 6)
    ours, theirs = graphs.GCNLayer(6, 4), pyg.GCNConv(6, 4)
    torch.nn.init.normal_(ours.bias)
    with torch.no_grad():
        theirs.lin.weight.copy_(ours.lin.weight)
        theirs.bias.copy_(ours.bias)
    adj_hat = torch.tensor(graphs.normalized_adjacency(KARATE), dtype=torch.float32)
    assert torch.allclose(ours(x, adj_hat), theirs(x, graphs.edge_index(KARATE)), atol=1e-5)


def test_edge_index_lists_every_edge_in_both_directions():
    index = graphs.edge_index(KARATE)
    assert index.shape == (2, 2 * 78) and index.dtype == torch.long
    rebuilt = np.zeros((34, 34))
    rebuilt[index[0].numpy(), index[1].numpy()] = 1
    assert np.array_equal(rebuilt, KARATE)


def test_training_uses_the_labelled_nodes_only():
    adj, features, labels = graphs.make_sbm([30, 30], 0.3, 0.02, n_features=4, signal=3.0, seed=0)
    x, adj_hat = torch.tensor(features, dtype=torch.float32), torch.tensor(graphs.normalized_adjacency(adj),
                                                                            dtype=torch.float32)
    mask = torch.zeros(60, dtype=torch.bool)
    mask[[0, 1, 2, 30, 31, 32]] = True
    y = torch.tensor(labels)
    scrambled = torch.where(mask, y, 1 - y)  # every unlabelled node's label flipped
    models = []
    for target in (y, scrambled):
        torch.manual_seed(0)
        models.append(graphs.train_node_classifier(graphs.GCN(4, 8, 2, dropout=0.0), lambda m: m(x, adj_hat),
                                                   target, mask, epochs=50))
    assert all(torch.equal(a, b) for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True))
    with torch.no_grad():
        assert (models[0](x, adj_hat).argmax(1) == y).float().mean() > 0.9
    with pytest.raises(ValueError, match="train_mask"):
        graphs.train_node_classifier(models[0], lambda m: m(x, adj_hat), y, torch.zeros(60, dtype=torch.bool))
