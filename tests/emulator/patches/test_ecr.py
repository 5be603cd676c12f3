"""The ECR patches' pure rule: docker login points at the local registry."""

from __future__ import annotations

from snakemake_executor_knot.emulator.patches import ecr


def test_authorization_data_points_at_the_local_registry():
    [data] = ecr.authorization_data(["123456789012"], "127.0.0.1:5101")
    assert data["proxyEndpoint"] == "https://127.0.0.1:5101"
    assert data["authorizationToken"]
