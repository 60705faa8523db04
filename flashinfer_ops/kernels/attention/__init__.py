"""Attention, split by phase: decode.py, prefill.py."""
