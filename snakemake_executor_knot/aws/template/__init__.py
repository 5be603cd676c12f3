"""knot's shared infrastructure as one CloudFormation template, built as a dict (pure).

``assembly`` puts the whole template together from one module per resource family:
``iam``, ``network``, ``storage`` and ``compute``, which share the helpers of ``common``.
Import each name from the module that defines it.
"""
