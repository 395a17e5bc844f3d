import json

import pytest

from helpers import resumable

pytestmark = pytest.mark.usefixtures("one_thread")


def test_resuming_reproduces_the_uninterrupted_losses_exactly(tmp_path):
    reference = resumable.run(tmp_path / "ref", epochs=3, hidden=32)
    resumable.run(tmp_path / "job", epochs=1, hidden=32)  # "killed" after the first epoch's checkpoint
    resumed = resumable.run(tmp_path / "job", epochs=3, hidden=32)
    assert resumed == reference
    assert json.loads((tmp_path / "job" / resumable.LOSSES).read_text()) == reference


def test_resuming_from_the_weights_alone_departs(tmp_path):
    reference = resumable.run(tmp_path / "ref", epochs=3, hidden=32)
    resumable.run(tmp_path / "job", epochs=1, hidden=32)
    weights_only = resumable.run(tmp_path / "job", epochs=3, hidden=32, resume="weights")
    steps = len(reference) // 3
    assert weights_only[:steps] == reference[:steps]  # the first epoch came from the checkpoint
    assert weights_only[steps:] != reference[steps:]


def test_a_finished_run_does_nothing_more(tmp_path):
    first = resumable.run(tmp_path / "job", epochs=2, hidden=16)
    assert resumable.run(tmp_path / "job", epochs=2, hidden=16) == first


def test_command_line(tmp_path):
    resumable.main([str(tmp_path / "cli"), "--epochs", "1"])
    assert (tmp_path / "cli" / resumable.CHECKPOINT).exists()


@pytest.mark.parametrize("kwargs", [{"epochs": 0}, {"epochs": 1, "resume": "optimizer"}])
def test_rejects_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        resumable.run(tmp_path, **kwargs)
