"""The forget-quality audit of every registered method on the embedded
digits CNN, for four requests: one class, 10 and 100 random samples, and 20
mislabelled samples; N models per side. Writes benchmarks/EVALUATION.md.

    python benchmarks/audit_digits.py [--models N] [--arch cnn]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import command, machine
from unlearn.audit import audit

REQUESTS = [
    ("one class", {"forget_class": 3}),
    ("10 random samples", {"forget_samples": 10}),
    ("100 random samples", {"forget_samples": 100}),
    ("20 mislabelled samples", {"mislabelled": 20}),
]
EVALUATION = Path(__file__).with_name("EVALUATION.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=32, help="models per side")
    parser.add_argument("--arch", default="cnn")
    parser.add_argument("--json", help="also write every result to this JSON file")
    args = parser.parse_args()
    sections, results = [], {}
    for title, request in REQUESTS:
        start = time.perf_counter()
        result = audit("all", models=args.models, arch=args.arch, progress=True, **request)
        minutes = (time.perf_counter() - start) / 60
        results[title] = result.to_dict()
        sections.append(f"### {title}\n\n```\n{result.table()}\n```\n\nAudit time: {minutes:.1f} min.")
        print(result.table(), flush=True)
    header = [
        "# Forget quality on the embedded digits",
        "",
        f"Machine: {machine()}",
        f"Command: `{command()}`",
        "",
        "Each table: N originals trained on all the training data, N references retrained without the forget",
        "data, N more retrained with other seeds (the `retrain` row: retraining against retraining, the",
        "ceiling), and each method run once on each original. F is the forget quality of the NeurIPS 2023",
        "unlearning challenge (per forget example, how well the unlearned models' outputs can be told from",
        "the references'), `final` is F times the retain and test accuracy ratios; the LiRA columns are a",
        "per-example likelihood-ratio attack (AUC 0.5: indistinguishable). Accuracies are mean +- std over",
        "the N models. The `original` row is doing nothing.",
        "",
    ]
    EVALUATION.write_text("\n".join(header) + "\n\n".join(sections) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
