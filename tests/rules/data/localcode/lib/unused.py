"""Imported by no rule: stays home."""
