"""`raising`'s console entry: a finished command ends at once, with its exit status, unless
something still runs (subprocess tests of the CLI cover the real command's statuses)."""

from __future__ import annotations

import threading

import pytest

from raising_dagster import cli


class _Exited(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _fake_exit(code: int) -> None:
    raise _Exited(code)


@pytest.mark.parametrize(
    ("raised", "status"), [(None, 0), (SystemExit(3), 3), (SystemExit(None), 0)]
)
def test_a_finished_command_exits_at_once_with_its_status(
    monkeypatch: pytest.MonkeyPatch, raised: SystemExit | None, status: int
) -> None:
    def command() -> None:
        if raised is not None:
            raise raised

    monkeypatch.setattr(cli, "main", command)
    monkeypatch.setattr(cli.os, "_exit", _fake_exit)
    with pytest.raises(_Exited) as exited:
        cli.entry()
    assert exited.value.code == status


def test_a_command_leaving_a_thread_running_exits_as_usual(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait, daemon=False)

    def command() -> None:
        worker.start()
        raise SystemExit(1)

    monkeypatch.setattr(cli, "main", command)
    monkeypatch.setattr(cli.os, "_exit", _fake_exit)
    try:
        with pytest.raises(SystemExit) as exited:  # not os._exit: the thread's work would be lost
            cli.entry()
        assert exited.value.code == 1
    finally:
        release.set()
        worker.join()
