"""How long Snakemake's status thread waits before knot's next status check (pure).

Snakemake waits ``--seconds-between-status-checks`` (10 s by default) between two checks,
and a job that ends right after a check is reported up to that long after Batch finished it;
in a chain of short jobs that wait is paid once per stage. knot's check costs one
DescribeJobs per 100 jobs (arrays count once) whatever the number of jobs, so it can afford
to look often. The wait is short while jobs move and grows while nothing changes:

- 1 s after a submission or a change of any job's Batch status;
- then a tenth of the time since the last change, so a job is reported at most about 10%
  later than it ended, and a long quiet job costs a call every few seconds, not every second;
- never more than Snakemake's setting (10 s by default);
- with no job active, 1 s: the check makes no call then, and a job submitted meanwhile must
  not wait out a long sleep begun before it.

A user who sets ``--seconds-between-status-checks`` to anything but Snakemake's default gets
exactly that (Snakemake gives no way to tell an explicit 10 from the default).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

SNAKEMAKE_DEFAULT_SECONDS = 10  # the default of Snakemake's --seconds-between-status-checks
FASTEST_SECONDS = 1.0
QUIET_FRACTION = 0.1


class Cadence:
    """The next wait, from when job statuses last changed."""

    def __init__(self, user_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.explicit = user_seconds != SNAKEMAKE_DEFAULT_SECONDS
        self.ceiling = float(user_seconds)
        self.clock = clock
        self.changed_at = clock()
        self.last: dict[str, str] = {}

    def submitted(self) -> None:
        """New jobs are in Batch: look soon."""
        self.changed_at = self.clock()

    def observe(self, statuses: Mapping[str, str]) -> None:
        """This check's status per job id; any difference from the last check is a change."""
        if dict(statuses) != self.last:
            self.last = dict(statuses)
            self.changed_at = self.clock()

    def next_wait(self, active: bool) -> float:
        """Seconds until the next check."""
        if self.explicit:
            return self.ceiling
        if not active:
            return min(FASTEST_SECONDS, self.ceiling)
        quiet = self.clock() - self.changed_at
        return min(max(FASTEST_SECONDS, quiet * QUIET_FRACTION), self.ceiling)
