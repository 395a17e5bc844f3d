import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from helpers import scratch

RNG = np.random.default_rng(0)


def _t(array: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(array, dtype=torch.float64, requires_grad=grad)


# --- softmax, cross-entropy, gradient checking ---------------------------------------------------


def test_softmax_matches_torch_and_survives_huge_logits():
    z = RNG.normal(size=(5, 7)) * 3
    assert np.allclose(scratch.softmax(z), torch.softmax(_t(z), dim=1).numpy(), atol=1e-15)
    huge = np.array([[1000.0, 0.0, -1000.0]])
    assert np.allclose(scratch.softmax(huge), [[1.0, 0.0, 0.0]])
    assert np.allclose(scratch.softmax(z, axis=0).sum(axis=0), 1.0)


def test_cross_entropy_and_its_gradient_match_torch():
    logits, y = RNG.normal(size=(6, 4)) * 50, RNG.integers(0, 4, 6)  # large logits: still finite
    t = _t(logits, grad=True)
    loss = F.cross_entropy(t, torch.tensor(y))
    loss.backward()
    assert scratch.cross_entropy(logits, y) == pytest.approx(loss.item(), rel=1e-12)
    assert np.allclose(scratch.softmax_cross_entropy_backward(logits, y), t.grad.numpy(), atol=1e-14)


@pytest.mark.parametrize("y", [np.array([0, 3]), np.array([0.0, 1.0]), np.array([0, 1, 1]), np.array([-1, 0])])
def test_cross_entropy_rejects_bad_labels(y):
    with pytest.raises(ValueError, match="y must"):
        scratch.cross_entropy(np.zeros((2, 3)), y)


def test_numerical_gradient_of_a_quadratic_and_restores_x():
    a = RNG.normal(size=(3, 3))
    x = RNG.normal(size=(3, 2))
    before = x.copy()
    grad = scratch.numerical_gradient(lambda: float(np.sum((a @ x) ** 2)), x)
    assert np.array_equal(x, before)
    assert scratch.relative_error(grad, 2 * a.T @ (a @ x)) < 1e-9


def test_numerical_gradient_refuses_float32_and_bad_eps():
    with pytest.raises(ValueError, match="float64"):
        scratch.numerical_gradient(lambda: 0.0, np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="eps"):
        scratch.numerical_gradient(lambda: 0.0, np.zeros(3), eps=0)


def test_relative_error_values_and_shape_check():
    a = np.array([1.0, 2.0])
    assert scratch.relative_error(a, a) == 0.0
    assert scratch.relative_error(a, -a) == 1.0
    assert scratch.relative_error(np.zeros(2), np.zeros(2)) == 0.0
    assert np.isnan(scratch.relative_error(a, np.array([np.nan, 1.0])))
    with pytest.raises(ValueError, match="same shape"):
        scratch.relative_error(a, a[None])


# --- the MLP ---------------------------------------------------------------------------------------


def _mlp_and_data(n=16, d=5, h=7, c=3):
    model = scratch.NumpyMLP(d, h, c, seed=1)
    for name in ("b1", "b2"):  # non-zero biases, so their gradients are tested too
        model.params[name] += RNG.normal(size=model.params[name].shape) * 0.1
    return model, RNG.normal(size=(n, d)), RNG.integers(0, c, n)


def test_mlp_gradients_pass_the_finite_difference_check():
    model, X, y = _mlp_and_data()
    _, grads = model.gradients(X, y)
    for name, param in model.params.items():
        numeric = scratch.numerical_gradient(lambda: model.loss(X, y), param)
        assert scratch.relative_error(grads[name], numeric) < 1e-7, name


def test_mlp_gradients_equal_autograd_on_the_same_weights():
    model, X, y = _mlp_and_data()
    loss, grads = model.gradients(X, y)
    p = {name: _t(value, grad=True) for name, value in model.params.items()}
    logits = F.linear(torch.tanh(F.linear(_t(X), p["W1"], p["b1"])), p["W2"], p["b2"])
    reference = F.cross_entropy(logits, torch.tensor(y))
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-12)
    for name in p:
        assert np.allclose(grads[name], p[name].grad.numpy(), rtol=1e-10, atol=1e-14), name


def test_mlp_fits_a_nonlinear_toy_problem():
    X = RNG.uniform(-1, 1, (400, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)  # XOR: no linear model reaches 60 %
    model = scratch.NumpyMLP(2, 16, 2, seed=0)
    losses = model.fit(X, y, steps=1500, lr=1.0, batch_size=64, seed=0)
    assert np.mean(losses[-50:]) < 0.5 * losses[0]
    assert (model.predict(X) == y).mean() > 0.95


@pytest.mark.parametrize("args", [(0, 3, 2), (2, 3, 1), (2.0, 3, 2)])
def test_mlp_rejects_bad_sizes(args):
    with pytest.raises(ValueError):
        scratch.NumpyMLP(*args)


def test_mlp_fit_rejects_bad_arguments():
    model, X, y = _mlp_and_data()
    with pytest.raises(ValueError, match="steps"):
        model.fit(X, y, steps=0)
    with pytest.raises(ValueError, match="lr"):
        model.fit(X, y, steps=1, lr=0)


def test_linear_matches_torch_and_checks_shapes():
    x, w, b = RNG.normal(size=(4, 3)), RNG.normal(size=(5, 3)), RNG.normal(size=5)
    assert np.allclose(scratch.linear(x, w, b), F.linear(_t(x), _t(w), _t(b)).numpy())
    assert np.allclose(scratch.linear(x, w), x @ w.T)
    with pytest.raises(ValueError, match="features"):
        scratch.linear(x, w.T)
    with pytest.raises(ValueError, match="numeric"):
        scratch.linear(np.array([["a", "b", "c"]]), w)


# --- convolution and pooling -------------------------------------------------------------------


@pytest.mark.parametrize("size,kernel,stride,padding", [(28, 3, 1, 0), (8, 3, 1, 1), (8, 3, 2, 0), (7, 2, 2, 0),
                                                         (9, 5, 3, 2)])
def test_conv_output_size_matches_torch(size, kernel, stride, padding):
    out = F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, kernel, kernel), stride=stride, padding=padding)
    assert out.shape[-1] == scratch.conv_output_size(size, kernel, stride, padding)


@pytest.mark.parametrize("args", [(2, 3, 1, 0), (0, 1, 1, 0), (5, 3, 0, 0), (5, 3, 1, -1)])
def test_conv_output_size_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        scratch.conv_output_size(*args)


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), (3, 0)])
def test_convolutions_match_torch(stride, padding):
    x, w, b = RNG.normal(size=(2, 3, 9, 8)), RNG.normal(size=(4, 3, 3, 2)), RNG.normal(size=4)
    reference = F.conv2d(_t(x), _t(w), _t(b), stride=stride, padding=padding).numpy()
    assert np.allclose(scratch.conv2d_loops(x, w, b, stride=stride, padding=padding), reference)
    assert np.allclose(scratch.conv2d_im2col(x, w, b, stride=stride, padding=padding), reference)
    assert np.allclose(scratch.conv2d_im2col(x, w, stride=stride, padding=padding),
                       F.conv2d(_t(x), _t(w), stride=stride, padding=padding).numpy())


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_conv2d_backward_matches_autograd(stride, padding):
    x, w, b = RNG.normal(size=(2, 3, 7, 7)), RNG.normal(size=(4, 3, 3, 3)), RNG.normal(size=4)
    tx, tw, tb = _t(x, True), _t(w, True), _t(b, True)
    out = F.conv2d(tx, tw, tb, stride=stride, padding=padding)
    dout = RNG.normal(size=out.shape)
    out.backward(_t(dout))
    dx, dw, db = scratch.conv2d_backward(dout, x, w, stride=stride, padding=padding)
    for mine, theirs in ((dx, tx), (dw, tw), (db, tb)):
        assert np.allclose(mine, theirs.grad.numpy())


def test_col2im_is_the_adjoint_of_im2col():
    x = RNG.normal(size=(2, 2, 6, 5))
    cols = RNG.normal(size=scratch.im2col(x, 3, 2, stride=2, padding=1).shape)
    lhs = np.sum(scratch.im2col(x, 3, 2, stride=2, padding=1) * cols)
    rhs = np.sum(x * scratch.col2im(cols, x.shape, 3, 2, stride=2, padding=1))
    assert lhs == pytest.approx(rhs)
    with pytest.raises(ValueError, match="cols"):
        scratch.col2im(cols[1:], x.shape, 3, 2, stride=2, padding=1)


def test_convolution_rejects_mismatched_shapes():
    x = np.zeros((1, 3, 5, 5))
    with pytest.raises(ValueError, match="channels"):
        scratch.conv2d_im2col(x, np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="b must"):
        scratch.conv2d_loops(x, np.zeros((2, 3, 3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="4-D"):
        scratch.im2col(np.zeros((5, 5)), 3, 3)
    with pytest.raises(ValueError, match="dout"):
        scratch.conv2d_backward(np.zeros((1, 2, 2, 2)), x, np.zeros((2, 3, 3, 3)))


@pytest.mark.parametrize("size,stride", [(2, None), (3, 2), (2, 1)])
def test_max_pool_and_its_gradient_match_torch(size, stride):
    x = RNG.normal(size=(2, 3, 7, 6))
    tx = _t(x, True)
    out = F.max_pool2d(tx, size, stride=stride)
    dout = RNG.normal(size=out.shape)
    out.backward(_t(dout))
    assert np.allclose(scratch.max_pool2d(x, size, stride), out.detach().numpy())
    assert np.allclose(scratch.max_pool2d_backward(dout, x, size, stride), tx.grad.numpy())
    with pytest.raises(ValueError, match="dout"):
        scratch.max_pool2d_backward(dout[:, :1], x, size, stride)


# --- K-Means -----------------------------------------------------------------------------------------


def test_kmeans_matches_sklearn_on_blobs():
    X, _ = make_blobs(600, centers=4, cluster_std=1.0, random_state=3)
    mine = scratch.kmeans(X, 4, n_init=3, seed=0)
    theirs = KMeans(4, n_init=3, random_state=0).fit(X)
    assert adjusted_rand_score(mine.labels, theirs.labels_) > 0.99
    assert mine.inertia == pytest.approx(theirs.inertia_, rel=0.01)
    assert np.all(np.diff(mine.history) <= 1e-9 * mine.history[0])


def test_kmeans_plus_plus_spreads_its_centers():
    X, truth = make_blobs(400, centers=[[0, 0], [20, 0], [0, 20]], cluster_std=0.5, random_state=0)
    centers = scratch.kmeans_plus_plus(X, 3, seed=0)
    nearest_blob = scratch.squared_distances(centers, np.array([[0, 0], [20, 0], [0, 20]])).argmin(axis=1)
    assert sorted(nearest_blob) == [0, 1, 2]  # one center in every blob


def test_kmeans_reseeds_an_empty_cluster():
    X = np.r_[RNG.normal(size=(50, 2)), RNG.normal(size=(50, 2)) + 8]
    far_away = np.array([[0.0, 0.0], [8.0, 8.0], [100.0, 100.0]])  # the third center attracts no point
    result = scratch.kmeans(X, 3, init=far_away)
    assert result.empty_fixes >= 1
    assert np.bincount(result.labels, minlength=3).min() > 0
    assert np.isfinite(result.centers).all()
    assert np.all(np.diff(result.history) <= 1e-9 * result.history[0])


def test_kmeans_stops_early_with_a_loose_tolerance():
    X, _ = make_blobs(300, centers=3, random_state=1)
    assert scratch.kmeans(X, 3, tol=1.0, seed=0).n_iter <= scratch.kmeans(X, 3, tol=0.0, seed=0).n_iter


def test_kmeans_random_init_and_k_equal_one():
    X, _ = make_blobs(200, centers=2, random_state=0)
    result = scratch.kmeans(X, 1, init="random")
    assert np.allclose(result.centers[0], X.mean(axis=0))
    assert result.inertia == pytest.approx(((X - X.mean(axis=0)) ** 2).sum())


@pytest.mark.parametrize("kwargs,match", [({"k": 0}, "k must"), ({"k": 500}, "at most"), ({"init": "forgy"}, "init"),
                                          ({"init": np.zeros((2, 2))}, "shape"), ({"tol": -1}, "tol"),
                                          ({"n_init": 0}, "n_init"), ({"max_iter": 0}, "max_iter")])
def test_kmeans_rejects_bad_arguments(kwargs, match):
    X = RNG.normal(size=(100, 2))
    with pytest.raises(ValueError, match=match):
        scratch.kmeans(X, **{"k": 3, **kwargs})


def test_kmeans_rejects_nan():
    with pytest.raises(ValueError, match="finite"):
        scratch.kmeans(np.array([[0.0, np.nan], [1.0, 1.0]]), 1)
