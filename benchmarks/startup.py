"""Warm start (issue item 4): launch to the first SubmitJob on an unchanged second run,
against the launch to the first job of ``--executor local`` on the same workflow."""

from __future__ import annotations

from .report import Row, Target
from .runner import Run

WARM_START_TARGET = Target("<=", 1.5, on="ratio")


def since_launch(run: Run, moment: float | None) -> float | None:
    return None if moment is None else moment - run.launched


def startup_rows(knot_warm: Run, local: Run, plugin: Run | None) -> list[Row]:
    section = f"warm start ({knot_warm.workflow.name})"
    local_start = since_launch(local, local.first_rule_line)
    knot_submit = since_launch(knot_warm, knot_warm.first("batch.SubmitJob"))
    rows = [
        Row(section, "launch to first SubmitJob (s) vs local's first job", knot_submit,
            local_start, "local", WARM_START_TARGET),
        Row(section, "launch to first job handed to the executor (s)",
            since_launch(knot_warm, knot_warm.first_rule_line), local_start, "local"),
    ]  # fmt: skip
    if plugin is not None:
        plugin_submit = since_launch(plugin, plugin.first("batch.SubmitJob"))
        rows.append(
            Row(section, "launch to first SubmitJob (s)", knot_submit, plugin_submit, "aws-batch")
        )
        rows.append(Row(section, "wall time of the whole run (s)", knot_warm.wall_s,
                        plugin.wall_s, "aws-batch"))  # fmt: skip
    return rows
