"""`make bench`: end-to-end throughput of `raising run` against a hand-written single Polars pass
(the floor, floor_polars.py) and datatrove's per-document pipeline (datatrove_pipeline.py, when
datatrove is installed: `pip install -e ".[bench]"`), on one seeded synthetic corpus (issue 12).

Each pipeline runs in its own process tree; wall time, documents per second, CPU seconds of the
tree and its peak resident memory (summed over the tree's processes, sampled every 0.2 s) are
reported, with the machine's load average before and after (other work on the machine slows
every row). `raising run` uses the template teacher and a codex without minimum shares
(zero_share_codex.yaml), `--parallel` shards at once; its Dagster step times follow.

    python benchmarks/bench_throughput.py [--docs 20000] [--shards 2] [--words 535]
        [--parallel 2] [--without-tokens] [--work DIR]

`--docs 200000 --shards 20` is the scale run (shards of the same size: peak memory should not
grow with the corpus). `--without-tokens` adds a run with `tokenizer.enabled: false`, the same
work as the floor and datatrove do (neither tokenizes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAISING = str(Path(sys.executable).parent / "raising")
CODEX = HERE / "zero_share_codex.yaml"
_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    """One pipeline's run: wall and CPU seconds, peak memory of its process tree."""

    name: str
    seconds: float
    cpu_seconds: float
    peak_mb: float
    detail: dict[str, object] = field(default_factory=dict)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _tree_sample(root: int, cpu: dict[int, float]) -> float:
    """The summed resident memory (MB) of a process tree now; records each process's CPU
    seconds so far (user + system) in `cpu`."""
    tree, stack, total = _children(), [root], 0
    while stack:
        pid = stack.pop()
        stack += tree.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * _PAGE
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        cpu[pid] = max(cpu.get(pid, 0.0), (int(fields[11]) + int(fields[12])) / _TICKS)
    return total / 2**20


def measure(name: str, command: list[str], env: dict[str, str] | None = None) -> Measured:
    """Run a command; its wall time, the CPU time of its process tree (sampled, so a process
    that lived under 0.2 s may be missed) and the peak of the tree's summed resident memory."""
    before = os.times()
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    peak = [0.0]
    cpu_by_pid: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_sample(process.pid, cpu_by_pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    after = os.times()
    if process.returncode != 0:
        raise RuntimeError(
            f"{name} failed ({process.returncode}):\n{stdout[-2000:]}\n{stderr[-4000:]}"
        )
    waited = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    cpu = max(waited, sum(cpu_by_pid.values()))
    detail: dict[str, object] = {}
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    if last.startswith("{"):
        detail = json.loads(last)
    return Measured(name, seconds, cpu, peak[0], detail)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def step_times(home: Path) -> list[tuple[str, str, float]]:
    """(run, step, seconds) of every run in a Dagster home, in start order."""
    code = (
        "import json, sys\n"
        "from dagster import DagsterInstance\n"
        "from dagster._core.instance.ref import InstanceRef\n"
        "rows = []\n"
        "with DagsterInstance.from_ref(InstanceRef.from_dir(sys.argv[1])) as instance:\n"
        "    for run in reversed(instance.get_runs()):\n"
        "        label = run.tags.get('dagster/partition') or run.job_name\n"
        "        for s in instance.get_run_step_stats(run.run_id):\n"
        "            rows.append((s.start_time, label, s.step_key, s.end_time - s.start_time))\n"
        "print(json.dumps([r[1:] for r in sorted(rows)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(home)], capture_output=True, text=True, check=True
    )
    return [tuple(r) for r in json.loads(out.stdout.strip().splitlines()[-1])]


def bench(args: argparse.Namespace, work: Path) -> str:
    from raising_dagster.stages.synth import write_synth_corpus

    landing = work / "landing"
    shutil.rmtree(work, ignore_errors=True)
    paths = write_synth_corpus(landing, args.docs, args.shards, seed=1, mean_words=args.words)
    raw_mb = sum(p.stat().st_size for p in paths) / 2**20
    load_before = load_average()
    env = {**os.environ, "GX_ANALYTICS_ENABLED": "False", "RAISING_PROGRESS": "0"}
    rows: list[Measured] = []
    floor_root = work / "floor"
    floor_root.mkdir()
    (floor_root / "landing").symlink_to(landing)
    rows.append(
        measure(
            "floor: single Polars pass",
            [sys.executable, str(HERE / "floor_polars.py"), str(floor_root)],
            env,
        )
    )
    try:
        import datatrove  # noqa: F401

        rows.append(
            measure(
                "datatrove: per-document framing + scoring, 2 tasks",
                [
                    sys.executable,
                    str(HERE / "datatrove_pipeline.py"),
                    str(landing),
                    str(work / "datatrove"),
                    "2",
                    str(CODEX),
                ],
                env,
            )
        )
    except ImportError:
        sys.stderr.write("datatrove is not installed (pip install -e '.[bench]'): row skipped\n")
    runs = [("ours: raising run", work / "ours", env)]
    if args.without_tokens:
        runs.append(
            (
                "ours, tokenizer off",
                work / "ours-no-tokens",
                {**env, "RAISING_TOKENIZER__ENABLED": "false"},
            )
        )
    steps = []
    for name, out, run_env in runs:
        home = out / "dagster_home"
        command = [
            RAISING,
            "run",
            "--landing",
            str(landing),
            "--out",
            str(out),
            "--teacher",
            "template",
            "--codex",
            str(CODEX),
            "--parallel",
            str(args.parallel),
        ]
        try:
            rows.append(
                measure(
                    f"{name} --parallel {args.parallel}",
                    command,
                    {**run_env, "DAGSTER_HOME": str(home)},
                )
            )
        except RuntimeError as exc:  # reported, and the other rows still run
            sys.stderr.write(f"{exc}\n")
            continue
        steps.append((name, step_times(home)))
    return report(args, raw_mb, rows, steps, load_before, load_average())


def report(
    args: argparse.Namespace,
    raw_mb: float,
    rows: list[Measured],
    steps: list[tuple[str, list[tuple[str, str, float]]]],
    load_before: str,
    load_after: str,
) -> str:
    lines = [
        f"{args.docs:,} synthetic documents (~{args.words} words, {args.shards} shards, "
        f"{raw_mb:.0f} MB of JSONL); {os.cpu_count()} CPUs; load average before "
        f"{load_before}, after {load_after}",
        "",
        "| pipeline | wall s | docs/s | CPU s | peak MB |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.name} | {r.seconds:.1f} | {args.docs / r.seconds:,.0f} | {r.cpu_seconds:.1f} "
        f"| {r.peak_mb:,.0f} |"
        for r in rows
    ]
    floor = rows[0]
    datatrove = next((r for r in rows if r.name.startswith("datatrove")), None)
    lines.append("")
    for r in rows:
        if not r.name.startswith("ours"):
            continue
        line = f"{r.name}: {r.seconds / floor.seconds:.2f}x the floor's wall time (goal <= 5)"
        if datatrove is not None:
            line += (
                f", {datatrove.seconds / r.seconds:.2f}x datatrove's speed (goal > 1; "
                f"{r.seconds:.1f} s vs {datatrove.seconds:.1f} s)"
            )
        lines.append(line)
    for name, rows_of_steps in steps:
        lines += ["", f"Dagster steps of {name} (seconds; shards overlap with --parallel):"]
        lines += [f"  {run:<24} {step:<24} {seconds:7.1f}" for run, step, seconds in rows_of_steps]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--words", type=int, default=535, help="mean words a document")
    parser.add_argument("--parallel", type=int, default=2, help="raising run --parallel")
    parser.add_argument("--without-tokens", action="store_true")
    parser.add_argument("--work", type=Path, default=None, help="kept when given")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="raising-bench-"))
    try:
        sys.stdout.write(bench(args, work) + "\n")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
