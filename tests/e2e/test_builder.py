"""End to end: real docker builds of a rule image FROM knot-base:py3.11, pushed to a
throwaway local registry standing in for ECR (ECR's API itself is in-process moto)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import re
import socket
import subprocess
import time
import urllib.request

import pytest
from docker.errors import APIError, NotFound

from snakemake_executor_knot.emulator.registry import registry_binary
from snakemake_executor_knot.errors import DockerError
from snakemake_executor_knot.image.builder import ImageBuilder, docker_client
from snakemake_executor_knot.image.dockerfile import ImageSpec, image_tag

pytestmark = pytest.mark.e2e

BASE = "knot-base:py3.11"
RULE_FILE = "/opt/knot/lib/knot_rule.py"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A local registry on 127.0.0.1 (docker pushes there over plain HTTP); yields host:port.
    The binary is installed when missing: a tier that cannot run fails, never skips."""
    binary = registry_binary()
    root = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {address}\n"
    )
    log = (root / "registry.log").open("w")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        wait_for(f"http://{address}/v2/")
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def engine(docker_engine, base_image):
    """The session's engine and base image (their fixtures fail when they cannot be had)."""
    assert base_image == BASE
    client = docker_client()
    yield client
    client.close()


class Cleanup:
    """Removes what the tests built, as their build output names it: the tagged images,
    then untagged intermediate layers; never another tagged image (such as the base)."""

    def __init__(self, client) -> None:
        self.client = client
        self.tags: list[str] = []
        self.layer_ids: list[str] = []
        self.extra_images: list[str] = []

    def collect(self, build_output: str) -> None:
        self.tags += re.findall(r"Successfully tagged (\S+)", build_output)
        self.layer_ids += re.findall(r"---> ([0-9a-f]{12})\b", build_output)

    def remove(self) -> None:
        for tag in self.tags:
            with contextlib.suppress(NotFound):
                self.client.images.remove(tag, force=True)
        for layer in reversed(self.layer_ids):
            try:
                if not self.client.api.inspect_image(layer)["RepoTags"]:
                    self.client.api.remove_image(layer)
            except (NotFound, APIError):
                pass  # gone with its child, or still a parent of someone else's image
        for image in self.extra_images:
            self.client.images.remove(image)


@pytest.fixture(scope="module")
def cleanup(engine):
    """Module-wide, so the tests share the base venv layer instead of each rebuilding it."""
    cleanup = Cleanup(engine)
    yield cleanup
    cleanup.remove()


@pytest.fixture
def setup(engine, registry, clients, cleanup, caplog):
    caplog.set_level(logging.DEBUG, logger="knot.image")
    ecr = clients.ecr
    ecr.create_repository(repositoryName="knot")
    yield engine, ecr, f"{registry}/knot"
    # caplog.text holds only the current phase's records; the builds logged during "call".
    for record in caplog.get_records("call"):
        cleanup.collect(record.getMessage())


def rule_spec(body: str, requirements=("six==1.17.0",)) -> ImageSpec:
    source = f"import six\n\ndef knot_run():\n    {body}\n"
    return ImageSpec(
        rule="hello",
        base_image=BASE,
        requirements=requirements,
        files={RULE_FILE: source.encode()},
    )


def build_steps(log_text: str, since: int) -> list[tuple[str, bool]]:
    """(instruction, cached) for each step of the build logged after offset ``since``."""
    steps: list[tuple[str, bool]] = []
    for line in log_text[since:].splitlines():
        step = re.search(r"Step \d+/\d+ : (.*)", line)
        if step:
            steps.append((step.group(1), False))
        elif "---> Using cache" in line and steps:
            steps[-1] = (steps[-1][0], True)
    return steps


def registry_manifest(registry: str, tag: str) -> str:
    request = urllib.request.Request(
        f"http://{registry}/v2/knot/manifests/{tag}", headers={"Accept": MANIFEST_V2}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def run_in_image(uri: str, command: str) -> str:
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "host", uri, "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_build_push_run_skip_and_code_only_rebuild(setup, registry, caplog):
    engine, ecr, repository = setup
    spec = rule_spec("print('hello from', six.__name__)")
    tag = image_tag(spec)

    started = time.monotonic()
    uri = ImageBuilder(engine, ecr, repository, "knot").ensure(spec)
    cold = time.monotonic() - started
    assert uri == f"{repository}:{tag}"

    # The image runs as knot, with the requirement and the rule module importable.
    out = run_in_image(uri, "python -c 'import six, knot_rule; print(six.__version__)'; id -u")
    assert out.split() == ["1.17.0", "1000"]
    assert json.loads(registry_manifest(registry, tag))["mediaType"] == MANIFEST_V2

    # Once ECR lists the tag, a fresh builder neither builds nor pushes.
    ecr.put_image(
        repositoryName="knot", imageManifest=registry_manifest(registry, tag), imageTag=tag
    )
    again = ImageBuilder(engine, ecr, repository, "knot")
    assert again.ensure(spec) == uri
    assert (again.built, again.pushed, again.skipped) == (0, 0, 1)

    # Editing the run block rebuilds only the rule-files layer (and the metadata after it).
    since = len(caplog.text)
    edited = rule_spec("print('edited')")
    started = time.monotonic()
    edited_uri = again.ensure(edited)
    code_only = time.monotonic() - started
    assert edited_uri != uri and (again.built, again.pushed) == (1, 1)
    steps = build_steps(caplog.text, since)
    rule_step = [i for i, (instr, _) in enumerate(steps) if instr.startswith("COPY rule/")]
    assert rule_step, steps
    assert all(cached for _, cached in steps[1 : rule_step[0]]), steps
    assert not any(cached for _, cached in steps[rule_step[0] :]), steps
    print(f"\nimage build: cold {cold:.1f} s (incl. push), code-only {code_only:.1f} s")
    assert code_only < cold


def test_ensure_all_builds_each_distinct_image_once(setup):
    engine, ecr, repository = setup
    first = rule_spec("print(1)", requirements=())
    builder = ImageBuilder(engine, ecr, repository, "knot")
    uris = builder.ensure_all([first, dataclasses.replace(first, rule="twin")])
    assert uris["hello"] == uris["twin"]
    assert (builder.built, builder.pushed) == (1, 1)


def test_failed_pip_install_names_rule_and_shows_output(setup):
    engine, ecr, repository = setup
    spec = rule_spec("pass", requirements=("knot-no-such-distribution-xyz==0.0.1",))
    builder = ImageBuilder(engine, ecr, repository, "knot")
    with pytest.raises(DockerError) as failure:
        builder.ensure(spec)
    message = str(failure.value)
    assert "rule 'hello'" in message
    assert "knot-no-such-distribution-xyz" in message  # pip's own words, from the build tail
    assert (builder.built, builder.pushed) == (0, 0)
    assert not engine.images.list(name=f"{repository}:{image_tag(spec)}")


@pytest.fixture
def minimal_base(engine, cleanup):
    """A base like a rule's own container: no useradd, a non-root USER, an ENTRYPOINT."""
    tag = f"knot-e2e-minimal-base:{free_port()}"
    dockerfile = f'FROM {BASE}\nRUN rm /usr/sbin/useradd\nUSER nobody\nENTRYPOINT ["/bin/false"]\n'
    engine.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, network_mode="host", rm=True, forcerm=True
    )
    cleanup.extra_images.append(tag)
    return tag


def test_minimal_base_without_useradd(setup, minimal_base):
    engine, ecr, repository = setup
    spec = dataclasses.replace(
        rule_spec("pass", requirements=()), base_image=minimal_base, from_container=True
    )
    uri = ImageBuilder(engine, ecr, repository, "knot").ensure(spec)
    out = run_in_image(uri, "id -un; id -u; /opt/knot/venv/bin/python -c 'import boto3, knot_rule'")
    assert out.split() == ["knot", "1000"]
    assert engine.images.get(uri).attrs["Config"]["User"] == "knot"
