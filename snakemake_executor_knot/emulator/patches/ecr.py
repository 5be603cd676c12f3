"""Fidelity fixes for moto's ECR: repository URIs and docker login point at the local
registry, whose pushes appear in ECR (see ``import_pushed_image``).
"""

from __future__ import annotations

import logging
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecr.exceptions import ImageAlreadyExistsException
from moto.ecr.models import ECRBackend, Repository, ecr_backends
from moto.ecr.responses import ECRResponse

from .. import registry as local_registry
from .fidelity import fidelity

log = logging.getLogger("knot.emulator.patches")


def authorization_data(registry_ids: list[str], registry: str) -> list[dict[str, Any]]:
    """GetAuthorizationToken's answer, pointing at the local registry. The token is the
    shape AWS uses (base64 of 'AWS:<password>'); the local registry accepts any login. The
    scheme stays https:// as on AWS: docker falls back to plain HTTP for 127.0.0.0/8."""
    expires = datetime.now(UTC) + timedelta(hours=12)
    return [
        {
            "authorizationToken": b64encode(f"AWS:{rid}-auth-token".encode()).decode(),
            "expiresAt": expires,
            "proxyEndpoint": f"https://{registry}",
        }
        for rid in registry_ids
    ]


def patch_ecr() -> None:
    # On AWS the repository URI and the docker login endpoint name ECR's registry; in the
    # emulator they name the local registry, so `docker push <repositoryUri>:<tag>` works.
    original_repo_init = Repository.__init__
    original_create = ECRBackend.create_repository

    # Named ``self``, as in the methods they replace.
    def repo_init(self: Repository, *args: Any, **kwargs: Any) -> None:
        original_repo_init(self, *args, **kwargs)
        self.uri = f"{fidelity().registry}/{self.name}"

    def create_repository(self: ECRBackend, *args: Any, **kwargs: Any) -> Repository:
        repo = original_create(self, *args, **kwargs)
        # Images survive emulator restarts in the registry's storage; a recreated
        # repository (a new stack after a restart) lists them again, as ECR would.
        _import_repository(self, repo.name)
        return repo

    def get_authorization_token(self: ECRResponse) -> ActionResult:
        registry_ids = self._get_param("registryIds") or [self.current_account]
        return ActionResult(
            {"authorizationData": authorization_data(registry_ids, fidelity().registry)}
        )

    # Replacing moto's methods is the point here, which mypy's method-assign forbids.
    Repository.__init__ = repo_init  # type: ignore[method-assign]
    ECRBackend.create_repository = create_repository  # type: ignore[method-assign]
    ECRResponse.get_authorization_token = get_authorization_token  # type: ignore[method-assign]


def import_pushed_image(repository: str, tag: str, digest: str) -> None:
    """Make a tag pushed to the local registry visible in ECR (every account and region
    whose ECR holds a repository of that name). Called from the registry's webhook."""
    backends = _backends_with(repository)
    if not backends:
        log.warning("push to %s:%s, which no ECR repository holds; ignored", repository, tag)
        return
    manifest = local_registry.fetch_manifest(fidelity().registry, repository, digest or tag)
    for backend in backends:
        _put_image(backend, repository, tag, manifest)


def _backends_with(repository: str) -> list[ECRBackend]:
    found = []
    for account in list(ecr_backends.values()):
        for backend in list(account.values()):
            if repository in backend.repositories:
                found.append(backend)
    return found


def _import_repository(backend: ECRBackend, repository: str) -> None:
    registry = fidelity().registry
    try:
        for tag in local_registry.list_tags(registry, repository):
            manifest = local_registry.fetch_manifest(registry, repository, tag)
            _put_image(backend, repository, tag, manifest)
    except (OSError, ValueError) as exc:  # URLError is an OSError
        log.warning("could not list %s in the local registry: %s", repository, exc)


def _put_image(backend: ECRBackend, repository: str, tag: str, manifest: tuple) -> None:
    body, media_type, digest = manifest
    try:
        backend.put_image(repository, body, tag, media_type or None, digest or None)
    except ImageAlreadyExistsException:
        # Either the same manifest under the same tag (nothing to do) or a changed tag in
        # an immutable repository, where AWS would have refused the push itself.
        log.info("ECR %s already has tag %s; left as is", repository, tag)
    except ServiceException as exc:
        log.warning("could not add %s:%s to ECR: %s", repository, tag, exc)
