"""Jobs: one raises a shard through every per-shard asset, one publishes the curriculum, one probes
the published corpus with small students (never part of publication)."""

from dagster import AssetSelection, define_asset_job

SHARD_ASSETS = ["raw_docs", "scored_docs", "first_person_docs", "experiential_docs", "social_docs"]
CURRICULUM_ASSETS = ["ordered_docs", "training_ready_corpus"]
# Every raise_shard run carries this tag; dagster.yaml's run queue limits how many such runs
# (each may hold a teacher: an in-process engine, or connections to the fleet) are in progress.
TEACHER_RUN_TAG = "raising/teacher"

raise_shard_job = define_asset_job(
    "raise_shard",
    selection=AssetSelection.assets(*SHARD_ASSETS),
    description="Read, score (and weave values), frame, experience and socialize one raw shard.",
    tags={TEACHER_RUN_TAG: "raise_shard"},
)
publish_curriculum_job = define_asset_job(
    "publish_curriculum",
    selection=AssetSelection.assets(*CURRICULUM_ASSETS),
    description="Order every raised shard into the curriculum; publish the training-ready corpus.",
)
probe_student_job = define_asset_job(
    "probe_student",
    selection=AssetSelection.assets("student_probe"),
    description="Train small students on the raw and the raised corpus and probe them.",
)
