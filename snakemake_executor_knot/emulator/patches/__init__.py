"""Fidelity fixes for moto, applied inside the emulator's serve process only.

One module per AWS service, each documenting its fixes:

- ``batch``: Batch jobs' environment, logs, outcome, array parents and SubmitJob limits.
- ``cloudformation``: stack names claimed atomically, inline policies replaced on update,
  route tables, job queues and compute environments deleted with their stack.
- ``ecr``: repository URIs and docker login pointing at the local registry, and pushes to
  it appearing in ECR.
- ``s3``: bucket policies checked without their conditions, ranged GETs reading only
  their range.
- ``faults``: injected faults (``knot emulator faults``) put in front of moto's server.

``fidelity`` holds what the patches know about the running emulator, and ``install``
applies them all (``install.apply``, called by the serve process in ``emulator.server``).
``descriptors`` reads the properties and classmethods of moto's that patches wrap.

Each patch says what AWS does and why knot depends on it. The pure helpers hold the rules
and are tested on their own; the ``patch_*`` functions only wire them into moto.
"""
