"""The emulated instance's input cache: the job definition's host folder becomes one
Docker volume per emulator; other mounts stay as they are."""

from __future__ import annotations

from docker.types import Mount

from snakemake_executor_knot.emulator.patches.instance import (
    instance_mounts,
    uses_cache,
    volume_name,
)


def test_the_cache_bind_mount_becomes_the_emulators_volume():
    cache = Mount("/knot-cache", "/var/lib/knot-cache", type="bind", read_only=False)
    other = Mount("/data", "/srv/data", type="bind", read_only=True)
    assert uses_cache([cache, other]) and not uses_cache([other])
    swapped = instance_mounts([cache, other], volume_name("4242"))
    assert swapped[0] == Mount("/knot-cache", "knot-cache-4242", type="volume", read_only=False)
    assert swapped[1] is other
