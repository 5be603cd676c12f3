"""Unit and API tests for per-rule images: Dockerfile text, build context, content-hash
tags, pip index build args, and the ECR skip logic against in-process moto."""

from __future__ import annotations

import importlib.metadata
import io
import json
import re
import subprocess
import sys
import tarfile

import pytest
from docker.errors import ImageNotFound

from snakemake_executor_knot.errors import AwsError, ConfigError, DockerError
from snakemake_executor_knot.image import dockerfile as dockerfile
from snakemake_executor_knot.image.base import BaseImage
from snakemake_executor_knot.image.builder import (
    ImageBuilder,
    base_reference,
    check_platform,
    docker_client,
)
from snakemake_executor_knot.image.dockerfile import (
    ImageSpec,
    build_context,
    image_tag,
    pip_build_args,
    render_dockerfile,
    requirements_txt,
    runtime_files,
)

RULE_FILE = "/opt/knot/lib/knot_rule.py"


def make_spec(**changes) -> ImageSpec:
    fields = {
        "rule": "fit",
        "base_image": "knot-base:py3.11",
        "requirements": ("numpy==2.1.0", "six==1.17.0"),
        "files": {RULE_FILE: b"def knot_run(input, output):\n    pass\n"},
    }
    fields.update(changes)
    return ImageSpec(**fields)


def line_index(text: str, prefix: str) -> int:
    lines = text.splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert len(found) == 1, f"expected one line starting {prefix!r}, got {found}"
    return found[0]


# --- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_layer_order():
    text = render_dockerfile(make_spec())
    order = [
        line_index(text, "FROM knot-base:py3.11"),
        line_index(text, "RUN set -e"),  # user knot, before anything is installed
        line_index(text, "RUN python3 -m venv /opt/knot/venv"),
        line_index(text, "COPY requirements.txt"),
        line_index(text, "RUN /opt/knot/venv/bin/pip install --no-cache-dir"),
        line_index(text, "COPY runtime/ /opt/knot/lib/knot_runtime/"),
        line_index(text, "COPY rule/ /opt/knot/"),
        line_index(text, "USER knot"),
        line_index(text, "CMD "),
    ]
    assert order == sorted(order)


def test_locked_dockerfile_installs_only_the_lock_with_hashes():
    hashed = ("numpy==2.1.0 --hash=sha256:" + "a" * 64, "boto3==1.0 --hash=sha256:" + "b" * 64)
    text = render_dockerfile(make_spec(requirements=hashed, locked=True, require_hashes=True))
    # boto3 and its dependencies come from the lock, not from a floating install.
    assert "RUN python3 -m venv /opt/knot/venv\n" in text and "boto3==" not in text
    assert "pip install --no-cache-dir --disable-pip-version-check --no-deps --require-hashes" in (
        text
    )
    unhashed = render_dockerfile(make_spec(locked=True))
    assert "--no-deps \\\n" in unhashed and "--require-hashes" not in unhashed


def test_locked_requirements_layer_depends_only_on_the_lock_lines():
    # A code edit changes the tag but not the Dockerfile, so docker reuses every layer up to
    # COPY rule/ (checked on real builds in tests/e2e/test_builder.py).
    locked = make_spec(locked=True, require_hashes=False)
    edited = make_spec(locked=True, files={RULE_FILE: b"def knot_run(input, output):\n    1\n"})
    assert render_dockerfile(locked) == render_dockerfile(edited)
    assert image_tag(locked) != image_tag(edited)


class FakeEngine:
    def __init__(self, arch="x86_64", images=None, system="Debian GNU/Linux 12 (bookworm)"):
        self.arch = arch
        self.system = system
        self.images = self
        self._images = images or {}

    def info(self):
        return {"Architecture": self.arch, "OperatingSystem": self.system, "OSType": "linux"}

    def get(self, name):
        if name not in self._images:
            raise ImageNotFound(name)
        return type("Image", (), {"attrs": self._images[name]})


def test_check_platform_accepts_the_native_architecture(tmp_path):
    check_platform(FakeEngine("x86_64"), "linux/amd64", binfmt_dir=tmp_path)
    check_platform(FakeEngine("aarch64"), "linux/arm64", binfmt_dir=tmp_path)


def test_check_platform_accepts_a_registered_emulator(tmp_path):
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/bin/qemu-aarch64\n")
    check_platform(FakeEngine("x86_64"), "linux/arm64", binfmt_dir=tmp_path)


def test_check_platform_accepts_docker_desktop_on_a_mac(tmp_path):
    """Apple silicon: Docker Desktop's engine is aarch64 in a VM that emulates amd64; this
    machine has no /proc/sys/fs/binfmt_misc (macOS has no /proc) to look in."""
    mac = FakeEngine("aarch64", system="Docker Desktop")
    check_platform(mac, "linux/amd64", binfmt_dir=tmp_path / "no-proc")
    check_platform(mac, "linux/arm64", binfmt_dir=tmp_path / "no-proc")
    with pytest.raises(DockerError, match="on a Mac, use Docker Desktop"):
        check_platform(FakeEngine("aarch64", system="Ubuntu 24.04"), "linux/amd64", tmp_path)
    with pytest.raises(DockerError):  # only the two Linux platforms are emulated
        check_platform(mac, "linux/riscv64", binfmt_dir=tmp_path)


def test_the_engine_here_reports_what_check_platform_reads():
    """The real engine's info carries the two keys the check reads."""
    docker = pytest.importorskip("docker")
    try:
        info = docker.from_env().info()
    except docker.errors.DockerException:
        pytest.skip("no Docker engine")
    assert info["Architecture"] and isinstance(info["OperatingSystem"], str)


@pytest.mark.parametrize("handler", [None, "disabled\n"])
def test_check_platform_says_how_to_build_the_other_architecture(tmp_path, handler):
    if handler:
        (tmp_path / "qemu-aarch64").write_text(handler)
    with pytest.raises(DockerError) as error:
        check_platform(FakeEngine("x86_64"), "linux/arm64", binfmt_dir=tmp_path)
    text = str(error.value)
    assert "linux/arm64" in text and "x86_64" in text and "qemu-user-static" in text
    assert "--knot-instance-types" in text


ID = "sha256:" + "1" * 64
DIGEST = "sha256:" + "2" * 64


def test_base_reference_of_a_local_image_checks_its_id():
    engine = FakeEngine(images={"knot-base:py3.11": {"Id": ID, "RepoDigests": []}})
    assert base_reference(engine, BaseImage("knot-base:py3.11", ID)) == "knot-base:py3.11"
    with pytest.raises(ConfigError, match="pins the base image knot-base:py3.11 to sha256:2"):
        base_reference(engine, BaseImage("knot-base:py3.11", DIGEST))


def test_base_reference_of_a_registry_image_is_by_digest():
    attrs = {"Id": ID, "RepoDigests": [f"python@{DIGEST}"]}
    engine = FakeEngine(images={"python:3.11-slim": attrs})
    assert base_reference(engine, BaseImage("python:3.11-slim", DIGEST)) == f"python@{DIGEST}"
    # Not here (another machine): the engine pulls it by digest.
    other = BaseImage("ghcr.io/org/py:1", DIGEST)
    assert base_reference(FakeEngine(), other) == f"ghcr.io/org/py@{DIGEST}"


def test_dockerfile_user_workdir_env_cmd():
    text = render_dockerfile(make_spec())
    assert "useradd --non-unique --uid 1000" in text
    assert ">> /etc/passwd" in text  # fallback for bases without useradd
    assert "chown knot /work" in text
    assert text.splitlines()[-5:] == [
        "ENV PYTHONPATH=/opt/knot/lib PYTHONUNBUFFERED=1 PATH=/opt/knot/venv/bin:$PATH",
        "WORKDIR /work",
        "USER knot",
        "ENTRYPOINT []",
        'CMD ["/opt/knot/venv/bin/python", "-m", "knot_runtime"]',
    ]


def test_dockerfile_pins_host_boto3():
    version = importlib.metadata.version("boto3")
    assert f"boto3=={version}" in render_dockerfile(make_spec())
    assert "boto3==1.2.3" in render_dockerfile(make_spec(), boto3_version="1.2.3")


def test_dockerfile_without_requirements_skips_layer():
    spec = make_spec(requirements=())
    text = render_dockerfile(spec)
    assert "requirements.txt" not in text
    with tarfile.open(fileobj=io.BytesIO(build_context(spec))) as tar:
        assert "requirements.txt" not in tar.getnames()


def test_dockerfile_from_container_keeps_its_path():
    text = render_dockerfile(make_spec(from_container=True))
    assert "PATH=/opt/knot/venv" not in text
    assert "ENV PYTHONPATH=/opt/knot/lib PYTHONUNBUFFERED=1\n" in text
    assert "USER root" in text  # the rule's container may end as a non-root user


def test_no_credentials_in_dockerfile_or_context(monkeypatch):
    secret = "wJalrXUtnFEMI-very-secret"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY")
    monkeypatch.setenv("PIP_INDEX_URL", f"https://user:{secret}@pypi.example.org/simple")
    spec = make_spec()
    text = render_dockerfile(spec)
    context = build_context(spec)
    assert "AWS_" not in text
    for needle in (secret, "AKIAEXAMPLEKEY", "pypi.example.org"):
        assert needle not in text
        assert needle.encode() not in context
    assert pip_build_args() == {}


# --- build context ------------------------------------------------------------------------


def test_build_context_layout_and_determinism():
    spec = make_spec(files={RULE_FILE: b"a", "/opt/knot/rule/scripts/plot.py": b"b"})
    first, second = build_context(spec), build_context(spec)
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        names = tar.getnames()
        assert "rule/lib/knot_rule.py" in names
        assert "rule/rule/scripts/plot.py" in names
        assert tar.extractfile("requirements.txt").read() == b"numpy==2.1.0\nsix==1.17.0\n"
        assert tar.extractfile("Dockerfile").read().decode() == render_dockerfile(spec)
        for name in runtime_files():
            assert f"runtime/{name}" in names
        assert {m.mtime for m in tar.getmembers()} == {0}


def test_requirements_txt_sorted_and_deduplicated():
    assert requirements_txt(["b==1", "a==2", "b==1", " "]) == b"a==2\nb==1\n"
    assert requirements_txt([]) == b""


@pytest.mark.parametrize(
    "path", ["relative.py", "/etc/passwd", "/opt/knot/../etc/x", "/opt/knot//lib/x.py", "/opt/knot"]
)
def test_spec_rejects_paths_outside_opt_knot(path):
    with pytest.raises(ValueError, match="under /opt/knot"):
        make_spec(files={path: b""})


def test_runtime_files_match_package_directory():
    expected = {
        p.relative_to(dockerfile.RUNTIME_DIR).as_posix()
        for p in dockerfile.RUNTIME_DIR.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    found = runtime_files()
    assert set(found) == expected
    for name, data in found.items():
        assert (dockerfile.RUNTIME_DIR / name).read_bytes() == data


def test_runtime_files_tolerate_missing_package(monkeypatch, tmp_path):
    monkeypatch.setattr(dockerfile, "RUNTIME_DIR", tmp_path / "absent")
    assert runtime_files() == {}
    assert len(image_tag(make_spec())) == 24


# --- tags ---------------------------------------------------------------------------------


def test_tag_is_stable_across_processes():
    code = (
        "from snakemake_executor_knot.image.dockerfile import ImageSpec, image_tag;"
        f"print(image_tag(ImageSpec(rule='fit', base_image='knot-base:py3.11',"
        f" requirements=('numpy==2.1.0', 'six==1.17.0'),"
        f" files={{{RULE_FILE!r}: b'def knot_run(input, output):\\n    pass\\n'}})))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == image_tag(make_spec())


def test_tag_ignores_rule_name_and_input_order():
    tag = image_tag(make_spec())
    assert image_tag(make_spec(rule="other")) == tag
    assert image_tag(make_spec(requirements=("six==1.17.0", "numpy==2.1.0"))) == tag


@pytest.mark.parametrize(
    "changes",
    [
        {"files": {RULE_FILE: b"def knot_run(input, output):\n    print(1)\n"}},
        {"files": {RULE_FILE: b"def knot_run(input, output):\n    pass\n", "/opt/knot/x": b""}},
        {"requirements": ("numpy==2.1.1", "six==1.17.0")},
        {"requirements": ()},
        {"base_image": "python:3.11-slim"},
        {"from_container": True},
        {"platform": "linux/arm64"},
        {"locked": True},
    ],
)
def test_tag_changes_with_content(changes):
    assert image_tag(make_spec(**changes)) != image_tag(make_spec())


def test_tag_changes_with_runtime_source(monkeypatch, tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    (runtime / "__main__.py").write_text("print('a')\n")
    monkeypatch.setattr(dockerfile, "RUNTIME_DIR", runtime)
    before = image_tag(make_spec())
    (runtime / "__main__.py").write_text("print('b')\n")
    assert image_tag(make_spec()) == before  # read once per process
    dockerfile._read_runtime.cache_clear()
    assert image_tag(make_spec()) != before


def test_tag_changes_with_knot_version_and_template(monkeypatch):
    before = image_tag(make_spec())
    monkeypatch.setattr(dockerfile, "__version__", "999.0")
    after_version = image_tag(make_spec())
    monkeypatch.setattr(dockerfile, "TEMPLATE_VERSION", "999")
    assert len({before, after_version, image_tag(make_spec())}) == 3


# --- pip index build args -----------------------------------------------------------------


def test_pip_build_args_filter():
    environ = {
        "PIP_INDEX_URL": "https://pypi.example.org/simple",
        "PIP_EXTRA_INDEX_URL": (
            "file:///opt/wheels http://127.0.0.1:3141/simple https://u:p@private.example/simple"
        ),
        "PIP_FIND_LINKS": "/opt/wheels",
    }
    assert pip_build_args(environ) == {
        "PIP_INDEX_URL": "https://pypi.example.org/simple",
        "PIP_EXTRA_INDEX_URL": "http://127.0.0.1:3141/simple",
    }


@pytest.mark.parametrize(
    "value", ["file:///srv/simple", "/local/dir", "https://tok@host/simple", "ftp://h/x", ""]
)
def test_pip_build_args_drop_unusable_index(value):
    assert pip_build_args({"PIP_INDEX_URL": value}) == {}


# --- ECR skip logic (moto in-process) -----------------------------------------------------


class NoDockerAllowed:
    """Stands in for the docker client only to prove that nothing is built or pushed."""

    class api:
        @staticmethod
        def build(**_kwargs):
            raise AssertionError("ensure() built an image that ECR already holds")

        @staticmethod
        def push(*_args, **_kwargs):
            raise AssertionError("ensure() pushed an image that ECR already holds")


def fake_manifest(seed: str) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": f"sha256:{seed * 64}"[:71], "size": 1, "mediaType": "x"},
            "layers": [],
        }
    )


@pytest.fixture
def repository(clients):
    return clients.ecr.create_repository(repositoryName="knot")["repository"]


def builder_for(clients, repository) -> ImageBuilder:
    return ImageBuilder(
        NoDockerAllowed(), clients.ecr, repository["repositoryUri"], repository["repositoryName"]
    )


def test_ensure_skips_tag_already_in_ecr(clients, repository, calls):
    spec = make_spec()
    tag = image_tag(spec)
    clients.ecr.put_image(repositoryName="knot", imageManifest=fake_manifest("a"), imageTag=tag)
    builder = builder_for(clients, repository)
    assert builder.ensure(spec) == f"{repository['repositoryUri']}:{tag}"
    assert (builder.built, builder.pushed, builder.skipped) == (0, 0, 1)
    assert calls["ecr.DescribeImages"] == 1
    assert calls["ecr.GetAuthorizationToken"] == 0


def test_ensure_all_deduplicates_identical_images(clients, repository, calls):
    shared, other = make_spec(rule="a"), make_spec(rule="c", requirements=())
    for index, spec in enumerate((shared, other)):
        clients.ecr.put_image(
            repositoryName="knot", imageManifest=fake_manifest(str(index)), imageTag=image_tag(spec)
        )
    builder = builder_for(clients, repository)
    uris = builder.ensure_all([shared, make_spec(rule="b"), other])
    assert uris["a"] == uris["b"] != uris["c"]
    assert builder.skipped == 2
    assert calls["ecr.DescribeImages"] == 2
    assert builder.ensure_all([]) == {}


def test_tag_lookup_tells_absent_from_present(clients, repository):
    spec = make_spec()
    builder = builder_for(clients, repository)
    assert builder._in_ecr(spec, image_tag(spec)) is False  # ImageNotFoundException
    clients.ecr.put_image(
        repositoryName="knot", imageManifest=fake_manifest("b"), imageTag=image_tag(spec)
    )
    assert builder._in_ecr(spec, image_tag(spec)) is True


def test_missing_repository_is_an_aws_error_naming_the_rule(clients):
    builder = ImageBuilder(NoDockerAllowed(), clients.ecr, "123.dkr.ecr/none", "none")
    with pytest.raises(AwsError, match="rule 'fit'.*RepositoryNotFoundException"):
        builder.ensure(make_spec())


def test_auth_config_from_ecr_token(clients, repository, calls):
    builder = builder_for(clients, repository)
    auth = builder._auth_config(make_spec())
    assert auth["username"] == "AWS"
    assert auth["password"]
    assert auth["serveraddress"].startswith("https://")
    assert builder._auth_config(make_spec()) is auth
    assert calls["ecr.GetAuthorizationToken"] == 1


def test_unreachable_engine_is_a_docker_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(DockerError, match="No Docker engine is reachable.*scripts/ensure-docker"):
        docker_client()


class PushRefused:
    """A docker client whose build succeeds and whose push ECR refuses, as it refuses a tag
    that already exists in a repository with immutable tags. ``meanwhile`` runs first: the
    other run's push landing between our lookup and our push."""

    def __init__(self, tag: str, meanwhile=lambda: None) -> None:
        self.api = self
        self.tag = tag
        self.meanwhile = meanwhile

    def build(self, **_kwargs):
        return iter([{"stream": "built"}])

    def inspect_image(self, _reference):
        return {"Size": 123_000_000}

    def push(self, *_args, **_kwargs):
        self.meanwhile()
        refusal = (
            f"tag invalid: The image tag '{self.tag}' already exists in the 'knot' repository "
            "and cannot be overwritten because the repository is immutable."
        )
        return iter([{"status": "Pushing"}, {"error": refusal}])


def test_a_tag_another_run_pushed_first_counts_as_pushed(clients, repository):
    spec = make_spec()
    tag = image_tag(spec)

    def other_run_pushes() -> None:
        clients.ecr.put_image(repositoryName="knot", imageManifest=fake_manifest("c"), imageTag=tag)

    docker = PushRefused(tag, other_run_pushes)
    builder = ImageBuilder(
        docker, clients.ecr, repository["repositoryUri"], repository["repositoryName"]
    )
    assert builder.ensure(spec) == f"{repository['repositoryUri']}:{tag}"
    assert (builder.built, builder.pushed, builder.skipped) == (1, 1, 0)


def test_a_refused_push_of_a_tag_ecr_lacks_is_an_error(clients, repository):
    spec = make_spec()
    docker = PushRefused(image_tag(spec))
    builder = ImageBuilder(
        docker, clients.ecr, repository["repositoryUri"], repository["repositoryName"]
    )
    with pytest.raises(DockerError, match="Pushing the image .* cannot be overwritten"):
        builder.ensure(spec)


class PushLands:
    """A docker client whose build succeeds and whose push lands in (moto's) ECR, as the
    emulator's registry makes it land; it counts builds."""

    def __init__(self, ecr) -> None:
        self.api, self.ecr, self.builds = self, ecr, 0

    def build(self, **_kwargs):
        self.builds += 1
        return iter([{"stream": "Step 1/1"}])

    def inspect_image(self, _reference):
        return {"Size": 245_000_000}

    def push(self, _repository, tag, **_kwargs):
        self.ecr.put_image(repositoryName="knot", imageManifest=fake_manifest(tag[0]), imageTag=tag)
        return iter([{"status": "Pushed"}])


def test_each_image_says_found_built_n_of_m_and_pushed(clients, repository):
    cached, first, second = (
        make_spec(rule="a"),
        make_spec(rule="b", requirements=()),
        make_spec(rule="c", requirements=("numpy==2.0.0",)),
    )
    clients.ecr.put_image(
        repositoryName="knot", imageManifest=fake_manifest("9"), imageTag=image_tag(cached)
    )
    docker, said = PushLands(clients.ecr), []
    ticks = iter(range(100))
    builder = ImageBuilder(
        docker, clients.ecr, repository["repositoryUri"], "knot", said.append, lambda: next(ticks)
    )
    builder.ensure_all([cached, first, second])
    assert docker.builds == 2
    assert said[0] == f"knot: image for rule a found in ECR ({image_tag(cached)[:12]}), not rebuilt"
    assert said[1] == "knot: building 2 images (2 at a time): rule b, rule c"
    built = sorted(line for line in said if line.startswith("knot: built image"))
    assert [line.split(" for ")[0] for line in built] == [
        "knot: built image 1 of 2",
        "knot: built image 2 of 2",
    ]
    assert all(re.search(r"in \d+\.0 s, 245 MB; pushing$", line) for line in built)
    assert sum(line.startswith("knot: pushed the image for rule") for line in said) == 2
    entries = {tuple(e["rules"]): e for e in builder.builds}
    assert entries[("a",)] == {"rules": ["a"], "tag": image_tag(cached), "outcome": "cached"}
    made = entries[("b",)]
    assert made["outcome"] == "built" and made["size_bytes"] == 245_000_000
    assert made["build"][0] < made["build"][1] <= made["push"][0] < made["push"][1]
    # A second run finds all three in ECR: nothing is built.
    again: list[str] = []
    ImageBuilder(docker, clients.ecr, repository["repositoryUri"], "knot", again.append).ensure_all(
        [cached, first, second]
    )
    assert docker.builds == 2 and all("found in ECR" in line for line in again)
