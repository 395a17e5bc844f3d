"""Speech recognition in miniature: synthetic digit "speech", log-spectrogram features, a GRU
classifier that packs variable-length batches, CTC greedy decoding and edit-distance error rates.

Each digit is spoken as a pair of tones (one from a low and one from a high group, as in telephone
DTMF dialling), of random duration, separated by pauses, in white noise: a stand-in for phonemes
that needs no download and whose truth is known. Written by hand because the pieces are the
lesson; the tests check the spectrogram against the tone table, the packed GRU against running
each sequence alone, the decoder and the error rates against worked examples and an independent
recursive edit distance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 4000  # Hz: every tone lies below the Nyquist frequency of 2 kHz
LOW_TONES = (450.0, 600.0, 750.0, 900.0)  # Hz
HIGH_TONES = (1200.0, 1450.0, 1700.0)  # Hz
# digit -> (low, high): the telephone keypad's layout, 1 2 3 / 4 5 6 / 7 8 9 / _ 0 _
DIGIT_TONES: dict[int, tuple[float, float]] = {
    d: (LOW_TONES[(d - 1) // 3], HIGH_TONES[(d - 1) % 3]) for d in range(1, 10)
} | {0: (LOW_TONES[3], HIGH_TONES[1])}
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _check_range(name: str, value: tuple[float, float]) -> None:
    if len(value) != 2 or not 0 <= value[0] <= value[1]:
        raise ValueError(f"{name} must be a (low, high) pair with 0 <= low <= high, got {value!r}")


def synthesize(
    digits: Sequence[int],
    *,
    rng: np.random.Generator,
    noise: float = 0.2,
    tone_ms: tuple[float, float] = (60.0, 160.0),
    gap_ms: tuple[float, float] = (40.0, 100.0),
    edge_ms: tuple[float, float] = (20.0, 80.0),
    sample_rate: int = SAMPLE_RATE,
) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """A waveform speaking ``digits``, and the (start, end, digit) sample span of each tone.

    Every digit is its two tones (``DIGIT_TONES``), detuned by up to ±2 % per utterance (another
    "speaker"), with a random amplitude and a 5 ms fade in and out; pauses of ``gap_ms`` separate
    digits, silences of ``edge_ms`` open and close the utterance, and white noise of standard
    deviation ``noise`` covers everything. Durations are drawn uniformly from their ranges.
    """
    if len(digits) == 0 or any(isinstance(d, bool) or int(d) != d or not 0 <= d <= 9 for d in digits):
        raise ValueError(f"digits must be a non-empty sequence of ints 0-9, got {digits!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    for name, value in (("tone_ms", tone_ms), ("gap_ms", gap_ms), ("edge_ms", edge_ms)):
        _check_range(name, value)

    def samples(span: tuple[float, float]) -> int:
        return int(rng.uniform(*span) * sample_rate / 1000)

    detune = rng.uniform(0.98, 1.02)
    fade = int(0.005 * sample_rate)
    pieces, spans, position = [np.zeros(samples(edge_ms))], [], 0
    position = len(pieces[0])
    for i, digit in enumerate(digits):
        if i > 0:
            pieces.append(np.zeros(samples(gap_ms)))
            position += len(pieces[-1])
        n = max(samples(tone_ms), 2 * fade + 1)
        t = np.arange(n) / sample_rate
        low, high = DIGIT_TONES[int(digit)]
        phase = rng.uniform(0, 2 * np.pi, 2)
        tone = np.sin(2 * np.pi * low * detune * t + phase[0]) + np.sin(2 * np.pi * high * detune * t + phase[1])
        envelope = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / fade)
        pieces.append(0.5 * rng.uniform(0.5, 1.0) * tone * envelope)
        spans.append((position, position + n, int(digit)))
        position += n
    pieces.append(np.zeros(samples(edge_ms)))
    wave = np.concatenate(pieces)
    return wave + noise * rng.standard_normal(len(wave)), spans


def log_spectrogram(
    wave: np.ndarray, *, sample_rate: int = SAMPLE_RATE, window_ms: float = 16.0, hop_ms: float = 16.0
) -> np.ndarray:
    """Log power spectrogram, shape (frames, frequency bins), from ``scipy.signal.stft`` with a Hann window.

    Frames of ``window_ms`` every ``hop_ms``; frames that would run past the end are dropped
    (no padding), so the number of frames is 1 + (samples − window) // hop.
    """
    from scipy import signal

    wave = np.asarray(wave, dtype=float)
    window = int(round(window_ms * sample_rate / 1000))
    hop = int(round(hop_ms * sample_rate / 1000))
    if wave.ndim != 1 or len(wave) < window:
        raise ValueError(f"wave must be 1-D with at least one window ({window} samples), got shape {wave.shape}")
    if not 0 < hop <= window:
        raise ValueError(f"hop_ms must give 0 < hop <= window samples, got hop={hop}, window={window}")
    _, _, spectrum = signal.stft(wave, fs=sample_rate, window="hann", nperseg=window, noverlap=window - hop,
                                 boundary=None, padded=False)
    return np.log(np.abs(spectrum.T) ** 2 + 1e-6)


def make_utterances(
    n: int,
    digits_per_utterance: tuple[int, int],
    *,
    noise: float | tuple[float, float],
    seed: int,
    **synth_kwargs: object,
) -> tuple[list[np.ndarray], list[list[int]]]:
    """``n`` utterances of uniformly random digits, as log-spectrograms and digit lists.

    The number of digits is drawn uniformly from ``digits_per_utterance`` (inclusive), and the
    noise level uniformly from ``noise`` when it is a (low, high) pair.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    low, high = digits_per_utterance
    if not 1 <= low <= high:
        raise ValueError(f"digits_per_utterance must be (low, high) with 1 <= low <= high, got {digits_per_utterance!r}")
    noise_range = (noise, noise) if np.isscalar(noise) else tuple(noise)
    _check_range("noise", noise_range)
    rng = np.random.default_rng(seed)
    features, targets = [], []
    for _ in range(n):
        digits = rng.integers(0, 10, rng.integers(low, high + 1)).tolist()
        wave, _ = synthesize(digits, rng=rng, noise=rng.uniform(*noise_range), **synth_kwargs)
        features.append(log_spectrogram(wave).astype(np.float32))
        targets.append(digits)
    return features, targets


def pad_batch(sequences: Sequence[np.ndarray | torch.Tensor], *, value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length (frames, features) sequences into (batch, longest, features), and their lengths."""
    if len(sequences) == 0:
        raise ValueError("sequences must not be empty")
    tensors = [torch.as_tensor(s, dtype=torch.float32) for s in sequences]
    lengths = torch.tensor([len(t) for t in tensors])
    return nn.utils.rnn.pad_sequence(tensors, batch_first=True, padding_value=value), lengths


class GRUClassifier(nn.Module):
    """A GRU over the frames, then a linear layer on the hidden state after the last frame.

    With ``packed=True`` (the default) the padded batch is packed with ``pack_padded_sequence``, so
    the GRU stops at each sequence's own length and its final state ignores the padding. With
    ``packed=False`` the GRU reads the padding too and the state after the *padded* end is used:
    the common bug, kept here so that it can be measured.
    """

    def __init__(self, n_features: int, hidden: int, n_classes: int, *, packed: bool = True) -> None:
        super().__init__()
        self.gru = nn.GRU(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)
        self.packed = packed

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.packed:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, last = self.gru(packed)  # last: (1, batch, hidden), at each sequence's own end
            return self.head(last[0])
        outputs, _ = self.gru(x)
        return self.head(outputs[:, -1])


class CTCRecognizer(nn.Module):
    """An acoustic model for CTC: a strided 1-D convolution halves the frame rate, a bidirectional
    GRU (packed) reads the result, a linear layer gives log-probabilities over blank + labels.

    ``forward(x, lengths)`` takes a padded (batch, frames, features) batch and returns the
    log-probabilities batch-first, (batch, frames', classes), with the frames' of each sequence:
    transpose them to the (time, batch, classes) layout ``nn.CTCLoss`` expects.
    """

    def __init__(self, n_features: int, hidden: int, n_classes: int, *, channels: int = 64) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_features, channels, kernel_size=3, stride=2, padding=1)
        self.gru = nn.GRU(channels, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, n_classes)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        """Frames after the stride-2 convolution (kernel 3, padding 1): ⌊(n − 1) / 2⌋ + 1."""
        return (lengths - 1) // 2 + 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        lengths = self.output_lengths(lengths)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, _ = self.gru(packed)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])
        return self.head(outputs).log_softmax(dim=-1), lengths


def greedy_ctc_decode(log_probs: np.ndarray | torch.Tensor, lengths: Sequence[int] | None = None, *,
                      blank: int = 0) -> list[list[int]]:
    """Best-path decoding of CTC outputs shaped (time, batch, classes): the most likely class per
    frame, repeats collapsed, blanks dropped. Frames past each sequence's length are ignored."""
    scores = torch.as_tensor(log_probs)
    if scores.ndim != 3:
        raise ValueError(f"log_probs must be (time, batch, classes), got shape {tuple(scores.shape)}")
    if not 0 <= blank < scores.shape[2]:
        raise ValueError(f"blank must index a class (0 .. {scores.shape[2] - 1}), got {blank!r}")
    lengths = [scores.shape[0]] * scores.shape[1] if lengths is None else [int(n) for n in lengths]
    if len(lengths) != scores.shape[1] or any(not 0 <= n <= scores.shape[0] for n in lengths):
        raise ValueError("lengths must give one length per sequence, each at most the number of frames")
    best = scores.argmax(dim=2).T.tolist()
    decoded = []
    for path, n in zip(best, lengths, strict=True):
        labels, previous = [], None
        for label in path[:n]:
            if label != previous and label != blank:
                labels.append(label)
            previous = label
        decoded.append(labels)
    return decoded


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning one sequence into the other."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_item in enumerate(reference, start=1):
        current = [i]
        for j, hyp_item in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_item != hyp_item)))
        previous = current
    return previous[-1]


def error_rate(references: Sequence[Sequence], hypotheses: Sequence[Sequence]) -> float:
    """Total edit distance over total reference length (the way CER and WER are pooled over a test set)."""
    if len(references) != len(hypotheses) or len(references) == 0:
        raise ValueError("references and hypotheses must be non-empty and of the same length")
    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("references must not all be empty")
    return sum(edit_distance(r, h) for r, h in zip(references, hypotheses, strict=True)) / total


def cer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Character error rate of transcripts (spaces count as characters)."""
    return error_rate([list(r) for r in references], [list(h) for h in hypotheses])


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Word error rate of transcripts, words split on whitespace."""
    return error_rate([r.split() for r in references], [h.split() for h in hypotheses])


def spell(digits: Sequence[int]) -> str:
    """The transcript of a digit sequence in words: [3, 1, 4] -> "three one four"."""
    return " ".join(DIGIT_WORDS[int(d)] for d in digits)
