"""Progress for long steps: a tqdm bar when tqdm is installed, plain lines on
stderr otherwise (tqdm is optional, and a missing bar is no reason to warn)."""

from __future__ import annotations

import sys
from typing import Any, Iterable, Iterator


class _Silent:
    """What stands in for the bar when no progress is shown."""

    def set_description(self, text: str) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class _Lines:
    """One line on stderr per finished step: "description: done/total"."""

    def __init__(self, total: int, description: str) -> None:
        self.total, self.description, self.done = total, description, 0

    def set_description(self, text: str) -> None:
        self.description = text

    def update(self, n: int = 1) -> None:
        self.done += n
        print(f"{self.description}: {self.done}/{self.total}", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress_bar(total: int, description: str, enabled: bool, unit: str = "it") -> Any:
    """A bar of `total` steps with tqdm's `set_description`, `update` and
    `close`: tqdm's when installed, plain lines without it, silent when not
    `enabled`."""
    if not enabled:
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Lines(total, description)
    return tqdm(total=total, desc=description, unit=unit)


def progress(steps: Iterable[int], total: int, description: str, enabled: bool, unit: str = "it") -> Iterator[int]:
    """`steps`, counted on a `progress_bar` as they are consumed."""
    bar = progress_bar(total, description, enabled, unit)
    try:
        for step in steps:
            yield step
            bar.update()
    finally:
        bar.close()
