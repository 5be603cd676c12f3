"""The instance type each job ran on: DescribeJobs' container instance, then ECS's
DescribeContainerInstances (in-process moto), batched and asked once per instance."""

from __future__ import annotations

import json

import pytest

from snakemake_executor_knot.aws.hosts import (
    cluster_of,
    find_container_instances,
    instance_types,
)
from snakemake_executor_knot.aws.status import JobState, container_instance
from snakemake_executor_knot.run.record import RunLog

CLUSTER = "knot-ondemand-X1_Batch_0f3a"


def register_instance(clients, instance_type: str, cluster: str = CLUSTER) -> str:
    """A container instance of ``instance_type`` in ECS cluster ``cluster``; its ARN."""
    ecs = clients.ecs
    ecs.put_account_setting(name="containerInstanceLongArnFormat", value="enabled")
    ecs.create_cluster(clusterName=cluster)
    image = clients.ec2.describe_images()["Images"][0]["ImageId"]
    reservation = clients.ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType=instance_type
    )
    document = {"instanceId": reservation["Instances"][0]["InstanceId"]}
    reply = ecs.register_container_instance(
        cluster=cluster, instanceIdentityDocument=json.dumps(document)
    )
    return reply["containerInstance"]["containerInstanceArn"]


class Batch:
    """DescribeJobs as AWS answers it for jobs on EC2 (moto's Batch has no instances)."""

    def __init__(self, where: dict[str, str | None]) -> None:
        self.where = where
        self.calls: list[list[str]] = []

    def describe_jobs(self, jobs: list[str]) -> dict:
        self.calls.append(jobs)
        return {"jobs": [self._job(job_id) for job_id in jobs if job_id in self.where]}

    def _job(self, job_id: str) -> dict:
        container = {"containerInstanceArn": self.where[job_id]} if self.where[job_id] else {}
        return {"jobId": job_id, "status": "SUCCEEDED", "container": container}


def test_the_cluster_comes_from_the_long_arn_only():
    long = f"arn:aws:ecs:us-east-1:123456789012:container-instance/{CLUSTER}/abc"
    assert cluster_of(long) == CLUSTER
    assert cluster_of("arn:aws:ecs:us-east-1:123456789012:container-instance/abc") is None


def test_a_retried_job_has_its_last_attempts_instance():
    arn = f"arn:aws:ecs:us-east-1:123456789012:container-instance/{CLUSTER}/abc"
    description = {
        "container": {},
        "attempts": [{"container": {"containerInstanceArn": arn}}, {"container": {}}],
    }
    assert container_instance(description) == arn


@pytest.mark.parametrize("value", ["", "TBD", None, 7, "arn:aws:ecs:us-east-1:1:task/x"])
def test_a_value_that_is_no_container_instance_arn_is_none(value):
    """moto says "TBD"; a hostile or odd value never becomes an instance to ask ECS about."""
    assert container_instance({"container": {"containerInstanceArn": value}}) is None


def test_types_take_one_call_per_cluster_whatever_the_jobs(clients, calls):
    calls.attach(clients, services=("ecs",))
    big = register_instance(clients, "c5.4xlarge")
    small = register_instance(clients, "m5.large")
    other = register_instance(clients, "r5.xlarge", cluster="knot-spot-Y2_Batch_77aa")
    calls.reset()
    # 40 jobs on three instances: each instance is asked about once.
    arns = [big, small] * 19 + [other, other]
    assert instance_types(clients.ecs, arns) == {
        big: "c5.4xlarge",
        small: "m5.large",
        other: "r5.xlarge",
    }
    assert calls["ecs.DescribeContainerInstances"] == 2


def test_children_are_described_a_hundred_at_a_time():
    where = {
        f"parent:{i}": f"arn:aws:ecs:us-east-1:123456789012:container-instance/c/{i % 3}"
        for i in range(250)
    }
    batch = Batch(where)
    found = find_container_instances(batch, list(where))
    assert found == where
    assert [len(chunk) for chunk in batch.calls] == [100, 100, 50]


def test_without_container_instances_one_call_ends_the_search():
    batch = Batch({f"parent:{i}": None for i in range(250)})
    assert find_container_instances(batch, [f"parent:{i}" for i in range(250)]) == {}
    assert len(batch.calls) == 1  # moto, Fargate: the rest would have none either


def test_the_run_record_gets_each_jobs_type(clients):
    arn = register_instance(clients, "c5.xlarge")
    log = RunLog("r1", clock=lambda: 1.0)
    log.handed_over([_Job(1), _Job(2)])
    resources = _Resources()
    log.submitted(1, "single", resources, None)
    log.submitted(2, "parent:0", resources, None)
    # The single job's instance came with the status checks; the child needs DescribeJobs.
    log.finished(1, JobState("single", "SUCCEEDED", container_instance=arn))
    log.finished(2, JobState("parent:0", "SUCCEEDED"))
    batch = Batch({"parent:0": arn})
    assert log.find_instance_types(batch, clients.ecs) == 2
    assert batch.calls == [["parent:0"]]
    jobs = log.as_dict({}, {}, {})["jobs"]
    assert [(j["instance_type"], j["instance_type_source"]) for j in jobs] == [
        ("c5.xlarge", "batch"),
        ("c5.xlarge", "batch"),
    ]


def test_on_the_emulator_the_type_is_the_environments_choice_marked_an_estimate():
    log = RunLog("r2", clock=lambda: 1.0)
    log.handed_over([_Job(1)])
    log.submitted(1, "job-1", _Resources(vcpus=4, memory_mib=30000), None)
    log.finished(1, JobState("job-1", "SUCCEEDED"))
    log.estimate_instance_types({"default": ("optimal",)}, "us-east-1")
    (job,) = log.as_dict({}, {}, {})["jobs"]
    assert job["instance_type_source"] == "estimate"
    assert job["instance_type"] == "r5.xlarge"  # 4 vCPUs, 32 GiB: the cheapest that fits


def test_the_estimate_picks_from_the_jobs_own_compute_class():
    log = RunLog("r3", clock=lambda: 1.0)
    log.handed_over([_Job(1)])
    log.submitted(1, "job-1", _Resources(vcpus=4, memory_mib=30000, compute_class="big"), None)
    log.finished(1, JobState("job-1", "SUCCEEDED"))
    log.estimate_instance_types({"default": ("optimal",), "big": ("m5",)}, "us-east-1")
    (job,) = log.as_dict({}, {}, {})["jobs"]
    assert job["instance_type"].startswith("m5.") and job["requested"]["compute_class"] == "big"


class _Rule:
    name = "sample"


class _Job:
    rule = _Rule()

    def __init__(self, jobid: int) -> None:
        self.jobid = jobid


class _Resources:
    def __init__(self, vcpus: int = 1, memory_mib: int = 1024, compute_class="default") -> None:
        self.vcpus, self.memory_mib, self.gpus = vcpus, memory_mib, 0
        self.compute_class = compute_class
