"""The workflow's own helpers."""
