"""What the distilling methods share: a frozen copy of a model to learn from
(or, for `boundary_shrink`, to attack) and the temperature-scaled KL loss."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def distill_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean over the batch of KL(softmax(teacher / T) || softmax(student / T))
    times T^2 (Hinton et al.'s scaling, which keeps the gradient's size
    independent of T). `teacher` holds logits without gradient."""
    log_student = F.log_softmax(student / temperature, dim=1)
    log_teacher = F.log_softmax(teacher / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def frozen_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` in eval mode whose parameters take no gradient: a teacher."""
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
