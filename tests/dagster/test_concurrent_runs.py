"""Two `raising run`s into one fresh output folder at once (issue 9, item 4): the second waits for
the first, both publish, and the Dagster instance in the folder stays usable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.instance.ref import InstanceRef

from tests.conftest import HONESTY_CODEX

RAISING = str(Path(sys.executable).parent / "raising")


def _start(landing: Path, out: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # OUT/dagster_home
    return subprocess.Popen(
        [
            RAISING,
            "run",
            "--landing",
            str(landing),
            "--out",
            str(out),
            "--codex",
            str(HONESTY_CODEX),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_two_runs_into_one_fresh_output_folder_serialize(tmp_path: Path, landing: Path) -> None:
    (landing / "beta.jsonl").unlink()  # one small shard: the test is about the two processes
    out = tmp_path / "out"
    first, second = _start(landing, out), _start(landing, out)
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    assert sum("another raising run holds it" in o for o in outputs) == 1, outputs
    # the instance in the folder opens (two alembic heads would refuse) and holds both runs
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(out / "dagster_home"))) as instance:
        runs = instance.get_runs()
    assert len(runs) == 2 * (len(list(landing.iterdir())) + 1)
    assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
