"""What counts as damage to the retained data, shared by every layer that
checks or reports it."""

from __future__ import annotations

RETAIN_TOLERANCE = 0.05
"""The largest fall of the retained accuracy (absolute, 0.05 = 5 points) that
`unlearn.forget()` accepts without a `QualityWarning`, and that the guard of
the optimising methods allows before it backs off."""


class QualityWarning(UserWarning):
    """An unlearning call harmed the retained data: its accuracy fell by more
    than `RETAIN_TOLERANCE` or its loss became non-finite, or a guard stopped
    the method early. The message names the method's options that control
    the damage."""
