"""A seeded, vectorised paired bootstrap over test examples (and seeds, where a method has several).

Every metric is expressed as additive per-example statistics plus a function of their sum: a
per-example metric is one column whose sum over n examples, divided by n, is its mean; chrF sums
n-gram counts; macro-F1 sums per-class hit and miss indicators. A resample of the examples is then
one weight vector (how often each example was drawn), and every cell's value under every resample
is one matrix product. The same weights serve every method, which is what pairs them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
SEED = 0
LEVEL = 0.95
_NORMAL_QUANTILE = {0.9: 1.6448536269514722, 0.95: 1.959963984540054, 0.99: 2.5758293035489004}  # two-sided


@dataclass
class Statistic:
    """One cell's data for one metric over the shared examples, in their shared order.

    ``rows`` is (examples, k): what each example adds; ``combine`` maps summed rows (resamples, k)
    to the metric's value per resample.
    """

    rows: np.ndarray
    combine: Callable[[np.ndarray], np.ndarray]

    def value(self) -> float:
        """The metric on the examples as measured (no resampling)."""
        return float(self.combine(self.rows.sum(axis=0, keepdims=True))[0])

    def resampled(self, weights: np.ndarray) -> np.ndarray:
        """The metric under each resample; ``weights`` is (resamples, examples)."""
        return self.combine(weights @ self.rows)


def example_weights(examples: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, examples): how many times each example is drawn, n draws with replacement each."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(examples, np.full(examples, 1.0 / examples), size=resamples).astype(np.float64)


def _seed_rng(seed: int, name: str) -> np.random.Generator:
    # A stream per method, so that adding a method to a run does not change the others' draws.
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def method_samples(cells: Sequence[Statistic], weights: np.ndarray, name: str, seed: int = SEED) -> np.ndarray:
    """A method's mean over its seeds under each resample: examples by ``weights``, seeds drawn anew."""
    per_seed = np.stack([cell.resampled(weights) for cell in cells], axis=1)  # (resamples, seeds)
    count = per_seed.shape[1]
    if count > 1:
        pick = _seed_rng(seed, name).integers(0, count, size=per_seed.shape)
        per_seed = np.take_along_axis(per_seed, pick, axis=1)
    return per_seed.mean(axis=1)


def paired_bootstrap(methods: Mapping[str, Sequence[Statistic]], examples: int, resamples: int = RESAMPLES,
                     seed: int = SEED) -> dict[str, np.ndarray]:
    """Each method's resampled headline (mean over seeds), all on the same example resamples."""
    weights = example_weights(examples, resamples, seed)
    return {name: method_samples(cells, weights, name, seed) for name, cells in methods.items()}


def interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of resampled values."""
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def observed(cells: Sequence[Statistic]) -> float:
    """A method's value as measured: the mean over its seeds."""
    return float(np.mean([cell.value() for cell in cells]))


def examples_to_separate(difference: float, spread: float, examples: int, level: float = LEVEL) -> int | None:
    """About how many test examples would put ``difference`` outside its ``level`` interval.

    ``spread`` is the bootstrap standard deviation of the difference at ``examples`` examples; it
    shrinks as 1/sqrt(n), so n' = n (z * spread / difference)^2. None when no difference was measured.
    """
    if difference == 0 or not np.isfinite(difference) or spread <= 0:
        return None
    z = _NORMAL_QUANTILE[level]
    return int(np.ceil(examples * (z * spread / abs(difference)) ** 2))
