"""Tests of torch-unlearn, in folders named for the unit they test."""
