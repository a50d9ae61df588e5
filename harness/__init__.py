"""Test and benchmark support (not installed with the package): the tiny local model and
real-tokenizer fixtures, and server flags for quick CPU servers."""
