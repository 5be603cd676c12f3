"""Reading run records: good ones, and damaged ones as clear ConfigErrors."""

from __future__ import annotations

import json
import os

import pytest

from snakemake_executor_knot.errors import ConfigError
from snakemake_executor_knot.report.records import (
    UNKNOWN_RULE,
    Pricing,
    Requested,
    find_run,
    latest_run,
    load_run,
    parse_run,
)

from . import samples


def test_load_run_reads_every_section(tmp_path):
    path = samples.write(tmp_path, samples.run([samples.job()]))
    run = load_run(path)
    assert run.run_id == samples.RUN_ID
    assert run.started == samples.STARTED
    assert run.pricing == Pricing("us-east-1", "spot", True, ("optimal",))
    assert run.calls == {"batch.SubmitJob": 1}
    [job] = run.jobs
    assert (job.jobid, job.rule, job.status, job.attempts) == (3, "fit", "SUCCEEDED", 1)
    assert job.requested == Requested(vcpus=2, memory_mib=8192, gpus=0)
    assert job.host.submitted == samples.STARTED + 2.0
    assert job.usage.cpu_s == 30.1
    assert job.usage.exit_status == 0


def test_the_runs_own_times_are_read():
    record = samples.run(
        [samples.job(instance_type="m5.large", instance_type_source="estimate")],
        process_started=10.0,
        ended=99.5,
        steps={"preparation": [11, 12.5]},
    )
    run = parse_run(record)
    assert (run.process_started, run.ended, run.steps) == (10.0, 99.5, (("preparation", 11, 12.5),))
    assert run.jobs[0].instance_estimated is True


def test_a_job_that_failed_early_has_only_a_rule():
    run = parse_run(samples.run([{"rule": "fit", "status": "FAILED"}, {}]))
    first, second = run.jobs
    assert first.usage.start is None and first.batch.started is None
    assert first.requested == Requested()
    assert second.rule == UNKNOWN_RULE


def test_missing_pricing_defaults_to_on_demand_optimal():
    record = samples.run([samples.job()])
    del record["pricing"]
    assert parse_run(record).pricing == Pricing(None, "on-demand", False, ("optimal",))


def test_market_spellings_are_normalised():
    record = samples.run([samples.job()], pricing={"market": "ON_DEMAND"})
    assert parse_run(record).pricing.market == "on-demand"


def test_bad_json_is_a_config_error(tmp_path):
    path = tmp_path / "run-x.json"
    path.write_text('{"run_id": "x", "jobs": [')
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_run(path)


def test_deeply_nested_json_is_a_config_error(tmp_path):
    path = tmp_path / "run-x.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_run(path)


def test_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "run-x.json"
    path.write_bytes(b'{"run_id": "\xff\xfe\xfa"}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_run(path)


@pytest.mark.parametrize("jobs", [[], None])
def test_no_job_records_is_a_config_error(jobs):
    record = samples.run([])
    record["jobs"] = jobs
    with pytest.raises(ConfigError, match="has no job records"):
        parse_run(record)


def test_a_record_without_jobs_key_is_a_config_error():
    with pytest.raises(ConfigError, match="has no job records"):
        parse_run({"run_id": "r", "calls": {}, "images": {}})


def _with_job(**changes):
    return samples.run([samples.job(**changes)])


def test_the_new_sections_are_read():
    t = samples.STARTED
    record = samples.run(
        [samples.job(wildcards={"subject": "sub-05"}, exit_code=3)],
        rule_order=["prep", "fit"],
        versions={"knot": "0.1.0", "python": "3.11.2"},
        command=["snakemake", "-j", "4"],
        image_builds=[
            {"rules": ["fit"], "tag": "ab", "outcome": "built", "build": [t, t + 2],
             "push": [t + 2, t + 3], "size_bytes": 5},
            {"rules": ["prep"], "tag": "cd", "outcome": "cached"},
        ],
        spot_prices={"as_of": "2026-12-06", "source": "x", "prices": {"m5.large": 0.03}},
    )  # fmt: skip
    run = parse_run(record)
    assert run.jobs[0].wildcards == {"subject": "sub-05"} and run.jobs[0].exit_code == 3
    assert run.rule_order == ("prep", "fit") and run.command == ("snakemake", "-j", "4")
    assert run.versions["knot"] == "0.1.0"
    assert run.image_builds[0].build == (t, t + 2) and run.image_builds[1].push is None
    assert run.spot_prices["prices"] == {"m5.large": 0.03}
    assert run.images == {"built": 1, "pushed": 1, "skipped": 0}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (["not", "an", "object"], "is a JSON object, not a list"),
        ({**samples.run([samples.job()]), "jobs": {"a": 1}}, "'jobs' must be a list"),
        (samples.run(["job"]), "job #0 must be a JSON object, not a string"),
        (samples.run([samples.job()], run_id="../../etc/x"), "'run_id' must be"),
        (samples.run([samples.job()], run_id=7), "'run_id' must be"),
        (samples.run([samples.job()], started=True), "'started' must be a finite number"),
        (samples.run([samples.job()], started="1764421200"), "'started' must be a finite"),
        (samples.run([samples.job()], pricing=[]), "'pricing' must be an object"),
        (samples.run([samples.job()], pricing={"market": "reserved"}), "'market' must be"),
        (samples.run([samples.job()], pricing={"emulator": "yes"}), "'emulator' must be"),
        (samples.run([samples.job()], pricing={"instance_types": "m5"}), "list of strings"),
        (samples.run([samples.job()], calls={"x": "1"}), "'calls' must map"),
        (_with_job(rule=5), "'rule' must be a string, not a number"),
        (_with_job(jobid="3"), "'jobid' must be an integer, not a string"),
        (_with_job(attempts=1.5), "'attempts' must be an integer"),
        (_with_job(requested=[2, 8192]), "'requested' must be an object, not a list"),
        (_with_job(requested={"vcpus": "2"}), r"requested: 'vcpus' must be a finite number"),
        (_with_job(usage={"cpu_s": "30"}), r"rule 'fit'\): usage: 'cpu_s' must be a finite"),
        (_with_job(usage={"exit_status": 0.5}), "'exit_status' must be an integer"),
        (_with_job(host={"submitted": [1]}), "host: 'submitted' must be a finite number"),
        (_with_job(batch={"started": 10**400}), "batch: 'started' must be a finite number"),
        (_with_job(status=["FAILED"]), "'status' must be a string"),
        (samples.run([samples.job()], steps={"stack check": [1.0]}), "'steps' must map"),
        (samples.run([samples.job()], steps={"images": [1, 10**400]}), "'steps' must map"),
        (samples.run([samples.job()], ended="late"), "'ended' must be a finite number"),
        (_with_job(instance_type_source=1), "'instance_type_source' must be a string"),
        (_with_job(wildcards={"s": 1}), "'wildcards' must map names to strings"),
        (_with_job(wildcards=["s"]), "'wildcards' must map names to strings"),
        (_with_job(exit_code="1"), "'exit_code' must be an integer"),
        (samples.run([samples.job()], rule_order="a"), "'rule_order' must be a list of strings"),
        (samples.run([samples.job()], versions={"knot": 1}), "'versions' must map"),
        (samples.run([samples.job()], command=[1]), "'command' must be a list of strings"),
        (samples.run([samples.job()], images={"built": "1"}), "'images' must map"),
        (samples.run([samples.job()], image_builds={}), "'image_builds' must be a list"),
        (samples.run([samples.job()], image_builds=[1]), "image_builds #0 must be an object"),
        (samples.run([samples.job()], image_builds=[{"outcome": "stolen"}]), "'outcome' must"),
        (
            samples.run([samples.job()], image_builds=[{"outcome": "built", "build": [1]}]),
            "'build' must be \\[start, end\\]",
        ),
        (samples.run([samples.job()], spot_prices=[]), "spot_prices must be an object"),
        (
            samples.run([samples.job()], spot_prices={"prices": {"m5.large": -1}}),
            "'prices' must map instance types to USD",
        ),
    ],
)
def test_wrong_types_are_config_errors(record, message):
    with pytest.raises(ConfigError, match=message):
        parse_run(record)


def test_non_finite_numbers_are_config_errors(tmp_path):
    path = tmp_path / "run-x.json"
    text = json.dumps(samples.run([samples.job()])).replace('"cpu_s": 30.1', '"cpu_s": NaN')
    path.write_text(text)
    with pytest.raises(ConfigError, match="'cpu_s' must be a finite number"):
        load_run(path)


def test_latest_run_without_runs_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="no knot runs recorded in .*--executor knot first"):
        latest_run(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no knot runs recorded"):
        latest_run(tmp_path)


def test_latest_run_goes_by_run_id_time_then_mtime(tmp_path):
    record = samples.run([samples.job()])
    old = samples.write(tmp_path, record, "20261129T120000-aaaa")
    new = samples.write(tmp_path, record, "20261129T130000-bbbb")
    same_second = samples.write(tmp_path, record, "20261129T130000-aaaa")
    os.utime(old, (2e9, 2e9))  # touched last, but started first
    os.utime(new, (1.5e9, 1.5e9))
    os.utime(same_second, (1e9, 1e9))
    assert latest_run(tmp_path) == new


def test_find_run_by_id_path_or_latest(tmp_path):
    path = samples.write(tmp_path, samples.run([samples.job()]))
    assert find_run(samples.RUN_ID, tmp_path) == path
    assert find_run(str(path), tmp_path) == path
    assert find_run(None, tmp_path) == path
    with pytest.raises(ConfigError, match="neither a run record file nor a run id"):
        find_run("../secret", tmp_path)


def test_a_missing_named_run_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no knot run record at"):
        load_run(find_run("20261129T130000-nothere", tmp_path))
