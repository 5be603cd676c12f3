"""The stack lease: one S3 object in knot's bucket that only one run at a time holds, so
that reading the shared stack, merging in a run's buckets and classes, and updating it
happen as one step (``stack.ensure_infra``).

Without it two runs may both read the stack before either updates it; the second update
then drops the first run's bucket or class, and both carry on. CloudFormation offers no
compare-and-swap on UpdateStack, so the lease supplies it:

- **Take**: PutObject with ``If-None-Match: *`` creates the object only if it is absent
  (S3 answers 412, or 409 when two such writes race).
- **Hold**: the holder rewrites it every ``renew`` seconds with ``If-Match`` on its own
  last ETag; each body differs (a counter), so each renewal changes the ETag.
- **Expire and take over**: a waiter watches the ETag on its own monotonic clock. One that
  has not changed for ``ttl`` seconds belongs to a holder that stopped renewing (it died,
  or lost the network); the waiter replaces it with ``If-Match`` on that very ETag, so of
  several waiters exactly one wins, and a holder that wakes up finds its next renewal
  refused. No clocks are compared between machines.
- **Release**: DeleteObject with ``If-Match`` on the holder's ETag, so a lease another
  run took over is never deleted.

A holder must not act on the stack once it may have lost the lease: ``check`` refuses when
the last renewal is older than half the ttl, which leaves the other half for the
UpdateStack call to reach CloudFormation before any waiter may take over.

Before the stack exists there is no bucket for the lease, and none is needed: CreateStack
is atomic by name (the loser gets AlreadyExistsException and waits for the winner's
stack), and the creator's template is its own read, merge and update.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import AwsError, aws_error, error_code

# In knot's bucket, outside the prefixes jobs may write (template/iam.py) and the ones the
# lifecycle rules expire (template/storage.py).
LEASE_KEY = "knot-stack.lease"
# S3's answers when a conditional write loses: the condition failed, or another
# conditional write on the key was in flight.
_LOST = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_GONE = {"NoSuchKey", "404", "NotFound"}
_HOLDER_TEXT = re.compile(r"[^A-Za-z0-9._:@/-]")


@dataclass(frozen=True)
class LeaseTiming:
    """How long a silent lease lives, how often its holder renews it, how often a waiter
    looks, and how long a waiter waits in all (a stack update can take many minutes)."""

    ttl: float = 120.0
    renew: float = 20.0
    poll: float = 5.0
    timeout: float = 60 * 60.0


LEASE_TIMING = LeaseTiming()


def this_holder() -> str:
    """Who holds the lease, for messages: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _shown(holder: object) -> str:
    """A holder name read back from S3, made safe to print (hostile input)."""
    return _HOLDER_TEXT.sub("?", str(holder))[:100] or "unknown"


class StackLease:
    """The lease on one bucket's LEASE_KEY, taken on ``__enter__``, renewed by a
    background thread while held, released on ``__exit__``."""

    def __init__(
        self,
        s3,
        bucket: str,
        holder: str,
        timing: LeaseTiming = LEASE_TIMING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.s3, self.bucket, self.holder, self.timing = s3, bucket, holder, timing
        self.clock = clock
        self.etag: str | None = None
        self.lost = False
        self._renewals = 0
        # Tells this holding apart from an earlier one of the same holder, whose bodies
        # (and so ETags) would otherwise repeat.
        self._nonce = secrets.token_hex(8)
        self._renewed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- taking and giving back ---------------------------------------------------------

    def __enter__(self) -> StackLease:
        self.acquire()
        self._thread = threading.Thread(target=self._heartbeat, name="knot-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timing.renew + 30)
        self.release()

    def acquire(self) -> None:
        """Take the lease: create it, or take over one whose ETag stood still for ttl."""
        deadline = self.clock() + self.timing.timeout
        seen, since, holder = None, 0.0, "unknown"
        while True:
            if self._put(IfNoneMatch="*"):
                return
            current = self._head()
            if current is not None:
                etag, holder = current
                if etag != seen:
                    seen, since = etag, self.clock()
                elif self.clock() - since >= self.timing.ttl and self._put(IfMatch=etag):
                    return
            if self.clock() >= deadline:
                raise AwsError(
                    f"knot waited {self.timing.timeout:.0f} s for the lease on its stack "
                    f"(s3://{self.bucket}/{LEASE_KEY}), held and renewed by {holder}, which "
                    "is changing the stack. Run knot again once that run's stack update is "
                    "done."
                )
            if current is not None:
                time.sleep(self.timing.poll)

    def release(self) -> None:
        """Delete the lease if it is still this run's (If-Match: a lease another run took
        over stays)."""
        if self.etag is None or self.lost:
            return
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=LEASE_KEY, IfMatch=self.etag)
        except ClientError as exc:
            if error_code(exc) not in _LOST | _GONE:
                raise aws_error(exc, "releasing the lease on knot's stack", service="s3") from exc
        except BotoCoreError as exc:
            raise aws_error(exc, "releasing the lease on knot's stack", service="s3") from exc
        self.etag = None

    def check(self) -> None:
        """Refuse to go on unless this run certainly still holds the lease."""
        stale = self.clock() - self._renewed_at > self.timing.ttl / 2
        if self.lost or stale:
            raise AwsError(
                f"knot lost the lease on its stack (s3://{self.bucket}/{LEASE_KEY}): it could "
                "not renew it in time, and another run may be changing the stack. Run knot "
                "again."
            )

    # --- S3 -----------------------------------------------------------------------------

    def _body(self) -> bytes:
        # The counter makes every renewal's body, and so its ETag, new.
        body = {"holder": self.holder, "nonce": self._nonce, "renewal": self._renewals}
        return json.dumps(body).encode()

    def _put(self, **condition: str) -> bool:
        """A conditional PutObject of the lease; False when its condition lost."""
        try:
            reply = self.s3.put_object(
                Bucket=self.bucket,
                Key=LEASE_KEY,
                Body=self._body(),
                ContentType="application/json",
                Metadata={"holder": _shown(self.holder)},
                **condition,
            )
        except ClientError as exc:
            if error_code(exc) in _LOST | _GONE:
                return False
            raise aws_error(exc, "taking the lease on knot's stack", service="s3") from exc
        except BotoCoreError as exc:
            raise aws_error(exc, "taking the lease on knot's stack", service="s3") from exc
        self.etag, self._renewed_at = reply["ETag"], self.clock()
        return True

    def _head(self) -> tuple[str, str] | None:
        """The lease's ETag and holder, or None when there is none."""
        try:
            reply = self.s3.head_object(Bucket=self.bucket, Key=LEASE_KEY)
        except ClientError as exc:
            if error_code(exc) in _GONE:
                return None
            raise aws_error(exc, "reading the lease on knot's stack", service="s3") from exc
        except BotoCoreError as exc:
            raise aws_error(exc, "reading the lease on knot's stack", service="s3") from exc
        holder = (reply.get("Metadata") or {}).get("holder", "unknown")
        return str(reply.get("ETag", "")), _shown(holder)

    def renew(self) -> bool:
        """Rewrite the lease over this run's last ETag; False (and ``lost``) when another
        run has taken it over."""
        if self.etag is None or self.lost:
            return False
        self._renewals += 1
        if not self._put(IfMatch=self.etag):
            self.lost = True
        return not self.lost

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.timing.renew):
            try:
                if not self.renew():
                    return
            except AwsError:
                continue  # a failed renewal is retried; check() tells when it is too late
