"""Neural networks and K-Means from scratch in NumPy: a two-layer MLP with hand-written
backpropagation, gradient checking, convolution (loops and im2col), max-pooling, a fully connected
layer, and K-Means with k-means++.

Written by hand because the algorithms are the lesson; the tests check every function against the
library it imitates (``torch.nn.functional`` and autograd, ``sklearn.cluster.KMeans``). Arrays use
PyTorch's layouts: images (batch, channels, height, width), convolution weights (out_channels,
in_channels, kernel_height, kernel_width), linear weights (out_features, in_features).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from helpers.validation import check_int

# --- checks -------------------------------------------------------------------------------------


def _check_array(name: str, value: np.ndarray, ndim: int) -> np.ndarray:
    value = np.asarray(value)
    if value.ndim != ndim or value.size == 0:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {value.shape}")
    if not np.issubdtype(value.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {value.dtype}")
    return value


def _check_labels(y: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be {n} integer class labels, got shape {y.shape} and dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"y must lie in 0 .. {n_classes - 1}")
    return y


# --- softmax, cross-entropy and gradient checking -----------------------------------------------


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis``, computed as exp(z - max z): equal in exact arithmetic, and no overflow."""
    z = np.asarray(z, dtype=float)
    shifted = z - z.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of integer labels under softmax(logits), via log-sum-exp (finite for any logits)."""
    logits = _check_array("logits", logits, 2)
    y = _check_labels(y, len(logits), logits.shape[1])
    top = logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(log_norm - logits[np.arange(len(y)), y]))


def softmax_cross_entropy_backward(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of the mean cross-entropy with respect to the logits: (softmax(logits) - onehot(y)) / N."""
    logits = _check_array("logits", logits, 2)
    y = _check_labels(y, len(logits), logits.shape[1])
    grad = softmax(logits, axis=1)
    grad[np.arange(len(y)), y] -= 1.0
    return grad / len(y)


def numerical_gradient(f: Callable[[], float], x: np.ndarray, *, eps: float = 1e-5) -> np.ndarray:
    """Central finite differences (f(x + eps) - f(x - eps)) / 2 eps of ``f()`` for every element of ``x``.

    ``x`` is perturbed in place, one element at a time, and restored; ``f`` reads it (it is usually
    a parameter of the model ``f`` evaluates). The error is O(eps^2) plus rounding / eps, which only
    float64 keeps far below the 1e-6 a gradient check asks for, so other dtypes are refused.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise ValueError(f"x must be a float64 numpy array (finite differences need float64), got "
                         f"{getattr(x, 'dtype', type(x).__name__)}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    grad = np.zeros_like(x)
    flat, flat_grad = x.reshape(-1), grad.reshape(-1)  # views: writing to flat writes to x
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        above = f()
        flat[i] = original - eps
        below = f()
        flat[i] = original
        flat_grad[i] = (above - below) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / (||a|| + ||b||): 0 for equal arrays, 1 for opposite ones, nan if either holds a nan.

    The norm is over the whole array, so entries near zero do not blow the ratio up. Shapes must
    match: a gradient of the wrong shape is wrong, whatever broadcasting would allow.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    difference = np.linalg.norm(a - b)
    if scale == 0:
        return 0.0
    return float(difference / scale)


# --- layers --------------------------------------------------------------------------------------


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """A fully connected layer, x @ w.T + b, with w of shape (out_features, in_features) as in PyTorch."""
    x, w = _check_array("x", x, 2), _check_array("w", w, 2)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has {x.shape[1]} features but w expects {w.shape[1]} (w is out x in)")
    out = x @ w.T
    return out if b is None else out + b


def linear_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a linear layer: dx = dout @ w, dw = dout.T @ x, db = dout summed over the batch."""
    return dout @ w, dout.T @ x, dout.sum(axis=0)


def tanh_backward(dout: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Gradient through h = tanh(z), from its output: dz = dout * (1 - h^2)."""
    return dout * (1.0 - h**2)


class NumpyMLP:
    """Two-layer perceptron, linear -> tanh -> linear, trained on softmax cross-entropy.

    ``params`` holds W1 (hidden, in), b1, W2 (classes, hidden) and b2 in float64. ``gradients``
    is the hand-written backward pass; ``numerical_gradient`` and PyTorch's autograd check it.
    """

    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, seed: int = 0):
        n_in, n_hidden = check_int("n_in", n_in, 1), check_int("n_hidden", n_hidden, 1)
        n_out = check_int("n_out", n_out, 2)
        rng = np.random.default_rng(seed)
        self.params = {  # scaled so that tanh starts in its linear range (Xavier-like)
            "W1": rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_hidden, n_in)), "b1": np.zeros(n_hidden),
            "W2": rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_out, n_hidden)), "b2": np.zeros(n_out),
        }

    def forward(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits of shape (N, classes), and the activations the backward pass needs."""
        X = _check_array("X", X, 2).astype(float, copy=False)
        p = self.params
        h = np.tanh(linear(X, p["W1"], p["b1"]))
        return linear(h, p["W2"], p["b2"]), {"X": X, "h": h}

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy on (X, y)."""
        return cross_entropy(self.forward(X)[0], y)

    def gradients(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """The loss and its gradient with respect to every parameter, by the chain rule."""
        logits, cache = self.forward(X)
        dz2 = softmax_cross_entropy_backward(logits, y)  # (softmax - onehot) / N
        dh, dW2, db2 = linear_backward(dz2, cache["h"], self.params["W2"])
        dz1 = tanh_backward(dh, cache["h"])  # tanh'(z) = 1 - tanh(z)^2
        _, dW1, db1 = linear_backward(dz1, cache["X"], self.params["W1"])
        return cross_entropy(logits, y), {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most likely class of each row of X."""
        return self.forward(X)[0].argmax(axis=1)

    def fit(self, X: np.ndarray, y: np.ndarray, *, steps: int, lr: float = 0.5, batch_size: int | None = None,
            seed: int = 0) -> list[float]:
        """Plain SGD for ``steps`` steps (full batch when ``batch_size`` is None); returns the loss per step."""
        steps = check_int("steps", steps, 1)
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        rng = np.random.default_rng(seed)
        losses = []
        for _ in range(steps):
            rows = slice(None) if batch_size is None else rng.integers(0, len(X), check_int("batch_size", batch_size, 1))
            loss, grads = self.gradients(X[rows], y[rows])
            for name, grad in grads.items():
                self.params[name] -= lr * grad
            losses.append(loss)
        return losses


# --- convolution and pooling ---------------------------------------------------------------------


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling window: floor((size - kernel + 2 padding) / stride) + 1.

    The floor is what PyTorch and Keras do: when the window does not fit a whole number of times,
    the last rows and columns of the input are never read.
    """
    size, kernel = check_int("size", size, 1), check_int("kernel", kernel, 1)
    stride, padding = check_int("stride", stride, 1), check_int("padding", padding, 0)
    if size + 2 * padding < kernel:
        raise ValueError(f"kernel {kernel} is larger than the padded input {size + 2 * padding}")
    return (size - kernel + 2 * padding) // stride + 1


def _conv_shapes(x: np.ndarray, kh: int, kw: int, stride: int, padding: int) -> tuple[int, int]:
    _check_array("x", x, 4)
    return (conv_output_size(x.shape[2], kh, stride, padding), conv_output_size(x.shape[3], kw, stride, padding))


def _check_weights(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> None:
    w = _check_array("w", w, 4)
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w expects {w.shape[1]} input channels, x has {x.shape[1]}")
    if b is not None and np.shape(b) != (w.shape[0],):
        raise ValueError(f"b must have shape ({w.shape[0]},), got {np.shape(b)}")


def conv2d_loops(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride: int = 1,
                 padding: int = 0) -> np.ndarray:
    """2-D convolution (cross-correlation, as in deep learning) written as four nested loops.

    Every output value is the sum of one input patch times one filter: the definition, and slow.
    """
    ho, wo = _conv_shapes(x, w.shape[2], w.shape[3], stride, padding)
    _check_weights(x, w, b)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n_filters, _, kh, kw = w.shape
    out = np.zeros((x.shape[0], n_filters, ho, wo), dtype=np.result_type(x, w))
    for n in range(x.shape[0]):
        for f in range(n_filters):
            for i in range(ho):
                for j in range(wo):
                    patch = xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[n, f, i, j] = np.sum(patch * w[f]) + (0 if b is None else b[f])
    return out


def im2col(x: np.ndarray, kh: int, kw: int, *, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Every (kh x kw) patch of x as a row: shape (N * H_out * W_out, C * kh * kw).

    One loop over the kh * kw kernel offsets copies a strided slice of the padded input each time;
    the convolution then becomes one matrix product.
    """
    ho, wo = _conv_shapes(x, kh, kw, stride, padding)
    n, c = x.shape[:2]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=x.dtype)
    for di in range(kh):
        for dj in range(kw):
            cols[:, :, di, dj] = xp[:, :, di:di + stride * ho:stride, dj:dj + stride * wo:stride]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * ho * wo, c * kh * kw)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kh: int, kw: int, *, stride: int = 1,
           padding: int = 0) -> np.ndarray:
    """The adjoint of ``im2col``: add every row back to the patch it came from (overlaps accumulate)."""
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    if np.shape(cols) != (n * ho * wo, c * kh * kw):
        raise ValueError(f"cols must have shape {(n * ho * wo, c * kh * kw)} for x_shape {x_shape}, got {np.shape(cols)}")
    patches = cols.reshape(n, ho, wo, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for di in range(kh):
        for dj in range(kw):
            xp[:, :, di:di + stride * ho:stride, dj:dj + stride * wo:stride] += patches[:, :, di, dj]
    return xp[:, :, padding:padding + h, padding:padding + w]


def conv2d_im2col(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride: int = 1,
                  padding: int = 0) -> np.ndarray:
    """The same convolution as ``conv2d_loops``, as one matrix product: im2col(x) @ w.reshape(F, -1).T."""
    ho, wo = _conv_shapes(x, w.shape[2], w.shape[3], stride, padding)
    _check_weights(x, w, b)
    out = im2col(x, w.shape[2], w.shape[3], stride=stride, padding=padding) @ w.reshape(len(w), -1).T
    if b is not None:
        out = out + b
    return out.reshape(x.shape[0], ho, wo, len(w)).transpose(0, 3, 1, 2)


def conv2d_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, *, stride: int = 1,
                    padding: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dw, db) of ``conv2d_im2col`` given the gradient of its output."""
    ho, wo = _conv_shapes(x, w.shape[2], w.shape[3], stride, padding)
    _check_weights(x, w, None)
    if np.shape(dout) != (x.shape[0], len(w), ho, wo):
        raise ValueError(f"dout must have shape {(x.shape[0], len(w), ho, wo)}, got {np.shape(dout)}")
    d = dout.transpose(0, 2, 3, 1).reshape(-1, len(w))  # one row per output position
    cols = im2col(x, w.shape[2], w.shape[3], stride=stride, padding=padding)
    dw = (d.T @ cols).reshape(w.shape)
    dx = col2im(d @ w.reshape(len(w), -1), x.shape, w.shape[2], w.shape[3], stride=stride, padding=padding)
    return dx, dw, d.sum(axis=0)


def _pool_windows(x: np.ndarray, size: int, stride: int | None) -> tuple[np.ndarray, int, int, int]:
    size = check_int("size", size, 1)
    stride = size if stride is None else check_int("stride", stride, 1)
    ho, wo = _conv_shapes(x, size, size, stride, 0)
    n, c, h, w = x.shape
    windows = im2col(x.reshape(n * c, 1, h, w), size, size, stride=stride)  # (n*c*ho*wo, size*size)
    return windows, ho, wo, stride


def max_pool2d(x: np.ndarray, size: int = 2, stride: int | None = None) -> np.ndarray:
    """Max over each (size x size) window; ``stride`` defaults to ``size`` (non-overlapping windows)."""
    windows, ho, wo, _ = _pool_windows(x, size, stride)
    return windows.max(axis=1).reshape(x.shape[0], x.shape[1], ho, wo)


def max_pool2d_backward(dout: np.ndarray, x: np.ndarray, size: int = 2, stride: int | None = None) -> np.ndarray:
    """Gradient of ``max_pool2d``: each window's gradient goes to its maximum (the first one on ties)."""
    windows, ho, wo, stride = _pool_windows(x, size, stride)
    n, c, h, w = x.shape
    if np.shape(dout) != (n, c, ho, wo):
        raise ValueError(f"dout must have shape {(n, c, ho, wo)}, got {np.shape(dout)}")
    routed = np.zeros_like(windows, dtype=np.result_type(dout, float))
    routed[np.arange(len(windows)), windows.argmax(axis=1)] = dout.reshape(-1)
    return col2im(routed, (n * c, 1, h, w), size, size, stride=stride).reshape(x.shape)


# --- K-Means -------------------------------------------------------------------------------------


def _check_data(X: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    X = _check_array("X", X, 2).astype(float, copy=False)
    if not np.isfinite(X).all():
        raise ValueError("X must be finite (no nan or inf)")
    k = check_int("k", k, 1)
    if k > len(X):
        raise ValueError(f"k must be at most the number of points ({len(X)}), got {k}")
    return X, k


def squared_distances(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of every point to every center: shape (N, k)."""
    return ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)


def kmeans_plus_plus(X: np.ndarray, k: int, *, seed: int | np.random.Generator = 0) -> np.ndarray:
    """k-means++ (Arthur & Vassilvitskii, 2007): the first center uniformly at random, each next one
    drawn with probability proportional to the squared distance to the nearest center chosen so far."""
    X, k = _check_data(X, k)
    rng = np.random.default_rng(seed)
    centers = [X[rng.integers(len(X))]]
    nearest = squared_distances(X, centers[0][None])[:, 0]
    for _ in range(1, k):
        total = nearest.sum()
        index = rng.choice(len(X), p=nearest / total) if total > 0 else rng.integers(len(X))
        centers.append(X[index])
        nearest = np.minimum(nearest, squared_distances(X, X[index][None])[:, 0])
    return np.array(centers)


@dataclass
class KMeansResult:
    """Result of ``kmeans``: the best run's centers, labels and inertia, and how it got there."""

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    history: list[float] = field(default_factory=list)  # inertia after every assignment step
    empty_fixes: int = 0  # how many times an empty cluster was re-seeded


def _lloyd(X: np.ndarray, centers: np.ndarray, max_iter: int, tol: float) -> KMeansResult:
    centers = centers.astype(float, copy=True)
    k = len(centers)
    threshold = tol * X.var(axis=0).mean()  # scikit-learn's convention: tol relative to the data's variance
    history, fixes, n_iter = [], 0, 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is reported)
        d2 = squared_distances(X, centers)
        labels = d2.argmin(axis=1)
        nearest = d2[np.arange(len(X)), labels]
        history.append(float(nearest.sum()))
        counts = np.bincount(labels, minlength=k)
        new = np.zeros_like(centers)
        np.add.at(new, labels, X)
        new[counts > 0] /= counts[counts > 0, None]
        for j in np.flatnonzero(counts == 0):  # an empty cluster takes the point farthest from its center
            far = int(nearest.argmax())
            new[j], nearest[far] = X[far], 0.0
            fixes += 1
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if shift <= threshold:
            break
    d2 = squared_distances(X, centers)
    labels = d2.argmin(axis=1)
    inertia = float(d2[np.arange(len(X)), labels].sum())
    history.append(inertia)
    return KMeansResult(centers, labels, inertia, n_iter, history, fixes)


def kmeans(X: np.ndarray, k: int, *, init: str | np.ndarray = "k-means++", n_init: int = 1, max_iter: int = 300,
           tol: float = 1e-4, seed: int = 0) -> KMeansResult:
    """Lloyd's K-Means: assign every point to its nearest center, move each center to its points' mean.

    ``init`` is "k-means++", "random" (k distinct data points) or an array of k starting centers.
    Each of ``n_init`` runs stops when the centers' total squared movement is at most ``tol`` times
    the mean feature variance, or after ``max_iter`` iterations; the run with the lowest inertia
    (sum of squared distances to the assigned center) is returned. An empty cluster is re-seeded
    with the point farthest from its center, which never increases the inertia.
    """
    X, k = _check_data(X, k)
    n_init, max_iter = check_int("n_init", n_init, 1), check_int("max_iter", max_iter, 1)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or tol < 0:
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    if isinstance(init, np.ndarray):
        if init.shape != (k, X.shape[1]):
            raise ValueError(f"init centers must have shape {(k, X.shape[1])}, got {init.shape}")
        starts = [init] * n_init
    elif init in ("k-means++", "random"):
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_init)]
        starts = [kmeans_plus_plus(X, k, seed=rng) if init == "k-means++" else X[rng.choice(len(X), k, replace=False)]
                  for rng in rngs]
    else:
        raise ValueError(f"init must be 'k-means++', 'random' or an array of centers, got {init!r}")
    runs = [_lloyd(X, start, max_iter, tol) for start in starts]
    return min(runs, key=lambda run: run.inertia)
