"""Demonstration of CODEC/FOCI on real data: which pixels of scikit-learn's
handwritten digits carry the label?

FOCI picks pixels one by one by conditional dependence with the digit. The
table shows each pick, its score, and the leave-one-out 1-nearest-neighbour
accuracy of the digits described by the pixels picked so far (computed with
unlearn.ops.nearest_neighbor), next to all 64 pixels.

Run: python -m unlearn.demo
"""

from __future__ import annotations

import time

import torch

from . import ops
from .stats import foci, standardize_columns


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels (1797 x 64, float64) and labels (1797,) shipped with scikit-learn."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise SystemExit("the demo needs scikit-learn: pip install 'torch-unlearn[data]'") from error
    digits = sklearn_digits()
    return torch.from_numpy(digits.data).double(), torch.from_numpy(digits.target)


def loo_1nn_accuracy(features: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Leave-one-out accuracy of the 1-nearest-neighbour classifier."""
    neighbor = ops.nearest_neighbor(features.contiguous(), seed=seed)
    return float((labels[neighbor] == labels).double().mean())


def pixel_map(selected: list[int]) -> list[str]:
    """The 8 x 8 image with each selected pixel marked by its pick number."""
    cells = {pixel: str(rank + 1) for rank, pixel in enumerate(selected)}
    return [" ".join(f"{cells.get(r * 8 + c, '.'):>2}" for c in range(8)) for r in range(8)]


def main() -> None:
    pixels, labels = load_digits()
    start = time.perf_counter()
    result = foci(labels, pixels, seed=0)
    seconds = time.perf_counter() - start
    standardized = standardize_columns(pixels)
    print(f"FOCI on scikit-learn digits: n = {len(labels)}, p = 64 pixels, y = digit label")
    print(f"backend: {ops.backend()['codec_select']}; {len(result.selected)} pixels picked in {seconds:.2f} s\n")
    print(f"{'pick':>4}  {'pixel (row, col)':>16}  {'T(y, pixel | earlier)':>21}  {'1-NN accuracy':>13}")
    for k, (pixel, score) in enumerate(zip(result.selected, result.scores), start=1):
        accuracy = loo_1nn_accuracy(standardized[:, result.selected[:k]], labels)
        print(f"{k:>4}  {f'({pixel // 8}, {pixel % 8})':>16}  {score:>21.3f}  {accuracy:>13.3f}")
    print(f"{'all':>4}  {'64 pixels':>16}  {'':>21}  {loo_1nn_accuracy(standardized, labels):>13.3f}\n")
    print("Where the picked pixels are (pick number):")
    print("\n".join("   " + row for row in pixel_map(result.selected)))


if __name__ == "__main__":
    main()
