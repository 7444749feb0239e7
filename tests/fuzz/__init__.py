"""Fuzzing of the two hostile-input gates: the normalizer and the alert-rule loader."""
