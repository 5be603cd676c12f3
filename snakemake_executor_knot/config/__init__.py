"""Configuration: the ``--knot-*`` flags, the compute-class grammar, and a run's settings
as the workflow completes them."""
