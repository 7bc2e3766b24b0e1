"""The shared adversarial search: an input on a bound of the input range still
moves inward, whatever gradient the installed torch gives its clamp there."""

from __future__ import annotations

import torch
from torch import nn

from unlearn.methods.attacks import _start, pgd


def _rising_model() -> nn.Linear:
    """Two logits; class 1's rises with every input, so every input's
    gradient of the cross-entropy of class 0 is positive."""
    model = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    return model


def test_fgsm_moves_an_input_on_the_lower_bound_inward():
    """Torch 2.14 gives clamp a gradient of 0 on the bound itself (1 before):
    through the clamp, the first input (at 0) could never rise."""
    x = torch.tensor([[0.0, 0.5, 1.0]])
    adv = pgd(_rising_model(), x, torch.tensor([0]), 0.25, 0.25, 1, (0.0, 1.0), None, norm="linf",
              targeted=False, random_start=False)  # fmt: skip
    assert torch.equal(adv, torch.tensor([[0.25, 0.75, 1.0]]))  # the input at 1 stays on its bound


def test_an_input_outside_the_bounds_takes_no_gradient_step():
    """A random start can leave an input past a bound, where the clamp holds
    the model's input fixed: that step does not move it (the clamp's true
    derivative, 0), and the step's clamp brings it back to the bound."""
    x = torch.tensor([[0.0, 0.5, 0.5]])
    start = _start(x, 0.3, "linf", torch.Generator().manual_seed(0))  # pgd's own start for this seed
    assert float(x[0, 0] + start[0, 0]) < 0  # puts the first input below 0
    gen = torch.Generator().manual_seed(0)
    adv = pgd(_rising_model(), x, torch.tensor([0]), 0.3, 0.01, 1, (0.0, 1.0), gen, norm="linf", targeted=False)
    assert float(adv[0, 0]) == 0.0
    torch.testing.assert_close(adv[0, 1:], (x + start)[0, 1:] + 0.01)
