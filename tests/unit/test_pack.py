"""Phases: runs of consecutive positions, one per stage with step pacing, one per pacing phase
when stages mix, a new series where held-back records start over."""

from pathlib import Path

import duckdb
import polars as pl

from raising_dagster.config import CurriculumSettings
from raising_dagster.stages.pack import curriculum_phases, stage_thresholds


def _ordered(tmp_path: Path, stages: list[int], times: list[float] | None = None) -> Path:
    path = tmp_path / "ordered.parquet"
    pl.DataFrame(
        {
            "position": range(len(stages)),
            "stage_index": stages,
            "pacing_time": times or [i / len(stages) for i in range(len(stages))],
        }
    ).write_parquet(path)
    return path


def test_step_pacing_gives_one_phase_per_stage_run(tmp_path: Path) -> None:
    # held-back value-heavy records start the stages over after position 5
    ordered = _ordered(tmp_path, [0, 0, 1, 1, 2, 2, 0, 1, 1, 2])
    phases = curriculum_phases(duckdb.connect(), ordered, CurriculumSettings())
    assert [p.name for p in phases] == [
        "phase-00-foundations",
        "phase-01-examples",
        "phase-02-dilemmas",
        "phase-03-foundations",
        "phase-04-examples",
        "phase-05-dilemmas",
    ]
    assert [(p.first_position, p.last_position) for p in phases] == [
        (0, 1),
        (2, 3),
        (4, 5),
        (6, 6),
        (7, 8),
        (9, 9),
    ]


def test_mixing_pacing_cuts_where_the_next_stage_may_appear(tmp_path: Path) -> None:
    curriculum = CurriculumSettings(pacing="linear", initial_competence=0.2)
    t1, t2 = stage_thresholds(curriculum)
    assert (round(t1, 4), round(t2, 4)) == (round((1 / 3 - 0.2) / 0.8, 4), 0.5833)
    times = [0.0, 0.1, t1, 0.3, 0.5, t2, 0.7, 0.9]
    stages = [0, 0, 0, 1, 0, 1, 2, 1]
    phases = curriculum_phases(duckdb.connect(), _ordered(tmp_path, stages, times), curriculum)
    assert [(p.name, p.first_position, p.last_position) for p in phases] == [
        ("phase-00-foundations", 0, 1),
        ("phase-01-foundations-to-examples", 2, 4),
        ("phase-02-examples-to-dilemmas", 5, 7),
    ]
    assert phases[1].records_by_stage == {"foundations": 2, "examples": 1}
    assert phases[2].stages == ["examples", "dilemmas"]
