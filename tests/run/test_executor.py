"""The executor's submission path against in-process moto (Batch without Docker): ready jobs
of one rule with equal resources become one array job, specs are in S3 before SubmitJob,
and cancelling terminates every active job."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from snakemake.io import directory

from snakemake_executor_knot.aws.capacity import RunnableWatch
from snakemake_executor_knot.aws.jobdef import JobDefinitions
from snakemake_executor_knot.aws.stack import ensure_infra
from snakemake_executor_knot.aws.status import JobState, StatusPoller
from snakemake_executor_knot.aws.submit import Submitter
from snakemake_executor_knot.config.settings import KnotConfig, with_classes
from snakemake_executor_knot.errors import RuleError
from snakemake_executor_knot.executor import Executor
from snakemake_executor_knot.jobs.staging import LocalStaging
from snakemake_executor_knot.report.pricing import load_prices, price_context
from snakemake_executor_knot.report.records import Pricing
from snakemake_executor_knot.rules.source import RuleSource
from snakemake_executor_knot.run.adoption import Adopter
from snakemake_executor_knot.run.budget import NOT_SUBMITTED, Budget
from snakemake_executor_knot.run.cadence import Cadence
from snakemake_executor_knot.run.journal import read_journal
from snakemake_executor_knot.run.outcome import Outcomes
from snakemake_executor_knot.run.plans import RulePlan
from snakemake_executor_knot.run.prepare import Preparation, Services
from snakemake_executor_knot.run.progress import Progress
from snakemake_executor_knot.run.record import RunLog
from snakemake_executor_knot.run.submission import Submissions
from snakemake_executor_knot.runtime import manifest
from snakemake_executor_knot.runtime.spec import fetch_spec, spec_location

from ..conftest import fake_job


def _job(jobid: int, rule: str = "sample", mem_mb: int = 1000):
    return fake_job(
        rule=rule,
        jobid=jobid,
        output=[f"out/{jobid}.txt"],
        wildcards={"chunk": str(jobid)},
        resources={"mem_mb": mem_mb},
        config={"seed": 1},
    )


def _wire(ex: Executor, clients, config: KnotConfig, run_id: str, workdir) -> Executor:
    """The executor's run state, as __post_init__ builds it, on moto and without Snakemake's
    workflow around it; its submissions land in ``ex.submitted``."""
    ex.clients = clients
    ex.run_log = RunLog(run_id)
    # What knot uses of Snakemake's workflow: its async runner and storage settings.
    storage = SimpleNamespace(default_storage_prefix=None)
    workflow = SimpleNamespace(async_run=asyncio.run, storage_settings=storage)
    ex.workflow = workflow
    ex.logger = logging.getLogger("knot")
    ex.poller = StatusPoller(clients.batch)
    ex.cadence = Cadence(10)
    ex.prep = Preparation(workflow, config, clients, ex.run_log, ex.logger.info)
    ex.submissions = Submissions(ex.prep, ex.run_log, ex.logger.info)
    ex.budget = None  # no --knot-budget
    infra = ensure_infra(clients, config)
    ex.prep.services = Services(
        infra=infra,
        jobdefs=JobDefinitions(clients.batch, infra, config),
        staging=LocalStaging(clients.s3, infra.bucket, workdir),
        submitter=Submitter(clients.batch, rate=1000),
        adopter=Adopter(clients.batch, clients.s3, infra.job_queue_arn),
    )
    ex.submitted = []
    ex.report_job_submission = ex.submitted.append
    ex.run_job_pre = lambda job: None
    return ex


@pytest.fixture
def executor(clients, tmp_path, monkeypatch):
    """An Executor wired to moto, with one rule's plan made."""
    monkeypatch.chdir(tmp_path)
    ex = _wire(
        object.__new__(Executor), clients, KnotConfig(region="us-east-1"), "test-run", tmp_path
    )
    ex.poller = StatusPoller(clients.batch)
    ex.cadence = Cadence(10)
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/knot:abc"
    source = RuleSource(rule="sample", kind="run", files={})
    ex.prep.plans["sample"] = RulePlan(
        source=source, image=None, image_uri=image,
        job_definition_arn=ex.services.jobdefs.arn_for(image),
    )  # fmt: skip
    return ex


def test_equal_jobs_become_one_array_job(executor, calls):
    calls.reset()
    executor.run_jobs([_job(i) for i in range(1, 6)])
    assert calls["batch.SubmitJob"] == 1
    ids = [info.external_jobid for info in executor.submitted]
    parent = ids[0].split(":")[0]
    assert ids == [f"{parent}:{i}" for i in range(5)]
    # Every child's spec was in S3 before the submission: one object, which child 3
    # reads as the runtime does, from the environment Batch gives it.
    (job,) = executor.clients.batch.describe_jobs(jobs=[parent])["jobs"]
    env = {e["name"]: e["value"] for e in job["container"]["environment"]}
    env["AWS_BATCH_JOB_ARRAY_INDEX"] = "3"
    assert env["KNOT_SPEC_URI"].endswith("knot/specs/test-run/sample-1.jsonl")
    spec = fetch_spec(executor.clients.s3, spec_location(env))
    assert spec["jobid"] == 4 and spec["wildcards"]["items"] == ["4"]


def test_specs_reference_the_config_which_travels_once(executor, calls):
    """The run's config is one object in knot's bucket, named by its SHA-256; the spec
    records, of an array and of a single job, carry only the reference."""
    config = {"samples": [f"sample-{i:04d}" for i in range(400)], "seed": 1}
    jobs = [
        fake_job(
            rule="sample", jobid=i, output=[f"out/{i}.txt"], wildcards={"chunk": str(i)},
            resources={"mem_mb": 4000 if i == 6 else 1000}, config=config,
        )
        for i in range(1, 7)
    ]  # fmt: skip
    calls.reset()
    executor.run_jobs(jobs)
    assert calls["batch.SubmitJob"] == 2 and calls["s3.PutObject"] == 3
    s3, bucket = executor.clients.s3, executor.services.infra.bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="knot/specs/")["Contents"]]
    (config_key,) = [k for k in keys if k.startswith("knot/specs/config/")]
    body = s3.get_object(Bucket=bucket, Key=config_key)["Body"].read()
    digest = hashlib.sha256(body).hexdigest()
    assert config_key == f"knot/specs/config/{digest}.json" and json.loads(body) == config
    ref = {"uri": f"s3://{bucket}/{config_key}", "sha256": digest}
    spec_keys = [k for k in keys if k != config_key]
    assert len(spec_keys) == 2
    for key in spec_keys:
        assert b"sample-0399" not in s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    for info in executor.submitted:
        assert info.aux["spec"]["config_ref"] == ref and "config" not in info.aux["spec"]


def test_a_secret_param_is_refused_before_anything_is_written_or_submitted(
    executor, calls, monkeypatch
):
    """A param computed only when its job is ready (e.g. behind a checkpoint) is checked
    when its spec is built, before any S3 or Batch call."""
    monkeypatch.setenv("KNOT_TEST_SECRET", "s3cr3t-value-for-tests")
    job = fake_job(rule="sample", jobid=1, output=["out/1.txt"], config={"seed": 1},
                   params={"token": "s3cr3t-value-for-tests"})  # fmt: skip
    calls.reset()
    with pytest.raises(RuleError, match="Rule 'sample' has the param 'token'"):
        executor.run_jobs([job])
    assert sum(calls.counts.values()) == 0


@pytest.mark.parametrize(("setting", "wait"), [(10, 1.0), (3, 3)])
def test_a_status_check_sets_snakemakes_next_wait(executor, setting, wait):
    executor.run_jobs([_job(i) for i in range(1, 4)])
    executor.cadence = Cadence(setting)  # 10: Snakemake's default, 3: the user's own
    executor.status_rate_limiter = contextlib.nullcontext()  # async too, since Python 3.10
    executor.progress = Progress(lambda line: None)
    executor.capacity = RunnableWatch(lambda: [])
    # Batch says the jobs run (in-process moto would have finished them at SubmitJob).
    executor.poller = SimpleNamespace(
        poll=lambda ids: {i: JobState(i, "RUNNING") for i in ids}, summaries={}
    )

    async def check() -> list:
        return [info async for info in executor.check_active_jobs(executor.submitted)]

    assert len(asyncio.run(check())) == 3
    assert executor.next_seconds_between_status_checks == wait


def test_different_resources_split_the_array(executor, calls):
    calls.reset()
    executor.run_jobs([_job(1), _job(2), _job(3, mem_mb=4000)])
    assert calls["batch.SubmitJob"] == 2
    assert executor.submitted[2].external_jobid.count(":") == 0  # a lone job is no array


def test_single_jobs_setting_submits_each_alone(executor, calls):
    executor.prep.knot = KnotConfig(region="us-east-1", array_jobs=False)
    calls.reset()
    executor.run_jobs([_job(i) for i in range(1, 4)])
    assert calls["batch.SubmitJob"] == 3


def test_cancel_terminates_every_active_job(executor, calls):
    executor.run_jobs([_job(i) for i in range(1, 4)] + [_job(9, mem_mb=4000)])
    calls.reset()
    executor.cancel_jobs(executor.submitted)
    # One array parent and one single job: two terminations, not one per child.
    assert calls["batch.TerminateJob"] == 2


def test_missing_storage_bucket_is_created_once(clients, calls):
    from snakemake_executor_knot.jobs.staging import ensure_bucket

    assert ensure_bucket(clients.s3, "my-study", "us-east-1") is True
    assert ensure_bucket(clients.s3, "my-study", "us-east-1") is False
    assert calls["s3.CreateBucket"] == 1


def test_rerun_directory_output_holds_only_the_new_files(executor, tmp_path):
    """A directory output made by an earlier run, locally and in S3: knot removes the local
    one before submitting (as Snakemake does), and the host downloads only what the new
    job's manifest lists, never the earlier run's file the job role could not delete."""
    job = fake_job(rule="sample", jobid=1, output=[directory("res/tree")])
    (tmp_path / "res" / "tree").mkdir(parents=True)
    (tmp_path / "res" / "tree" / "old.txt").write_text("earlier run")
    staging = executor.services.staging
    prefix = staging.key_for("res/tree") + "/"
    s3 = executor.clients.s3
    s3.put_object(Bucket=staging.bucket, Key=prefix + "old.txt", Body=b"earlier run")

    executor.run_jobs([job])
    assert not (tmp_path / "res" / "tree").exists()

    # What the runtime uploads: the new file, then the manifest.
    s3.put_object(Bucket=staging.bucket, Key=prefix + "new.txt", Body=b"this run")
    entry = manifest.Entry("new.txt", 8, hashlib.sha256(b"this run").hexdigest())
    body = manifest.encode([entry])
    s3.put_object(Bucket=staging.bucket, Key=manifest.manifest_key(prefix), Body=body)
    info = executor.submitted[0]
    outcomes = Outcomes(staging, executor.clients.logs, executor.services.infra.log_group)
    assert outcomes.bring_home(info) is None
    assert sorted(p.name for p in (tmp_path / "res" / "tree").iterdir()) == ["new.txt"]


def _next_run(previous, **config):
    """A new executor, as after the Snakemake process died: same clients and stack, new run
    id, nothing in memory but the rules' plans."""
    knot = KnotConfig(region="us-east-1", **config) if config else previous.prep.knot
    ex = _wire(object.__new__(Executor), previous.clients, knot, "next-run", Path.cwd())
    ex.prep.plans.update(previous.prep.plans)
    return ex


def test_next_run_adopts_live_jobs_instead_of_submitting(executor, calls):
    executor.run_jobs([_job(i) for i in range(1, 4)] + [_job(9, mem_mb=4000)])
    first = sorted(info.external_jobid for info in executor.submitted)
    rerun = _next_run(executor)
    calls.reset()
    # Snakemake numbers jobs afresh in a new run: adoption ignores the jobid.
    rerun.run_jobs([_job(i) for i in range(1, 4)] + [_job(9, mem_mb=4000)])
    assert calls["batch.SubmitJob"] == 0
    assert sorted(info.external_jobid for info in rerun.submitted) == first
    assert all(job.adopted for job in rerun.run_log.jobs.values())


def test_changed_spec_is_submitted_again(executor, calls):
    executor.run_jobs([_job(1), _job(2)])
    rerun = _next_run(executor)
    calls.reset()
    other = fake_job(
        rule="sample", jobid=2, output=["out/2.txt"], wildcards={"chunk": "other"},
        resources={"mem_mb": 1000}, config={"seed": 1},
    )  # fmt: skip
    rerun.run_jobs([_job(1), other])
    assert calls["batch.SubmitJob"] == 1
    adopted = [job for job in rerun.run_log.jobs.values() if job.adopted]
    assert [job.jobid for job in adopted] == [1]


def test_lost_journal_adopts_jobs_from_their_tags(executor, calls, tmp_path):
    executor.run_jobs([_job(1), _job(2), _job(3, mem_mb=4000)])  # an array and a single job
    first = sorted(info.external_jobid for info in executor.submitted)
    (tmp_path / ".snakemake" / "knot" / "journal.jsonl").unlink()
    rerun = _next_run(executor)
    calls.reset()
    rerun.run_jobs([_job(1), _job(2), _job(3, mem_mb=4000)])
    assert calls["batch.SubmitJob"] == 0
    assert calls["batch.ListJobs"] >= 1 and calls["s3.GetObject"] == 1  # the array's specs
    assert sorted(info.external_jobid for info in rerun.submitted) == first


def test_lost_journal_and_altered_specs_adopt_nothing(executor, calls, tmp_path):
    executor.run_jobs([_job(1), _job(2)])
    (tmp_path / ".snakemake" / "knot" / "journal.jsonl").unlink()
    s3, bucket = executor.clients.s3, executor.services.infra.bucket
    key = "knot/specs/test-run/sample-1.jsonl"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=body.replace(b'"threads":1', b'"threads":2'))
    rerun = _next_run(executor)
    calls.reset()
    rerun.run_jobs([_job(1), _job(2)])
    assert calls["batch.SubmitJob"] == 1


def test_damaged_journal_never_adopts_a_wrong_job(executor, calls, tmp_path, caplog):
    executor.run_jobs([_job(1)])
    journal = tmp_path / ".snakemake" / "knot" / "journal.jsonl"
    (line,) = journal.read_text().splitlines()
    wrong = line.replace('"job_definition": "', '"job_definition": "elsewhere')
    journal.write_text("{not json\n" + wrong + "\n" + '{"spec": 1}\n')
    rerun = _next_run(executor)
    calls.reset()
    rerun.run_jobs([_job(1)])
    # The line that names another image's job definition does not match Batch's job.
    assert calls["batch.SubmitJob"] == 1
    assert "ignoring 2 damaged line(s)" in caplog.text


def test_jobs_a_run_already_reported_are_not_adopted(executor, calls):
    executor.run_jobs([_job(1), _job(2)])
    executor.services.adopter.record([info.external_jobid for info in executor.submitted])
    rerun = _next_run(executor)
    calls.reset()
    rerun.run_jobs([_job(1), _job(2)])  # e.g. --forceall after a finished run
    assert calls["batch.SubmitJob"] == 1


def test_a_gpu_rule_and_a_cpu_rule_go_to_their_classes_queues(executor, calls):
    """Routing seen from Batch itself: DescribeJobs names the queue each job went to."""
    config = with_classes(KnotConfig(region="us-east-1"), "gpu=g4dn; bigdisk=m6i:500GB")
    executor.prep.knot = config
    executor.services.infra = ensure_infra(executor.clients, config)
    sample = executor.prep.plans["sample"]
    train = dataclasses.replace(sample.source, rule="train")
    executor.prep.plans["train"] = dataclasses.replace(sample, source=train)
    gpu = fake_job(rule="train", jobid=1, output=["model.pt"], resources={"gpu": 1})
    cpu = _job(2)
    disk = fake_job(rule="sample", jobid=3, output=["big.txt"], resources={"knot_class": "bigdisk"})
    calls.reset()
    executor.run_jobs([gpu, cpu, disk])
    assert calls["batch.SubmitJob"] == 3
    ids = [info.external_jobid for info in executor.submitted]
    described = executor.clients.batch.describe_jobs(jobs=ids)["jobs"]
    queues = {job["jobId"]: job["jobQueue"] for job in described}
    assert [queues[i] for i in ids] == [
        executor.services.infra.queues["gpu"],
        executor.services.infra.queues["default"],
        executor.services.infra.queues["bigdisk"],
    ]
    assert len(set(queues.values())) == 3
    # moto leaves resourceRequirements out of DescribeJobs; the tags name each rule.
    rules = {job["jobId"]: job["tags"]["knot:rule"] for job in described}
    assert [rules[i] for i in ids] == ["train", "sample", "sample"]


RECLAIMED_OUT = "Host EC2 (instance i-0123456789abcdef0) terminated."


def test_a_job_spot_reclaimed_out_goes_on_as_a_single_job_in_the_on_demand_queue(executor, calls):
    """An array child reclaimed on its last attempt: SubmitJob again, alone, in the default
    class's on-demand queue, reading the same spec record; Snakemake keeps following it."""
    executor.run_jobs([_job(i) for i in range(1, 4)])
    child = executor.submitted[2]
    old = child.external_jobid
    executor.status_rate_limiter = contextlib.nullcontext()
    executor.progress = Progress(lambda line: None)
    executor.capacity = RunnableWatch(lambda: [])
    struck = JobState(old, "FAILED", RECLAIMED_OUT, attempts=4, reclaims=4, reclaimed_s=40.0)
    executor.poller = SimpleNamespace(poll=lambda ids: {old: struck}, summaries={})
    calls.reset()

    async def check() -> list:
        return [info async for info in executor.check_active_jobs([child])]

    assert asyncio.run(check()) == [child]
    assert calls["batch.SubmitJob"] == 1 and child.external_jobid != old
    (again,) = executor.clients.batch.describe_jobs(jobs=[child.external_jobid])["jobs"]
    infra = executor.services.infra
    assert again["jobQueue"] == infra.on_demand_queues["default"] != infra.job_queue_arn
    assert again["jobName"].endswith("-ondemand") and "arrayProperties" not in again
    env = {e["name"]: e["value"] for e in again["container"]["environment"]}
    assert env["KNOT_SPEC_INDEX"] == "2"
    # The runtime reads the child's own record, as the array child would have.
    assert fetch_spec(executor.clients.s3, spec_location(env))["jobid"] == 3
    entry = executor.run_log.jobs[3]
    assert (entry.batch_id, entry.reclaims, entry.reclaimed_s) == (child.external_jobid, 4, 40.0)
    # Once on demand, a reclaim (which on-demand instances do not see) is not chased again.
    assert executor.submissions.on_demand(child.external_jobid) is None
    # The journal holds it under its new id, so a run killed now adopts it.
    entries, _ = read_journal(Path(".snakemake", "knot", "journal.jsonl"))
    (moved,) = [e for e in entries if e.batch_id == child.external_jobid]
    (was,) = [e for e in entries if e.batch_id == old]
    assert moved == dataclasses.replace(was, batch_id=child.external_jobid)


def test_the_budget_lets_jobs_go_until_one_would_pass_it(executor, calls):
    """Three jobs at $0.40 each under a $1 budget: two go (one array job), the third is
    reported to Snakemake as failed, and the two in flight count against the budget."""
    context = price_context(Pricing("us-east-1", "spot", True, ("optimal",)), load_prices())
    executor.budget = Budget(1.0, lambda job: 0.4, context)
    errors: list[tuple] = []
    executor.report_job_error = lambda info, msg=None, **kw: errors.append((info.job, msg))
    executor._warn = lambda line: errors.append((None, line))
    jobs = [_job(i) for i in range(1, 4)]
    calls.reset()
    executor.run_jobs(jobs)
    assert calls["batch.SubmitJob"] == 1
    assert [info.job for info in executor.submitted] == jobs[:2]
    assert errors[0][1].startswith(
        "knot: budget reached: spent $0.0000 so far, $0.8000 predicted for 2 job(s) in flight"
    )
    assert errors[1:] == [(jobs[2], NOT_SUBMITTED)]
    assert sorted(executor.budget.flying) == sorted(i.external_jobid for i in executor.submitted)
    assert set(executor.run_log.jobs) == {1, 2}  # the job held back never reached Batch


def test_a_rule_whose_reclaims_cost_more_starts_in_the_on_demand_queue(executor, caplog):
    said = "knot: rule sample starts on demand: ..."
    executor.submissions.on_demand_rules = {"sample": said}
    with caplog.at_level(logging.INFO, logger="knot"):
        executor.run_jobs([_job(1)])
        executor.run_jobs([_job(2)])
    ids = [info.external_jobid for info in executor.submitted]
    described = executor.clients.batch.describe_jobs(jobs=ids)["jobs"]
    infra = executor.services.infra
    assert {job["jobQueue"] for job in described} == {infra.on_demand_queues["default"]}
    assert [r.getMessage() for r in caplog.records].count(said) == 1
