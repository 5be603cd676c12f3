"""The neuro example's own helpers: simulation, BIDS files and region statistics. knot ships
the modules a rule imports in that rule's image."""
