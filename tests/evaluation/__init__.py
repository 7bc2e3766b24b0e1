"""Tests of unlearn.evaluation."""
