"""Tests of the ops in torch.ops.unlearn: one file per op."""
