"""What a comparison's scores mean and how to show them: each metric's label
and which way is better, the JSON file and the bar charts that `compare()`
and the `unlearn` command write.

matplotlib is optional (`pip install 'torch-unlearn[plot]'`); it is imported
only to plot. On a log axis no bar or error bar reaches zero: values are
clipped at `LOG_FLOOR` (a model's distance to itself is exactly 0).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Optional, Union

Path = Union[str, "os.PathLike[str]"]

# Which way a score is better: higher, lower, or closer to the retrained model's.
HIGHER, LOWER, NEAR_RETRAIN = "higher", "lower", "retrain"
MARKS = {HIGHER: "^", LOWER: "v", NEAR_RETRAIN: "~"}
LEGEND = "^ higher is better, v lower is better, ~ closer to retraining is better"
# The smallest value a log axis shows: smaller ones (0 included) are drawn at it.
LOG_FLOOR = 1e-6


@dataclass(frozen=True)
class Metric:
    """A score of `evaluate()` or `compare()`: its long label, its short header
    in the comparison table (None: not shown there), which way is better, and
    the requests whose comparison shows it ("both", "class" or "instance")."""

    key: str
    label: str
    header: Optional[str]
    better: str
    requests: str = "both"

    @property
    def mark(self) -> str:
        return MARKS[self.better]


METRICS = [
    Metric("acc_retain", "retain accuracy", "retain", HIGHER),
    Metric("acc_forget", "forget accuracy", "forget", NEAR_RETRAIN),
    Metric("acc_test", "test accuracy", "test", HIGHER, "instance"),
    Metric("acc_test_retain", "test accuracy, other classes", "test other", HIGHER, "class"),
    Metric("acc_test_forget", "test accuracy, forgotten classes", "test forgot", NEAR_RETRAIN, "class"),
    Metric("mia_loss_logreg", "MIA loss-logreg (CV acc.)", "MIA loss", NEAR_RETRAIN),
    Metric("mia_entropy_logreg", "MIA entropy-logreg (member)", "MIA entropy", NEAR_RETRAIN),
    Metric("mia_confidence_svc", "MIA confidence-svc (non-member)", "MIA conf", NEAR_RETRAIN),
    Metric("js_divergence", "JS divergence to retrained", "JS to retrain", LOWER),
    Metric("activation_distance", "activation distance to retrained", None, LOWER),
    Metric("param_distance", "parameter distance to retrained", None, LOWER),
    Metric("grad_residual", "retained gradient residual", None, LOWER),
    Metric("grad_norm_forget", "forget gradient norm", None, NEAR_RETRAIN),
    Metric("seconds", "time (s)", "time (s)", LOWER),
    Metric("speedup", "speed-up over retraining", "vs retrain", HIGHER),
]
# The forget quality F and the final score of a comparison over seeds.
SEED_METRICS = [
    Metric("forget_quality", "forget quality F", "F", HIGHER),
    Metric("final_score", "final score", "final score", HIGHER),
]


def table_metrics(kind: str) -> list[Metric]:
    """The comparison table's columns for a request of `kind` ("class" or "instance")."""
    return [m for m in METRICS if m.header is not None and m.requests in ("both", kind)]


def request_kind(result: dict[str, Any]) -> str:
    """ "class" or "instance": only a class request scores the forgotten classes' test accuracy."""
    return "class" if any("acc_test_forget" in row for row in result["metrics"].values()) else "instance"


def check_output(path: Optional[Path], name: str) -> None:
    """A file to write later: a path whose folder exists, checked before the run."""
    if path is None:
        return
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(path).__name__}")
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise ValueError(f"{name}: the folder {folder!r} does not exist")


def _plain(value: Any) -> Any:
    """JSON for what json cannot write itself: tensors and arrays as lists, anything else as text."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def write_json(out: dict[str, Any], path: Path) -> None:
    """Writes a result to `path` as JSON (tensors as lists)."""
    with open(path, "w") as f:
        json.dump(out, f, indent=2, default=_plain)


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend; ImportError naming the extra when missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "plotting needs matplotlib, which is not installed: pip install 'torch-unlearn[plot]'"
        ) from error
    return plt


def mean_std(value: Any) -> tuple[float, float]:
    """A plain score, or a summary's mean and std (0 when there is none)."""
    if isinstance(value, dict):
        return float(value["mean"]), float(value["std"] or 0.0)
    return float(value), 0.0


def _bars(ax: Any, rows: dict[str, dict[str, Any]], metrics: list[Metric], log: bool) -> None:
    """Grouped bars: one group per metric, one bar per row (with its std as an
    error bar for a summary). On a log axis values are clipped at LOG_FLOOR,
    error bars stop there and the axis starts below the lowest of them; a row
    without the metric has no bar."""
    width, lowest = 0.8 / len(rows), math.inf
    for i, (name, values) in enumerate(rows.items()):
        spots, heights, errors = [], [], [[], []]
        for j, metric in enumerate(metrics):
            mean, std = mean_std(values.get(metric.key, math.nan))
            if math.isnan(mean):
                continue
            height = max(mean, LOG_FLOOR) if log else mean
            spots.append(j + i * width)
            heights.append(height)
            errors[0].append(min(std, height - LOG_FLOOR) if log else std)
            errors[1].append(std)
            lowest = min(lowest, height - errors[0][-1])
        shown = any(errors[1])
        ax.bar(spots, heights, width, yerr=errors if shown else None, capsize=2 if shown else 0, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))])
    if log:
        ax.set_yscale("log")
        ax.set_ylim(bottom=(lowest if math.isfinite(lowest) else 1.0) / 3)


def _present(rows: dict[str, dict[str, Any]], metrics: list[Metric]) -> list[Metric]:
    return [m for m in metrics if any(m.key in row for row in rows.values())]


def comparison_figure(result: dict[str, Any], title: Optional[str] = None) -> Any:
    """The figure of a `compare()` result (one run, or a summary over seeds:
    means with their std): accuracies, membership attacks and time (log
    scale), each tick marked with which way is better."""
    plt = pyplot()
    rows, shown = result["metrics"], table_metrics(request_kind(result))
    panels = [
        ("accuracy", [m for m in shown if m.key.startswith("acc_")], False),
        ("membership attacks", [m for m in shown if m.key.startswith("mia_")], False),
        ("time (s, log scale)", [m for m in shown if m.key == "seconds"], True),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5), gridspec_kw={"width_ratios": [4, 3, 1.5]})
    for ax, (panel, metrics, log) in zip(axes, panels):
        metrics = _present(rows, metrics)
        _bars(ax, rows, metrics, log)
        ax.set_xticklabels([f"{m.header} {m.mark}" for m in metrics], fontsize=8)
        ax.set_title(panel, fontsize=10)
    _finish(fig, axes[0], title or "Unlearning methods against retraining", len(rows))
    return fig


_DISTANCES = ("js_divergence", "activation_distance", "param_distance", "grad_residual", "grad_norm_forget")


def run_figure(columns: dict[str, dict[str, float]], title: Optional[str] = None) -> Any:
    """The figure of one method next to the original and the retrained model:
    accuracies and membership attacks, then distances and gradient norms
    (log scale)."""
    plt = pyplot()
    panels = [
        ("accuracy and membership attacks", [m for m in METRICS if m.key.startswith(("acc_", "mia_"))], False),
        ("distances and gradients (log scale)", [m for m in METRICS if m.key in _DISTANCES], True),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, (panel, metrics, log) in zip(axes, panels):
        metrics = [m for m in metrics if all(m.key in row for row in columns.values())]
        _bars(ax, columns, metrics, log)
        ax.set_xticklabels([f"{m.label} {m.mark}" for m in metrics], rotation=30, ha="right", fontsize=8)
        ax.set_title(panel, fontsize=10)
    _finish(fig, axes[0], title or "Unlearning against retraining", len(columns))
    return fig


def _finish(fig: Any, ax: Any, title: str, count: int) -> None:
    """The title, the legend of the rows and of the marks, below the panels."""
    fig.suptitle(title, fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.03), ncol=min(count, 6), fontsize=8)
    note = f"{LEGEND}; on log axes values below {LOG_FLOOR:g} are drawn at {LOG_FLOOR:g}"
    fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=7)
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))


def save(fig: Any, path: Path) -> None:
    """Writes `fig` to `path` (PNG) and frees it."""
    fig.savefig(path, dpi=120)
    pyplot().close(fig)


def plot_comparison(result: dict[str, Any], path: Path, title: Optional[str] = None) -> None:
    """Writes `comparison_figure(result, title)` to `path`."""
    save(comparison_figure(result, title), path)


def plot_run(columns: dict[str, dict[str, float]], path: Path, title: Optional[str] = None) -> None:
    """Writes `run_figure(columns, title)` to `path`."""
    save(run_figure(columns, title), path)
