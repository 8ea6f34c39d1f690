"""The Dagster code location: assets, checks, jobs, the shard sensor and resources."""

from dagster import Definitions, ExecutorDefinition, in_process_executor

from raising_dagster.assets.common import with_code_versions
from raising_dagster.assets.curriculum import ordered_docs, training_ready_corpus
from raising_dagster.assets.evaluation import student_probe
from raising_dagster.assets.framing import experiential_docs, first_person_docs, social_docs
from raising_dagster.assets.raw import raw_docs
from raising_dagster.assets.scored import scored_docs
from raising_dagster.jobs import probe_student_job, publish_curriculum_job, raise_shard_job
from raising_dagster.logs import console_logger
from raising_dagster.resources import RaisingResource, TeacherResource
from raising_dagster.sensors import raw_shard_sensor

ASSETS = [
    raw_docs,
    scored_docs,
    first_person_docs,
    experiential_docs,
    social_docs,
    ordered_docs,
    training_ready_corpus,
    student_probe,
]


def build_definitions(raising: RaisingResource | None = None) -> Definitions:
    """The code location; `raising` overrides the settings resource (default: env, config)."""
    raising = raising or RaisingResource()
    # the boto3 client of the sensor (and of user code): dagster-aws' S3Resource, endpoint and
    # region from the settings or the environment, credentials from the environment only
    s3 = raising.settings.storage.s3_options().resource()
    return Definitions(
        assets=with_code_versions(ASSETS, raising.settings),
        jobs=[raise_shard_job, publish_curriculum_job, probe_student_job],
        sensors=[raw_shard_sensor],
        resources={"raising": raising, "teacher": TeacherResource(raising=raising), "s3": s3},
        loggers={"console": console_logger},
        executor=_executor(raising.settings.executor),
    )


def _executor(kind: str) -> ExecutorDefinition:
    """By default every run (jobs and ad-hoc materializations from the UI) in one process, so
    the teacher's engine starts once a run, not once a step; `k8s_job`: one Kubernetes pod a
    step (dagster-k8s), the job's pods configured by the run launcher's settings."""
    if kind == "k8s_job":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return in_process_executor


defs = build_definitions()
