"""knot.lock: its format, the dependency closure it pins, its drift against the workflow,
and loading a workflow to write it (``knot lock``)."""
