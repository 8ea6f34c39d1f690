"""Dagster's own machinery from the outside, for tests and benchmarks: a Dagster home with the
shipped instance configuration (limits changed where asked), `dagster-daemon run` in its own
process group, `dagster job backfill` and `dagster sensor start`, and the runs' timings read back
from the instance."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.instance.ref import InstanceRef

from raising_dagster.instance import POSTGRES_YAML, SQLITE_YAML

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
_TERMINAL = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def write_instance_yaml(
    home: Path,
    postgres: bool,
    max_concurrent_runs: int | None = None,
    teacher_pool_limit: int | None = None,
    dequeue_interval_s: int | None = None,
) -> Path:
    """HOME/dagster.yaml: the shipped file (Postgres or SQLite), with the given limits."""
    config = yaml.safe_load((POSTGRES_YAML if postgres else SQLITE_YAML).read_text())
    runs = config["concurrency"]["runs"]
    if max_concurrent_runs is not None:
        runs["max_concurrent_runs"] = max_concurrent_runs
        for limit in runs["tag_concurrency_limits"]:
            limit["limit"] = max_concurrent_runs
    if teacher_pool_limit is not None:
        config["concurrency"]["pools"]["default_limit"] = teacher_pool_limit
    if dequeue_interval_s is not None:
        config["run_queue"] = {"dequeue_interval_seconds": dequeue_interval_s}
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def open_instance(home: Path) -> DagsterInstance:
    return DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def dagster_env(home: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of the daemon and the CLI: this checkout first on the path."""
    env = {**os.environ, **extra, "DAGSTER_HOME": str(home), "GX_ANALYTICS_ENABLED": "False"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


@contextmanager
def running_daemon(env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`dagster-daemon run` (run queue, backfills, sensors) until the block ends; the whole
    process group (code server, runs) is stopped then."""
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
            cwd=REPO,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield daemon
        finally:
            _stop_group(daemon)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def dagster_cli(env: Mapping[str, str], *args: str) -> str:
    """Run the `dagster` CLI against the workspace; its output (raises on a non-zero exit)."""
    done = subprocess.run(
        [str(BIN / "dagster"), *args, "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dagster {' '.join(args)} failed: {done.stdout}\n{done.stderr}")
    return done.stdout


def wait_for_runs(
    instance: DagsterInstance, job: str, count: int, timeout_s: float, daemon_log: Path
) -> list:
    """The job's runs once `count` of them ended; raises with the daemon's log on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = instance.get_runs(filters=RunsFilter(job_name=job))
        if len(runs) >= count and all(r.status in _TERMINAL for r in runs):
            return runs
        if time.monotonic() > deadline:
            states = sorted(str(r.status) for r in runs)
            tail = daemon_log.read_text(errors="replace")[-4000:] if daemon_log.exists() else ""
            raise TimeoutError(f"{job}: {len(runs)} runs {states} after {timeout_s}s\n{tail}")
        time.sleep(1.0)


@dataclass(frozen=True)
class Interval:
    run_id: str
    name: str
    start: float
    end: float


def run_intervals(instance: DagsterInstance, run_ids: list[str]) -> list[Interval]:
    """When each run was in progress (start to end, as the instance recorded it)."""
    out = []
    for run_id in run_ids:
        record = instance.get_run_record_by_id(run_id)
        assert record is not None and record.start_time and record.end_time
        out.append(Interval(run_id, "run", record.start_time, record.end_time))
    return out


def step_intervals(instance: DagsterInstance, run_ids: list[str]) -> list[Interval]:
    """When each step of the runs executed: STEP_START to STEP_SUCCESS or STEP_FAILURE."""
    out = []
    for run_id in run_ids:
        starts: dict[str, float] = {}
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                starts[event.step_key] = record.timestamp
            elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                start = starts[event.step_key]
                out.append(Interval(run_id, event.step_key, start, record.timestamp))
    return out


def max_overlap(intervals: list[Interval]) -> int:
    """The most intervals in progress at one moment."""
    edges = sorted([(i.start, 1) for i in intervals] + [(i.end, -1) for i in intervals])
    current = peak = 0
    for _, delta in edges:
        current += delta
        peak = max(peak, current)
    return peak
