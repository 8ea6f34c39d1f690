"""The openai teacher over several endpoints (`teacher.base_urls`): requests spread with a
concurrency limit per endpoint, a failing endpoint ejected for a while (across batches) and
tried again later, every endpoint down fails loudly. Real local HTTP servers injecting faults."""

import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from raising_dagster.assets.common import code_versions
from raising_dagster.config import TeacherSettings, load_settings
from raising_dagster.teacher.openai import TeacherUnavailable
from tests.unit.test_teacher_openai_faults import (
    Faults,
    _dead_url,
    make_handler,
    requests,
    teacher,
)


@pytest.fixture
def fleet() -> Iterator[list[tuple[str, Faults]]]:
    """Three fault-injecting OpenAI-style servers on 127.0.0.1."""
    servers = []
    for _ in range(3):
        faults = Faults()
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(faults))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append((httpd, faults))
    yield [(f"http://127.0.0.1:{h.server_address[1]}/v1", f) for h, f in servers]
    for httpd, _ in servers:
        httpd.shutdown()
        httpd.server_close()


def _seeds(outputs) -> list[str]:
    return [o.text.split("seed ")[1].split(")")[0] for o in outputs]


def test_requests_spread_over_every_endpoint_within_each_ones_concurrency(
    fleet: list[tuple[str, Faults]],
) -> None:
    urls = [url for url, _ in fleet]
    out = teacher(urls[0], base_urls=urls, concurrency=2).rewrite("first_person", requests(30))
    assert _seeds(out) == [str(i) for i in range(30)]  # in order, whoever answered
    assert all(o.lineage.fallback_reason is None for o in out)
    counts = [len(f.requests) for _, f in fleet]
    assert sum(counts) == 30 and min(counts) >= 8, counts  # least loaded first: about even
    assert max(f.max_in_flight for _, f in fleet) <= 2
    assert sum(f.max_in_flight for _, f in fleet) > 2  # more at once than one endpoint allows


def test_a_failing_endpoint_is_ejected_across_batches_then_tried_again(
    fleet: list[tuple[str, Faults]],
) -> None:
    (good_a, _), (bad, fb), (good_c, _) = fleet
    fb.default = "503"
    t = teacher(
        good_a,
        base_urls=[good_a, bad, good_c],
        concurrency=2,
        eject_after_failures=2,
        eject_s=0.6,
        max_retries=3,
        retry_budget=1.0,
    )
    first = t.rewrite("first_person", requests(20))
    assert all(o.lineage.fallback_reason is None and o.lineage.attempts == 1 for o in first)
    assert len(fb.requests) <= 4  # its slots' first requests, then no more
    assert t.endpoint_stats()[bad.rstrip("/")]["ejections"] == 1
    before = len(fb.requests)
    second = t.rewrite("first_person", requests(10))  # within eject_s: still ejected
    assert all(o.lineage.fallback_reason is None for o in second)
    assert len(fb.requests) == before
    fb.default = "ok"
    time.sleep(0.7)  # ejection over: the endpoint gets requests again
    third = t.rewrite("first_person", requests(12))
    assert all(o.lineage.fallback_reason is None for o in third)
    assert len(fb.requests) > before
    stats = t.endpoint_stats()
    assert set(stats) == {u.rstrip("/") for u in (good_a, bad, good_c)}
    assert sum(s["requests"] for s in stats.values()) == sum(len(f.requests) for _, f in fleet)


def test_a_dead_endpoint_among_live_ones_costs_no_document(
    fleet: list[tuple[str, Faults]],
) -> None:
    (live, faults), *_ = fleet
    out = teacher(
        live, base_urls=[_dead_url(), live], max_retries=2, retry_budget=1.0, eject_after_failures=1
    ).rewrite("first_person", requests(8))
    assert all(o.lineage.fallback_reason is None for o in out)
    assert len(faults.requests) == 8


def test_every_endpoint_down_fails_loudly() -> None:
    dead = [_dead_url(), _dead_url()]
    with pytest.raises(TeacherUnavailable, match="unreachable"):
        teacher(dead[0], base_urls=dead, max_retries=2, retry_budget=10).rewrite(
            "first_person", requests(3)
        )


def test_base_urls_are_checked_and_base_url_is_the_default() -> None:
    assert TeacherSettings(base_url="http://h:1/v1/").endpoints() == ["http://h:1/v1"]
    assert TeacherSettings(base_urls=["http://a/v1/", "http://b/v1"]).endpoints() == [
        "http://a/v1",
        "http://b/v1",
    ]
    with pytest.raises(ValidationError, match="not an http"):
        TeacherSettings(base_urls=["a:8000/v1"])
    with pytest.raises(ValidationError, match="listed twice"):
        TeacherSettings(base_urls=["http://a/v1", "http://a/v1/"])


def test_resizing_the_fleet_leaves_the_assets_current() -> None:
    """The endpoints and their limits do not shape the text: code versions stay."""
    one = load_settings(teacher={"backend": "openai", "model": "m"})
    many = load_settings(
        teacher={"backend": "openai", "model": "m", "base_urls": ["http://a/v1", "http://b/v1"]},
    )
    other_model = load_settings(teacher={"backend": "openai", "model": "n"})
    assert code_versions(one) == code_versions(many)
    framing = "first_person_docs"
    assert code_versions(one)[framing] != code_versions(other_model)[framing]
