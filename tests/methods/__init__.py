"""Tests of the unlearning methods: one file per method module."""
