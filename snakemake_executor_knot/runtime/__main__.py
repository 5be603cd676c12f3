"""Entry point: ``python -m knot_runtime`` inside the job's container."""

from __future__ import annotations

from .job import main

if __name__ == "__main__":
    raise SystemExit(main())
