"""Stage 1 of a job's journey: what a rule runs, and the code its image must hold.

``source`` is the entry point (a rule's kind and files). A ``run:`` block becomes a
generated module (``module``), written from the Snakefiles' original text (``text``) with
what it uses from their globals (``shipping``: ``imports`` and ``literals``).
"""
