"""The base image's digest as the local engine reports it (a stand-in docker client)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from snakemake_executor_knot.errors import DockerError
from snakemake_executor_knot.image.base import base_image_digest

SHA_A = "sha256:" + "a" * 64
SHA_B = "sha256:" + "b" * 64
SHA_C = "sha256:" + "c" * 64


def fake_docker(attrs: dict):
    images = {"python:3.11-slim": SimpleNamespace(attrs=attrs)}
    return SimpleNamespace(images=SimpleNamespace(get=images.__getitem__))


def test_base_image_digest_prefers_the_repo_digest():
    attrs = {
        "Id": SHA_A,
        "RepoDigests": [f"mirror.example/python@{SHA_B}", f"python@{SHA_C}"],
    }
    assert base_image_digest(fake_docker(attrs), "python:3.11-slim") == SHA_C


def test_base_image_digest_of_an_imported_image_is_its_id():
    assert (
        base_image_digest(fake_docker({"Id": SHA_A, "RepoDigests": []}), "python:3.11-slim")
        == SHA_A
    )
    with pytest.raises(DockerError, match="python:3.11-slim"):
        base_image_digest(fake_docker({}), "python:3.11-slim")
