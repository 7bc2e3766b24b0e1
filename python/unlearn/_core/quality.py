"""What counts as damage to the retained data, shared by every layer that
checks or reports it."""

from __future__ import annotations

RETAIN_TOLERANCE = 0.05
"""The largest fall of the retained accuracy (absolute, 0.05 = 5 points) that
`unlearn.forget()` accepts without a `QualityWarning`, and that the guard of
the optimising methods allows before it backs off."""

RETAIN_LOSS_GROWTH = (1.25, 0.1)
"""(factor, nats): a retained loss that ends above both factor x its start
and its start + nats also warns. On data the model fits, accuracy hides
damage that held-out data shows: a ResNet losing 8 points of test accuracy
lost 4 on its training data, while its training loss rose from 0.30 to 0.47;
a rise from 0.01 to 0.07 on a model that keeps its test accuracy does not
warn."""

FORGET_KEPT = 0.5
"""A class request warns when the forget classes keep more than this share of
their accuracy on `forget()`'s check samples: a model retrained without them
classifies almost none of them (0.000 +- 0.000 on the digits audit)."""


class QualityWarning(UserWarning):
    """An unlearning call harmed the retained data: its accuracy fell by more
    than `RETAIN_TOLERANCE`, its loss grew past `RETAIN_LOSS_GROWTH` or became
    non-finite, or a guard stopped the method early; or a class request left
    its classes more than `FORGET_KEPT` of their accuracy. The message names
    the method's options that control the damage."""
