"""The base image of rule images, as the local Docker engine knows it: its digest, recorded
in knot.lock, and the repository it is pulled from by that digest.

Pure over a docker client passed in: importing this module does not import the docker SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import DockerError


@dataclass(frozen=True)
class BaseImage:
    """The base image by name and by the digest it had when knot.lock was written."""

    name: str
    digest: str


def base_image_digest(docker_client: Any, name: str) -> str:
    """The digest ("sha256:...") of local image ``name``: its registry digest when it has
    one, else its image id (images made by ``docker import`` have no registry digest).
    Docker's own errors (image not found, engine down) pass through for the caller."""
    attrs = docker_client.images.get(name).attrs
    digests = sorted(attrs.get("RepoDigests") or [])
    if digests:
        repository = image_repository(name)
        matching = [d for d in digests if d.split("@", 1)[0] == repository] or digests
        return matching[0].split("@", 1)[1]
    if not attrs.get("Id"):
        raise DockerError(f"Docker reports neither a digest nor an id for image {name}.")
    return attrs["Id"]


def image_repository(name: str) -> str:
    """``name`` without its tag or digest: "python:3.11-slim" -> "python"."""
    name = name.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


__all__ = ["base_image_digest", "image_repository"]
