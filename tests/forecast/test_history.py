"""Reading earlier runs: hostile records are skipped and named, failures are no samples."""

from __future__ import annotations

import json

from snakemake_executor_knot.forecast.history import job_sample, load_history
from snakemake_executor_knot.report.records import parse_run
from tests.report import samples


def write(directory, name: str, text: str) -> None:
    (directory / name).write_text(text)


def test_samples_by_rule_and_run_overheads(tmp_path):
    record = samples.run(
        [samples.job(1, "fit"), samples.job(2, "fit"), samples.job(3, "plot")],
        process_started=samples.STARTED - 4.0,
        ended=samples.STARTED + 40.0,
    )
    write(tmp_path, "run-20261129T130000-ab12cd34.json", json.dumps(record))
    history = load_history(tmp_path)
    assert sorted(history.samples) == ["fit", "plot"]
    fit = history.of("fit")
    assert len(fit) == 2
    assert fit[0].seconds == 19.0  # Batch's start to stop
    assert fit[0].latency_s == 29.0  # handed over to reported
    assert fit[0].input_bytes == 1048576 and fit[0].output_bytes == 2048
    assert history.startup_s() == 5.0  # process start to the first job handed over
    assert history.closing_s() == 10.0
    assert history.skipped == []


def test_damaged_records_are_skipped_and_named(tmp_path):
    good = samples.run([samples.job(1, "fit")])
    write(tmp_path, "run-20261129T130000-aa.json", json.dumps(good))
    write(tmp_path, "run-20261129T130001-bb.json", "{not json")
    write(tmp_path, "run-20261129T130002-cc.json", json.dumps([1, 2]))
    bad_job = samples.run([samples.job(1, "fit", usage={"wall_s": "fast"})])
    write(tmp_path, "run-20261129T130003-dd.json", json.dumps(bad_job))
    write(tmp_path, "run-20261129T130004-ee.json", json.dumps(samples.run([])))
    history = load_history(tmp_path)
    assert len(history.of("fit")) == 1
    skipped = {path.rsplit("/", 1)[-1]: why for path, why in history.skipped}
    assert sorted(skipped) == [
        "run-20261129T130001-bb.json",
        "run-20261129T130002-cc.json",
        "run-20261129T130003-dd.json",
        "run-20261129T130004-ee.json",
    ]
    assert "not valid JSON" in skipped["run-20261129T130001-bb.json"]
    assert "'wall_s' must be a finite number" in skipped["run-20261129T130003-dd.json"]


def test_no_folder_is_an_empty_history(tmp_path):
    history = load_history(tmp_path / "missing")
    assert history.samples == {} and history.skipped == [] and history.startup_s() == 0.0


def test_failed_and_unmeasured_jobs_are_no_samples():
    run = parse_run(
        samples.run(
            [
                samples.job(1, "fit", status="FAILED"),
                samples.job(2, "fit", usage={"exit_status": 1, "wall_s": 3.0}),
                samples.job(3, "fit", batch={}, usage={}),
                samples.job(4, "fit"),
            ]
        )
    )
    found = [job_sample(run.run_id, job) for job in run.jobs]
    assert [s is not None for s in found] == [False, False, False, True]
