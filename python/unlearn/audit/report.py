"""What an audit returns and how it is shown: a table, a JSON-ready dict and
a plot (per-method epsilon histograms, scores and accuracies)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..compare.display import mean_std, pyplot

# Table columns: (key, header, format); accuracies are "mean +- std" cells.
_COLUMNS = [
    ("forget_quality", "F", "{:.3f}"),
    ("final_score", "final", "{:.3f}"),
    ("lira_auc", "LiRA AUC", "{:.3f}"),
    ("lira_tpr_at_1pct_fpr", "TPR@1%", "{:.3f}"),
    ("acc_retain", "retain acc", None),
    ("acc_forget", "forget acc", None),
    ("acc_test", "test acc", None),
    ("acc_test_kept", "test acc kept", None),
    ("seconds", "time (s)", "{:.3g}"),
    ("speedup", "vs retrain", "{:.1f}x"),
]

LEGEND = (
    "F and final: higher is closer to retraining, and the retrain row (retraining against retraining) is the "
    "best this many models can show; LiRA AUC: 0.5 is indistinguishable from retraining; accuracies: the "
    "closer to the retrain row the better (lower forget accuracy than retraining is over-forgetting)."
)


@dataclass
class AuditResult:
    """Per row ("original", "retrain" and each method): forget quality F, the
    challenge's final score, the LiRA AUC and TPRs, accuracies as {"mean",
    "std"} over the models, mean seconds per run and the speed-up over one
    retraining. `epsilons` holds each row's per-example epsilons; `info`
    describes the request; `skipped` and `failed` give the methods that did
    not run (or raised) with the reason."""

    rows: dict[str, dict[str, Any]]
    epsilons: dict[str, torch.Tensor]
    info: dict[str, Any]
    skipped: dict[str, str]
    failed: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the rows, the epsilons as lists, the request."""
        return {
            "info": self.info,
            "rows": self.rows,
            "epsilons": {name: values.tolist() for name, values in self.epsilons.items()},
            "skipped": self.skipped,
            "failed": self.failed,
        }

    def table(self) -> str:
        """The rows as a fixed-width table with a header line and the legend."""
        columns = [c for c in _COLUMNS if any(c[0] in row for row in self.rows.values())]
        cells = {name: [_cell(row.get(key), fmt) for key, _, fmt in columns] for name, row in self.rows.items()}
        widths = [max(len(head), *(len(cells[n][j]) for n in cells)) for j, (_, head, _) in enumerate(columns)]
        first = max(len("method"), *(len(name) for name in cells))
        info = self.info
        lines = [
            f"{info['request']}, {info['models']} models per side"
            + (f", {info['arch']}" if info.get("arch") else "")
            + f" (forget quality at delta = {info['delta']:g})",
            f"{'method':<{first}}  " + "  ".join(f"{head:>{w}}" for (_, head, _), w in zip(columns, widths)),
        ]
        for name, row in cells.items():
            lines.append(f"{name:<{first}}  " + "  ".join(f"{cell:>{w}}" for cell, w in zip(row, widths)))
        lines += [f"{name}: skipped, {why}" for name, why in self.skipped.items()]
        lines += [f"{name}: failed, {why}" for name, why in self.failed.items()]
        lines.append(LEGEND)
        return "\n".join(lines)

    def plot(self, path: str) -> None:
        """Writes a figure to `path`: one histogram of per-example epsilons per
        row, and a panel of F, the final score and the mean accuracies (with
        their std). Needs matplotlib."""
        plt = pyplot()
        names = list(self.rows)
        fig = plt.figure(figsize=(max(10, 2.2 * len(names)), 7))
        grid = fig.add_gridspec(2, len(names))
        # The scored range ends at ceil(log(N - 1)); every epsilon beyond it (worth 0) shares the last bar.
        scored = max(math.ceil(math.log(max(self.info["models"] - 1, 1))), 0.5)
        bins = [0.5 * i for i in range(int(2 * scored) + 2)]
        for i, name in enumerate(names):
            ax = fig.add_subplot(grid[0, i])
            values = self.epsilons[name].clamp(max=scored + 0.25).tolist()
            ax.hist(values, bins=bins, color="C7" if name in ("original", "retrain") else "C0")
            ax.set_title(f"{name}\nF = {self.rows[name]['forget_quality']:.3f}", fontsize=9)
            ax.set_xlabel(f"epsilon (last bar: > {scored:g})", fontsize=8)
            ax.tick_params(labelsize=7)
        ax = fig.add_subplot(grid[1, :])
        keys = [
            k
            for k in ("forget_quality", "final_score", "acc_retain", "acc_forget", "acc_test")
            if k in self.rows[names[0]]
        ]
        width = 0.8 / len(keys)
        for j, key in enumerate(keys):
            means, errors = zip(*(mean_std(self.rows[n][key]) for n in names))
            ax.bar([i + j * width for i in range(len(names))], means, width, yerr=errors, label=key, capsize=2)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))])
        ax.set_xticklabels(names, fontsize=8)
        ax.set_title("forget quality, final score and accuracies (mean +- std over the models)", fontsize=10)
        ax.legend(fontsize=8, ncol=len(keys))
        fig.suptitle(f"Audit: {self.info['request']}, {self.info['models']} models per side", fontsize=11)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def _cell(value: Any, fmt: Optional[str]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, dict):
        return f"{value['mean']:.3f} +- {value['std']:.3f}"
    return fmt.format(value)
