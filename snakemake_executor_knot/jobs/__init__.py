"""What one Batch job carries, as the host writes it: the spec document, its values,
its paths, a group's members, and local mode's file transfers. Each module mirrors the
``runtime/`` module of the same name that reads it in the container."""
