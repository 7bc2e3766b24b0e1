"""Shared benchmark helpers: timing medians, the machine, RESULTS.md sections."""

from __future__ import annotations

import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

import unlearn

RESULTS = Path(__file__).with_name("RESULTS.md")


def median_seconds(fn: Callable[[], object], repeats: int = 3, sync: bool = False) -> float:
    """Median wall time of `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cuda_seconds(fn: Callable[[], object], repeats: int = 10) -> float:
    """Median GPU time of `repeats` calls after one warm-up call, from CUDA events
    (host-side work of `fn` that delays the device counts too)."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def machine(device: str = "cpu") -> str:
    """One line naming the processor (or GPU), cores, torch and the backends."""
    if device == "cuda":
        where = f"{torch.cuda.get_device_name()}, {os.cpu_count()} CPU cores"
    else:
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        where = f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    ops = ", ".join(f"{k}: {v}" for k, v in unlearn.backend().items())
    return f"{where}; torch {torch.__version__}; Python {platform.python_version()}; backends: {ops}"


def write_section(name: str, body: str) -> None:
    """Replaces the section `name` of RESULTS.md (between its markers), or appends it."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = (
        RESULTS.read_text()
        if RESULTS.exists()
        else "# Benchmark results\n\nMedians of repeated runs, measured side by side in one run of each script.\n"
    )
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def command() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
