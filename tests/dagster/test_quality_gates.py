"""Quality gates: a healthy corpus passes every check and publishes; a poisoned one fails the check
that names its fault, and the training-ready corpus keeps its previous good version, in that run
and in later ones. Real Parquet files and a real (ephemeral) instance; fakes only inject faults."""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from raising_dagster.assets.curriculum import GATED_BY
from raising_dagster.definitions import build_definitions
from raising_dagster.expectations.gate import blocking_failures
from raising_dagster.resources import RaisingResource
from raising_dagster.runner import RUN_CONFIG, run_pipeline
from raising_dagster.stages import order
from raising_dagster.teacher import TemplateTeacher


def _published(raising: RaisingResource, instance: DagsterInstance) -> bytes:
    report = run_pipeline(raising, instance)
    assert report.published, report.failures
    return (Path(raising.store_dir) / "training_ready" / "manifest.json").read_bytes()


def _assert_previous_version_kept(raising: RaisingResource, good_manifest: bytes) -> None:
    store = Path(raising.store_dir)
    assert (store / "training_ready" / "manifest.json").read_bytes() == good_manifest
    assert not list(store.glob(".training_ready.*")), "no staging folder left behind"


def _message(failure) -> str:
    error, messages = failure.event_specific_data.error, []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def test_sample_corpus_passes_every_check_and_publishes(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    """The bundled sample corpus with the default codex: the gates' thresholds fit real data."""
    raising = RaisingResource(store_dir=str(tmp_path / "store"))
    report = run_pipeline(raising, instance)
    assert report.published, report.failures
    graph = build_definitions(raising).resolve_asset_graph()
    evaluated = {
        (r.key.asset_key.to_user_string(), r.key.name)
        for r in instance.event_log_storage.get_latest_asset_check_execution_by_key(
            list(graph.asset_check_keys)
        ).values()
    }
    assert evaluated == {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert blocking_failures(instance, GATED_BY, report.shards) == []


class _Teacher(TemplateTeacher):
    """The template teacher with one fault: `spoil(stage, request, rewrite)` edits a rewrite."""

    spoil: Callable = staticmethod(lambda stage, request, rewrite: rewrite)

    def rewrite(self, stage, requests):
        return [
            self.spoil(stage, q, r)
            for q, r in zip(requests, super().rewrite(stage, requests), strict=True)
        ]


def _teacher(monkeypatch: pytest.MonkeyPatch, spoil: Callable) -> None:
    teacher = type("FaultyTeacher", (_Teacher,), {"spoil": staticmethod(spoil)})
    monkeypatch.setattr(
        "raising_dagster.resources.teacher.build_teacher",
        lambda settings: teacher(settings.identity),
    )


def unframed_fables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first-person stage passes fables through raw: no "I" frames them."""

    def spoil(stage, request, rewrite):
        if stage == "first_person" and request.kind == "fable":
            return dataclasses.replace(rewrite, text=request.text)
        return rewrite

    _teacher(monkeypatch, spoil)


def dialogue_without_prompt_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The social stage loses the prompt hash of the fables' dialogues."""

    def spoil(stage, request, rewrite):
        if stage == "social" and request.kind == "fable":
            return dataclasses.replace(
                rewrite, lineage=dataclasses.replace(rewrite.lineage, prompt_sha=None)
            )
        return rewrite

    _teacher(monkeypatch, spoil)


def _spoil_ordered(monkeypatch: pytest.MonkeyPatch, spoil: Callable) -> None:
    def ordered(*args, **kwargs):
        summary = order.order_records(*args, **kwargs)
        out_file = args[4]
        spoil(pl.read_parquet(out_file)).write_parquet(out_file)
        return summary

    monkeypatch.setattr("raising_dagster.assets.curriculum.order_records", ordered)


def stage_without_honesty(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first stage's records lose the value they teach after it was woven in."""
    _spoil_ordered(
        monkeypatch,
        lambda f: f.with_columns(
            pl.when(pl.col("stage") == "foundations")
            .then(pl.col("values").list.set_difference(["honesty"]))
            .otherwise(pl.col("values"))
            .alias("values")
        ),
    )


def shuffled_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The curriculum is shuffled: positions no longer follow the stages."""
    _spoil_ordered(
        monkeypatch,
        lambda f: (
            f.sort("stage_index", descending=True)
            .with_row_index("p")
            .with_columns(position=pl.col("p").cast(pl.Int64))
            .drop("p")
        ),
    )


def record_without_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """One curriculum record loses the name of the model that made it."""
    _spoil_ordered(
        monkeypatch,
        lambda f: f.with_columns(
            teacher_model=pl.when(pl.col("position") == 1)
            .then(None)
            .otherwise(pl.col("teacher_model"))
        ),
    )


@pytest.mark.parametrize(
    ("fault", "check", "offending"),
    [
        (unframed_fables, "every_record_framed_in_first_person", "fable-1"),
        (unframed_fables, "first_person_docs_meet_expectation_suite", "framed_first_person"),
        (dialogue_without_prompt_hash, "social_docs_meet_expectation_suite", "prompt_sha"),
        (stage_without_honesty, "each_stage_covers_each_value_at_min_share", "foundations"),
        (shuffled_order, "positions_contiguous_and_stages_non_decreasing", "step back"),
        (record_without_model, "every_record_traces_to_raw_doc_prompt_and_model", "teacher_model"),
    ],
    ids=["unframed", "unframed-suite", "lineage-shard", "missing-value", "shuffled", "lineage"],
)
def test_poisoned_corpus_fails_its_check_and_keeps_the_last_good_corpus(
    raising: RaisingResource,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    fault: Callable,
    check: str,
    offending: str,
) -> None:
    good = _published(raising, instance)
    fault(monkeypatch)
    report = run_pipeline(raising, instance)
    assert not report.published
    named = [f for f in report.failures if f"check {check!r}" in f]
    assert named, report.failures
    assert any(offending in f for f in named), named
    _assert_previous_version_kept(raising, good)


def test_later_run_refuses_to_publish_while_a_shard_check_last_failed(
    raising: RaisingResource, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _published(raising, instance)
    defs = build_definitions(raising)
    with monkeypatch.context() as patch:
        unframed_fables(patch)
        shard = defs.resolve_job_def("raise_shard").execute_in_process(
            partition_key="alpha.jsonl", instance=instance, raise_on_error=False
        )
    assert not shard.success
    # Later, with a healthy teacher, someone publishes from the UI without re-raising the shard:
    # the renderings on disk still pass the curriculum's own checks, the shard's check does not.
    later = defs.resolve_job_def("publish_curriculum").execute_in_process(
        instance=instance, run_config=RUN_CONFIG, raise_on_error=False
    )
    assert not later.success
    assert later.get_asset_materialization_events()[0].asset_key == AssetKey("ordered_docs")
    (failure,) = later.get_step_failure_events()
    assert failure.step_key == "training_ready_corpus"
    message = _message(failure)
    assert "every_record_framed_in_first_person" in message
    assert "first_person_docs[alpha.jsonl]" in message
    assert "fable-1" in message
    _assert_previous_version_kept(raising, good)

    # Re-raising the shard with the healthy teacher clears the gate.
    assert run_pipeline(raising, instance).published


def test_later_run_of_the_corpus_alone_refuses_after_a_failed_curriculum_check(
    raising: RaisingResource, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _published(raising, instance)
    with monkeypatch.context() as patch:
        shuffled_order(patch)
        assert not run_pipeline(raising, instance).published
    only_corpus = build_definitions(raising).resolve_job_def("publish_curriculum")
    later = only_corpus.execute_in_process(
        instance=instance,
        run_config=RUN_CONFIG,
        asset_selection=[AssetKey("training_ready_corpus")],
        raise_on_error=False,
    )
    assert not later.success
    (failure,) = later.get_step_failure_events()
    message = _message(failure)
    assert "positions_contiguous_and_stages_non_decreasing" in message
    assert "on ordered_docs failed" in message
    _assert_previous_version_kept(raising, good)


def test_a_codex_no_assignment_can_meet_refuses_publication_saying_why(
    raising: RaisingResource, instance: DagsterInstance, tmp_path: Path
) -> None:
    good = _published(raising, instance)
    codex = tmp_path / "greedy_codex.yaml"
    codex.write_text(
        "version: 2\nmax_taught_values: 1\nvalues:\n"
        + "".join(
            f"  - name: {name}\n    description: {name} as the test defines it\n"
            f"    cues: [{name}]\n    min_share: {{foundations: 0.6}}\n"
            for name in ("honesty", "courage")
        ),
        encoding="utf-8",
    )
    greedy = RaisingResource(
        landing_dir=raising.landing_dir, store_dir=raising.store_dir, codex_path=str(codex)
    )
    report = run_pipeline(greedy, instance)
    assert not report.published
    named = [f for f in report.failures if "each_stage_covers_each_value_at_min_share" in f]
    assert named and "min shares add up to 1.20, more than a record can teach" in named[0]
    _assert_previous_version_kept(raising, good)
