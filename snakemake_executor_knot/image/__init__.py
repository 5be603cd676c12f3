"""Stage 2: a rule's container image. ``requirements`` pins what its code imports,
``dockerfile`` renders the image and its content-hash tag (pure), and ``builder`` builds,
pushes, or skips both when ECR already holds the tag. ``base`` reads the base image's
digest, and ``group`` makes one image for a group's member rules."""
