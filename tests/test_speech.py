from functools import cache

import numpy as np
import pytest
import torch

from helpers import speech


def test_every_digit_has_its_own_pair_of_tones_below_nyquist():
    pairs = list(speech.DIGIT_TONES.values())
    assert sorted(speech.DIGIT_TONES) == list(range(10))
    assert len(set(pairs)) == 10
    assert all(0 < low < high < speech.SAMPLE_RATE / 2 for low, high in pairs)


@pytest.mark.parametrize("digit", range(10))
def test_the_spectrogram_of_a_clean_digit_peaks_at_its_two_tones(digit):
    wave, spans = speech.synthesize([digit], rng=np.random.default_rng(digit), noise=0.0)
    spectrum = speech.log_spectrogram(wave)
    bin_hz = speech.SAMPLE_RATE / 64  # 16 ms windows
    start, end, said = spans[0]
    frames = slice(start // 64 + 1, end // 64 - 1)  # frames wholly inside the tone
    loudest = set(np.argsort(spectrum[frames].mean(0))[-2:])
    low, high = speech.DIGIT_TONES[digit]
    assert said == digit
    assert all(min(abs(b * bin_hz - f) for f in (low, high)) < 1.5 * bin_hz for b in loudest)
    assert len({int(b * bin_hz > 1000) for b in loudest}) == 2  # one peak in each group


def test_synthesize_durations_spans_and_reproducibility():
    kwargs = dict(noise=0.1, tone_ms=(50.0, 50.0), gap_ms=(30.0, 30.0), edge_ms=(10.0, 10.0))
    wave, spans = speech.synthesize([1, 2, 3], rng=np.random.default_rng(0), **kwargs)
    again, _ = speech.synthesize([1, 2, 3], rng=np.random.default_rng(0), **kwargs)
    assert np.array_equal(wave, again)
    assert len(wave) == (3 * 50 + 2 * 30 + 2 * 10) * speech.SAMPLE_RATE // 1000
    assert [d for *_, d in spans] == [1, 2, 3]
    assert all(end - start == 200 for start, end, _ in spans)
    silent, _ = speech.synthesize([5], rng=np.random.default_rng(1), noise=0.0, edge_ms=(10.0, 10.0))
    assert not silent[:40].any() and not silent[-40:].any()


@pytest.mark.parametrize("kwargs", [dict(digits=[]), dict(digits=[10]), dict(digits=[1], noise=-1.0),
                                    dict(digits=[1], tone_ms=(100.0, 50.0))])
def test_synthesize_rejects_bad_arguments(kwargs):
    digits = kwargs.pop("digits")
    with pytest.raises(ValueError):
        speech.synthesize(digits, rng=np.random.default_rng(0), **kwargs)


def test_log_spectrogram_shape_and_scipy_agreement():
    from scipy import signal

    wave = np.random.default_rng(0).standard_normal(1000)
    spectrum = speech.log_spectrogram(wave, window_ms=16.0, hop_ms=8.0)
    assert spectrum.shape == (1 + (1000 - 64) // 32, 33)
    _, _, reference = signal.spectrogram(wave, fs=speech.SAMPLE_RATE, window="hann", nperseg=64, noverlap=32,
                                         detrend=False, scaling="spectrum")
    one_sided = np.r_[1.0, np.full(31, 2.0), 1.0]  # spectrogram doubles every bin but DC and Nyquist
    assert np.allclose(np.exp(spectrum) - 1e-6, reference.T / one_sided, rtol=1e-6, atol=1e-12)
    with pytest.raises(ValueError, match="wave"):
        speech.log_spectrogram(np.zeros(10))


def test_make_utterances_lengths_and_digit_counts():
    features, targets = speech.make_utterances(40, (2, 4), noise=(0.1, 0.5), seed=0)
    assert len(features) == len(targets) == 40
    assert {len(t) for t in targets} <= {2, 3, 4} and len({len(t) for t in targets}) == 3
    assert all(f.shape[1] == 33 and f.dtype == np.float32 for f in features)
    assert len({len(f) for f in features}) > 10  # variable lengths
    with pytest.raises(ValueError, match="digits_per_utterance"):
        speech.make_utterances(3, (0, 2), noise=0.1, seed=0)


def test_pad_batch():
    padded, lengths = speech.pad_batch([np.ones((3, 2)), np.ones((5, 2))], value=-1.0)
    assert padded.shape == (2, 5, 2) and lengths.tolist() == [3, 5]
    assert (padded[0, 3:] == -1).all() and (padded[0, :3] == 1).all()


def test_packed_gru_ignores_padding_and_the_unpacked_one_does_not():
    torch.manual_seed(0)
    sequences = [torch.randn(n, 4) for n in (3, 9, 6)]
    padded, lengths = speech.pad_batch(sequences)
    model = speech.GRUClassifier(4, 8, 3)
    alone = torch.cat([model(s[None], torch.tensor([len(s)])) for s in sequences])
    assert torch.allclose(model(padded, lengths), alone, atol=1e-6)
    model.packed = False
    unpacked = model(padded, lengths)
    assert torch.allclose(unpacked[1], alone[1], atol=1e-6)  # the longest sequence has no padding
    assert not torch.allclose(unpacked[0], alone[0], atol=1e-3)


def test_ctc_recognizer_shapes_lengths_and_log_probabilities():
    torch.manual_seed(0)
    padded, lengths = speech.pad_batch([torch.randn(n, 5) for n in (7, 12, 1)])
    model = speech.CTCRecognizer(5, 8, 4, channels=6)
    log_probs, out_lengths = model(padded, lengths)
    assert log_probs.shape == (3, 6, 4)
    assert out_lengths.tolist() == [4, 6, 1]
    assert out_lengths.tolist() == [model.conv(torch.zeros(1, 5, n)).shape[2] for n in (7, 12, 1)]
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 6), atol=1e-5)
    alone, _ = model(padded[:1, :7], lengths[:1])
    assert torch.allclose(alone[0], log_probs[0, :4], atol=1e-5)  # the padding does not reach the valid frames


def _path(labels: list[int], n_classes: int = 4) -> torch.Tensor:
    """Log-probabilities (time, 1, classes) whose best path is ``labels``."""
    scores = torch.full((len(labels), 1, n_classes), -5.0)
    scores[torch.arange(len(labels)), 0, torch.tensor(labels)] = 0.0
    return scores


def test_greedy_ctc_decode_collapses_repeats_then_drops_blanks():
    assert speech.greedy_ctc_decode(_path([0, 1, 1, 0, 1, 2, 2, 0])) == [[1, 1, 2]]
    assert speech.greedy_ctc_decode(_path([0, 0, 0])) == [[]]
    assert speech.greedy_ctc_decode(_path([3, 1, 1, 3, 2]), blank=3) == [[1, 2]]
    batch = torch.cat([_path([1, 0, 2, 2]), _path([2, 2, 0, 1])], dim=1)
    assert speech.greedy_ctc_decode(batch, [4, 2]) == [[1, 2], [2]]  # frames past the length are ignored


def test_greedy_ctc_decode_rejects_bad_input():
    with pytest.raises(ValueError, match="time, batch, classes"):
        speech.greedy_ctc_decode(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="blank"):
        speech.greedy_ctc_decode(_path([0, 1]), blank=4)
    with pytest.raises(ValueError, match="lengths"):
        speech.greedy_ctc_decode(_path([0, 1]), [3])


def test_greedy_path_of_a_peaked_output_has_a_small_ctc_loss():
    labels = [0, 1, 0, 2, 2, 0, 3]
    log_probs = torch.log_softmax(_path(labels) * 4, dim=2)
    loss = torch.nn.CTCLoss(blank=0)(log_probs, torch.tensor([[1, 2, 3]]), torch.tensor([7]), torch.tensor([3]))
    wrong = torch.nn.CTCLoss(blank=0)(log_probs, torch.tensor([[3, 2, 1]]), torch.tensor([7]), torch.tensor([3]))
    assert speech.greedy_ctc_decode(log_probs) == [[1, 2, 3]]
    assert loss < 0.5 < 5 < wrong


@cache
def _recursive_distance(a: str, b: str) -> int:
    """The textbook recursion, an independent check of the dynamic programme."""
    if not a or not b:
        return len(a) + len(b)
    return min(_recursive_distance(a[1:], b) + 1, _recursive_distance(a, b[1:]) + 1,
               _recursive_distance(a[1:], b[1:]) + (a[0] != b[0]))


def test_edit_distance_worked_examples_and_the_recursive_definition():
    assert speech.edit_distance("kitten", "sitting") == 3
    assert speech.edit_distance("", "abc") == 3 and speech.edit_distance("abc", "") == 3
    assert speech.edit_distance([1, 2, 3], [1, 2, 3]) == 0
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b = ("".join(rng.choice(list("abc"), rng.integers(0, 7))) for _ in range(2))
        assert speech.edit_distance(a, b) == _recursive_distance(a, b) == speech.edit_distance(b, a)


def test_cer_and_wer_on_worked_examples():
    assert speech.wer(["the cat sat"], ["the cat sit"]) == pytest.approx(1 / 3)
    assert speech.cer(["the cat sat"], ["the cat sit"]) == pytest.approx(1 / 11)
    assert speech.wer(["a b", "c d e f"], ["a b", ""]) == pytest.approx(4 / 6)  # pooled, not averaged
    assert speech.wer(["one two"], ["one two three four"]) == pytest.approx(1.0)  # insertions can exceed 100 %
    assert speech.spell([3, 1, 4]) == "three one four"
    with pytest.raises(ValueError, match="same length"):
        speech.error_rate([[1]], [])
    with pytest.raises(ValueError, match="empty"):
        speech.error_rate([[]], [[1]])
