"""Per-rule container images: build with the Docker engine, push to ECR, and skip both
when ECR already holds the content-hash tag. The pure parts live in ``dockerfile``."""

from __future__ import annotations

import base64
import collections
import io
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import requests
from botocore.exceptions import BotoCoreError, ClientError
from docker.errors import DockerException, ImageNotFound

from ..errors import ConfigError, DockerError, aws_error
from .base import BaseImage, base_image_digest, image_repository
from .dockerfile import (
    ImageSpec,
    build_context,
    image_tag,
    pip_build_args,
    render_dockerfile,
    runtime_files,
)

__all__ = [
    "ImageBuilder",
    "ImageSpec",
    "base_reference",
    "check_platform",
    "docker_client",
    "local_base_image",
    "image_tag",
    "render_dockerfile",
    "runtime_files",
]

log = logging.getLogger("knot.image")

# A build step may print nothing for minutes (pip compiling a wheel); the SDK's default
# 60 s read timeout would abort such a build. The first contact uses a short one, so an
# engine that does not answer is reported quickly.
DOCKER_TIMEOUT = 1800
PING_TIMEOUT = 20
MAX_WORKERS = 3
TAIL_LINES = 40

_ENGINE_ERRORS = (DockerException, requests.RequestException)


def docker_client() -> docker.DockerClient:
    """A client for the local engine, checked with a ping."""
    try:
        client = docker.from_env(timeout=PING_TIMEOUT)
        client.ping()
    except _ENGINE_ERRORS as exc:
        raise DockerError(
            f"No Docker engine is reachable ({exc}). knot builds each rule's image with "
            "Docker: start Docker, or set DOCKER_HOST to a running engine, or run "
            "scripts/ensure-docker (as root) to install and start one."
        ) from exc
    client.api.timeout = DOCKER_TIMEOUT
    return client


# The engine's Architecture (Go's runtime or uname) and the binfmt handler that lets it run
# the other one's RUN steps; names as registered by qemu-user-static and tonistiigi/binfmt.
_ENGINE_ARCH = {
    "x86_64": "linux/amd64",
    "amd64": "linux/amd64",
    "aarch64": "linux/arm64",
    "arm64": "linux/arm64",
}
_BINFMT = {"linux/amd64": "qemu-x86_64", "linux/arm64": "qemu-aarch64"}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# Docker Desktop (macOS, Windows) runs its engine in a VM with amd64 and arm64 emulation
# registered (QEMU, or Rosetta on Apple silicon), and says so in `docker info`'s
# OperatingSystem; the VM's binfmt table is not this machine's /proc.
_EMULATING_ENGINES = ("Docker Desktop",)


def check_platform(client, platform: str, binfmt_dir: Path = BINFMT_DIR) -> None:
    """Refuse, before any build, a platform the engine can neither run natively nor emulate:
    the build would otherwise fail in its first RUN step with "exec format error"."""
    try:
        info = client.info()
    except _ENGINE_ERRORS as exc:
        raise DockerError(f"Asking the Docker engine for its architecture failed: {exc}") from exc
    arch = str(info.get("Architecture", ""))
    native = _ENGINE_ARCH.get(arch.lower())
    if native == platform or (platform in _BINFMT and _desktop(info)):
        return
    if _emulates(binfmt_dir / _BINFMT.get(platform, "-")):
        return
    raise DockerError(
        f"Rule images must be built for {platform} (the compute environments' architecture), "
        f"but the Docker engine runs on {arch or 'an unknown architecture'} and has no QEMU "
        f"handler for it ({binfmt_dir / _BINFMT.get(platform, '?')} is missing). Register "
        "one on the engine's host (apt-get install qemu-user-static binfmt-support, or docker "
        "run --privileged --rm tonistiigi/binfmt --install all; on a Mac, use Docker "
        "Desktop, which emulates both), build on a "
        f"{platform} machine, or pick instance types of the engine's architecture with "
        "--knot-instance-types."
    )


def _desktop(info: dict) -> bool:
    """Whether the engine is one that emulates both Linux platforms (Docker Desktop)."""
    system = str(info.get("OperatingSystem", ""))
    return any(system.startswith(name) for name in _EMULATING_ENGINES)


def _emulates(handler: Path) -> bool:
    try:
        return handler.read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        return False


def local_base_image(client, name: str) -> BaseImage:
    """``name`` with the digest the local engine has for it, for writing knot.lock."""
    try:
        return BaseImage(name, base_image_digest(client, name))
    except ImageNotFound as exc:
        raise DockerError(
            f"The base image '{name}' is not in the local Docker engine, so knot cannot "
            "record its digest: pull or build it first (docker pull ...), or choose another "
            "with --base-image / --knot-base-image."
        ) from exc
    except _ENGINE_ERRORS as exc:
        raise DockerError(f"Inspecting the base image '{name}' failed: {exc}") from exc


def base_reference(client, base: BaseImage) -> str:
    """The FROM reference that gives exactly the locked base image: ``repo@digest`` for a
    registry image (the engine pulls it when missing), or the name of a local image
    without a registry digest after checking its id is the locked one."""
    try:
        attrs = client.images.get(base.name).attrs
    except ImageNotFound:
        return f"{image_repository(base.name)}@{base.digest}"
    except _ENGINE_ERRORS as exc:
        raise DockerError(f"Inspecting the base image '{base.name}' failed: {exc}") from exc
    if attrs.get("Id") == base.digest:
        return base.name
    if attrs.get("RepoDigests"):
        return f"{image_repository(base.name)}@{base.digest}"
    raise ConfigError(
        f"knot.lock pins the base image {base.name} to {base.digest}, but the local "
        f"{base.name} is {attrs.get('Id')} and has no registry digest to pull the locked "
        "one by. Restore the locked image (docker tag <image> " + base.name + "), or run "
        "'knot lock' to lock the new one."
    )


def run_as_root(client, image: str, command: str, platform: str) -> str:
    """``command``'s stdout in a throwaway root container of ``image`` (host network);
    a DockerError with the engine's words when it fails."""
    try:
        output = client.containers.run(
            image,
            ["sh", "-c", command],
            user="root",
            network_mode="host",
            platform=platform,
            remove=True,
            entrypoint=[],
        )
    except _ENGINE_ERRORS as exc:
        raise DockerError(f"running '{command}' in {image} failed: {exc}") from exc
    return output.decode(errors="replace")


class ImageBuilder:
    """Makes sure each rule's image is in the ECR repository and returns its URI.

    ``say`` gets one line as each image is found in ECR, built (n of m, seconds, size) and
    pushed; ``builds`` keeps the same facts, with epoch times, for the run record.
    """

    def __init__(
        self,
        docker_client,
        ecr_client,
        repository_uri: str,
        repository_name: str,
        say: Callable[[str], None] = lambda _line: None,
        clock: Callable[[], float] = time.time,
    ):
        self.docker = docker_client
        self.ecr = ecr_client
        self.repository_uri = repository_uri
        self.repository_name = repository_name
        self.say, self.clock = say, clock
        self.built = 0
        self.pushed = 0
        self.skipped = 0
        self.builds: list[dict] = []
        self._lock = threading.Lock()
        self._auth: dict | None = None

    def uri(self, spec: ImageSpec) -> str:
        return f"{self.repository_uri}:{image_tag(spec)}"

    def ensure(self, spec: ImageSpec) -> str:
        return self.ensure_all([spec])[spec.rule]

    def ensure_all(self, specs: Iterable[ImageSpec]) -> dict[str, str]:
        """Rule -> image URI. Distinct images build in parallel; rules whose content is
        identical share one tag and one build."""
        by_tag: dict[str, list[ImageSpec]] = collections.defaultdict(list)
        for spec in specs:
            by_tag[image_tag(spec)].append(spec)
        if not by_tag:
            return {}
        workers = min(MAX_WORKERS, len(by_tag))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="knot-image") as pool:
            looked = pool.map(lambda t: self._in_ecr(by_tag[t][0], t), by_tag)
            found = dict(zip(by_tag, looked, strict=True))
            missing = [tag for tag in by_tag if not found[tag]]
            for tag in by_tag:
                if found[tag]:
                    self._cached(by_tag[tag], tag)
            if missing:
                self.say(
                    f"knot: building {_count_of(len(missing), 'image')} "
                    f"({min(workers, len(missing))} at a time): "
                    + ", ".join(_rules(by_tag[tag]) for tag in missing)
                )
            futures = [
                pool.submit(self._make, by_tag[tag], tag, n, len(missing))
                for n, tag in enumerate(missing, start=1)
            ]
            for future in futures:
                future.result()
        return {
            spec.rule: f"{self.repository_uri}:{tag}"
            for tag, group in by_tag.items()
            for spec in group
        }

    def _cached(self, group: list[ImageSpec], tag: str) -> None:
        self.say(f"knot: image for {_rules(group)} found in ECR ({tag[:12]}), not rebuilt")
        self._count("skipped")
        self._keep({"rules": [s.rule for s in group], "tag": tag, "outcome": "cached"})

    def _make(self, group: list[ImageSpec], tag: str, n: int, m: int) -> None:
        """Build and push one image, saying each step."""
        spec, uri = group[0], f"{self.repository_uri}:{tag}"
        log.info("Building the image for rule '%s' (%s).", spec.rule, tag)
        start = self.clock()
        self._build(spec, uri)
        built = self.clock()
        size = self._size(uri)
        self._count("built")
        shown = f", {_megabytes(size)}" if size is not None else ""
        self.say(
            f"knot: built image {n} of {m} for {_rules(group)} in {built - start:.1f} s"
            f"{shown}; pushing"
        )
        self._push(spec, tag)
        pushed = self.clock()
        self._count("pushed")
        self.say(f"knot: pushed the image for {_rules(group)} in {pushed - built:.1f} s")
        self._keep(
            {
                "rules": [s.rule for s in group],
                "tag": tag,
                "outcome": "built",
                "build": [start, built],
                "push": [built, pushed],
                "size_bytes": size,
            }
        )

    def _keep(self, entry: dict) -> None:
        with self._lock:
            self.builds.append(entry)

    def _size(self, uri: str) -> int | None:
        """The built image's size as the engine reports it; None when it cannot say."""
        try:
            size = self.docker.api.inspect_image(uri).get("Size")
        except _ENGINE_ERRORS:
            return None
        return size if isinstance(size, int) else None

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def _in_ecr(self, spec: ImageSpec, tag: str) -> bool:
        try:
            self.ecr.describe_images(
                repositoryName=self.repository_name, imageIds=[{"imageTag": tag}]
            )
        except self.ecr.exceptions.ImageNotFoundException:
            return False
        except (BotoCoreError, ClientError) as exc:
            doing = f"looking up image tag {tag} in ECR repository '{self.repository_name}'"
            raise aws_error(exc, doing, rule=spec.rule, service="ecr") from exc
        return True

    def _build(self, spec: ImageSpec, uri: str) -> None:
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        try:
            lines = self.docker.api.build(
                fileobj=io.BytesIO(build_context(spec)),
                custom_context=True,
                tag=uri,
                platform=spec.platform,
                network_mode="host",  # no bridge here: pip reaches the index via the host
                rm=True,
                forcerm=True,
                decode=True,
                buildargs=pip_build_args(),
            )
            for text in _build_output(lines, tail):
                log.debug("[%s] %s", spec.rule, text)
        except _BuildFailed as failed:
            raise _build_error(spec, str(failed), tail) from None
        except _ENGINE_ERRORS as exc:
            raise _build_error(spec, str(exc), tail) from exc

    def _push(self, spec: ImageSpec, tag: str) -> None:
        auth = self._auth_config(spec)
        try:
            lines = self.docker.api.push(
                self.repository_uri, tag=tag, auth_config=auth, stream=True, decode=True
            )
            for line in lines:
                if "error" in line and self._pushed_by_another(spec, tag, line):
                    return
                if "error" in line:
                    raise _push_error(spec, tag, _error_text(line))
                log.debug("[%s] push: %s", spec.rule, line.get("status", line))
        except _ENGINE_ERRORS as exc:
            raise _push_error(spec, tag, str(exc)) from exc

    def _pushed_by_another(self, spec: ImageSpec, tag: str, line: dict) -> bool:
        """The repository's tags are immutable, so when another run pushed the same tag
        first, ECR refuses ours; the tag is a content hash, so that image is this one."""
        return _IMMUTABLE_TAG in _error_text(line) and self._in_ecr(spec, tag)

    def _auth_config(self, spec: ImageSpec) -> dict:
        """Docker credentials from ECR's token (base64 "AWS:<password>"). A token lasts
        12 hours, longer than any one run's builds, so it is fetched once."""
        with self._lock:
            if self._auth is None:
                self._auth = self._fetch_auth(spec)
            return self._auth

    def _fetch_auth(self, spec: ImageSpec) -> dict:
        try:
            data = self.ecr.get_authorization_token()["authorizationData"][0]
        except (BotoCoreError, ClientError) as exc:
            raise aws_error(
                exc, "getting an ECR login token", rule=spec.rule, service="ecr"
            ) from exc
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return {"username": user, "password": password, "serveraddress": data["proxyEndpoint"]}


def _rules(group: list[ImageSpec]) -> str:
    names = [spec.rule for spec in group]
    return ("rule " if len(names) == 1 else "rules ") + ", ".join(names)


def _count_of(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


# ECR's refusal to overwrite a tag in a repository with immutable tags.
_IMMUTABLE_TAG = "cannot be overwritten because the repository is immutable"


class _BuildFailed(Exception):
    """An error line in the build output stream."""


def _build_output(lines: Iterable[dict], tail: collections.deque[str]) -> Iterator[str]:
    """The build's text, line by line, each also kept in ``tail``; an error line raises."""
    for line in lines:
        if "error" in line or "errorDetail" in line:
            raise _BuildFailed(_error_text(line))
        text = line.get("stream") or line.get("status") or ""
        for part in text.splitlines():
            if part.strip():
                tail.append(part)
                yield part


def _error_text(line: dict) -> str:
    return str(line.get("error") or line.get("errorDetail", {}).get("message") or line)


def _build_error(spec: ImageSpec, error: str, tail: Iterable[str]) -> DockerError:
    hint = "Check the rule's requirements (pip must be able to install them) and its base image."
    if "pull access denied" in error or "manifest" in error or "not found" in error:
        hint = (
            f"The base image '{spec.base_image}' is not available to the Docker engine: "
            "build or pull it first, or choose another with --knot-base-image."
        )
    output = "\n".join(tail) or "(no output)"
    return DockerError(
        f"Building the image for rule '{spec.rule}' failed: {error.strip()}\n"
        f"Last build output:\n{output}\n{hint}"
    )


def _push_error(spec: ImageSpec, tag: str, error: str) -> DockerError:
    return DockerError(
        f"Pushing the image for rule '{spec.rule}' (tag {tag}) failed: {error.strip()}. "
        "Check that the ECR repository exists and that your identity may push to it "
        "(ecr:InitiateLayerUpload, ecr:PutImage), then run again."
    )
