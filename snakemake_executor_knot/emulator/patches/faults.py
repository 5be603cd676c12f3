"""Injected faults in front of moto's server: ``emulator.faults`` decides which requests
get AWS's load errors (and which jobs are killed or reclaimed); this puts it in front of
moto when the emulator has a state folder, and keeps the injector for Batch's containers.
"""

from __future__ import annotations

from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication

from ..faults import Injector, error_body, request_operation
from .fidelity import fidelity

_injector: Injector | None = None  # set by patch_faults when the emulator has a state folder


def injector() -> Injector | None:
    """The fault injector, once ``patch_faults`` has made one; None until then or without
    a state folder."""
    return _injector


def patch_faults() -> None:
    """Answer some requests with AWS's load errors when the tests ask for it (faults.py).
    Off unless a faults file says otherwise; it costs a stat a second."""
    global _injector
    folder = fidelity().state_dir
    if folder is None:
        return
    injector = _injector = Injector(folder)
    original = DomainDispatcherApplication.__call__

    # Named ``self``, as in the method it replaces.
    def call(
        self: DomainDispatcherApplication, environ: dict[str, Any], start_response: Any
    ) -> Any:
        operation = request_operation(environ)
        fault = injector.fault_for(operation)
        if fault is None:
            return original(self, environ, start_response)
        status, code = fault
        body, content_type = error_body(operation or "", status, code)
        headers = [("Content-Type", content_type), ("x-amzn-ErrorType", code)]
        start_response(f"{status} {code}", headers)
        return [body]

    # Replacing moto's method is the point here, which mypy's method-assign forbids.
    DomainDispatcherApplication.__call__ = call  # type: ignore[method-assign]
