import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ["MLLAB_PROGRESS"] = "0"


@pytest.fixture
def blobs():
    """Two well-separated Gaussian blobs in 2-D, 64 points, labels 0 and 1 alternating."""
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(64) % 2
    X = torch.randn(64, 2, generator=generator) * 0.3 + (y[:, None] * 2.0 - 1.0)
    return X, y


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and stay fast when the machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
