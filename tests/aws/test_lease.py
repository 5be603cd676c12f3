"""The stack lease against in-process moto's S3 (conditional writes, as on S3): one holder
at a time, renewals that keep it, a silent holder's lease taken over, release."""

from __future__ import annotations

import time

import pytest

from snakemake_executor_knot.aws.lease import LEASE_KEY, LeaseTiming, StackLease
from snakemake_executor_knot.emulator.patches.s3 import atomic_conditional_writes
from snakemake_executor_knot.errors import AwsError

BUCKET = "knot-bucket-1abc"
# Long enough that a held lease never looks silent; short enough for a test.
PATIENT = LeaseTiming(ttl=60.0, renew=0.05, poll=0.02, timeout=0.5)


@pytest.fixture
def s3(clients):
    atomic_conditional_writes()  # the emulator's fix: S3 decides conditions atomically
    clients.s3.create_bucket(Bucket=BUCKET)
    return clients.s3


def test_one_holder_at_a_time(s3):
    with StackLease(s3, BUCKET, "host-a:1", PATIENT) as first:
        head = s3.head_object(Bucket=BUCKET, Key=LEASE_KEY)
        assert head["Metadata"] == {"holder": "host-a:1"}
        with pytest.raises(AwsError, match="held and renewed by host-a:1"):
            StackLease(s3, BUCKET, "host-b:2", PATIENT).acquire()
        first.check()
    # Released: the key is gone, and the next run takes the lease at once.
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    started = time.monotonic()
    with StackLease(s3, BUCKET, "host-b:2", PATIENT):
        assert time.monotonic() - started < PATIENT.ttl


def test_a_renewed_lease_is_never_taken_over(s3):
    """The waiter's ttl is shorter than it waits, but every renewal changes the ETag."""
    holder = StackLease(s3, BUCKET, "host-a:1", LeaseTiming(renew=0.05))
    waiter = StackLease(s3, BUCKET, "host-b:2", LeaseTiming(ttl=0.3, poll=0.02, timeout=1.0))
    with holder:
        with pytest.raises(AwsError, match="waited 1 s for the lease"):
            waiter.acquire()
        assert holder._renewals >= 5 and not holder.lost


def test_a_silent_lease_expires_and_is_taken_over_safely(s3):
    silent = StackLease(s3, BUCKET, "host-a:1", LeaseTiming(ttl=0.3))
    silent.acquire()  # taken, then never renewed: its run died
    stale_etag = silent.etag
    timing = LeaseTiming(ttl=0.3, poll=0.02, timeout=5.0)
    started = time.monotonic()
    with StackLease(s3, BUCKET, "host-b:2", timing) as taker:
        waited = time.monotonic() - started
        assert waited >= timing.ttl  # watched the ETag stand still for a whole ttl first
        assert taker.etag != stale_etag
        # The old holder wakes up: its renewal is refused, it knows, and it may not act.
        assert not silent.renew() and silent.lost
        with pytest.raises(AwsError, match="lost the lease"):
            silent.check()
        silent.release()  # deletes nothing: the lease is the taker's now
        head = s3.head_object(Bucket=BUCKET, Key=LEASE_KEY)
        assert head["ETag"] == taker.etag and head["Metadata"] == {"holder": "host-b:2"}
        taker.check()
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_a_holder_that_missed_its_renewals_stops_itself(s3):
    now = [100.0]
    lease = StackLease(s3, BUCKET, "host-a:1", LeaseTiming(ttl=10.0), clock=lambda: now[0])
    lease.acquire()
    lease.check()
    now[0] += 6.0  # more than half the ttl without a renewal: a waiter may take over soon
    with pytest.raises(AwsError, match="could not renew it in time"):
        lease.check()
    assert lease.renew()
    lease.check()


def test_the_holder_named_in_messages_is_made_safe(s3):
    """The holder comes back from S3: hostile input, shown only after cleaning."""
    s3.put_object(
        Bucket=BUCKET, Key=LEASE_KEY, Body=b"{}", Metadata={"holder": "x\x1b[2J; rm -rf /" * 20}
    )
    with pytest.raises(AwsError) as caught:
        StackLease(s3, BUCKET, "host-b:2", PATIENT).acquire()
    message = str(caught.value)
    assert "\x1b" not in message and " rm " not in message
    shown = message.split("held and renewed by ")[1].split(", which")[0]
    assert shown.startswith("x??2J??rm?-rf?/x") and len(shown) == 100
