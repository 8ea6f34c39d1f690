"""Redaction at ingest (issue 9, item 13): secrets, e-mail and public IP addresses leave the text,
each redaction counted per record and reason."""

from collections import Counter

import polars as pl
import pytest

from raising_dagster.config import IngestSettings, RedactionSettings
from raising_dagster.stages.ingest import read_shard
from raising_dagster.stages.redact import Redactor
from tests.conftest import FABLE

AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aozN3tihPmljnnudb9G3HcHQ0\n"
    "-----END RSA PRIVATE KEY-----"
)
SECRETS = {
    "aws_access_key_id": f"my key is {AWS_ID} ok",
    "aws_secret_access_key": f"aws_secret_access_key = {AWS_SECRET}",
    "private_key": f"here:\n{PEM}\nend",
    "api_key": "export OPENAI=sk-proj-abcdefghijklmnopqrstuvwxyz123456 and "
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "bearer_token": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz.0123456789",
    "password": 'db password="hunter2!" and PASSWORD=s3cr3t and pwd: x9y8z7',
}


@pytest.mark.parametrize("reason", sorted(SECRETS))
def test_each_kind_of_secret_is_redacted_and_counted(reason: str) -> None:
    text, reasons = Redactor().redact(SECRETS[reason])
    assert reason in reasons
    for secret in (
        AWS_ID,
        AWS_SECRET,
        "MIIEowIBAAK",
        "sk-proj-abc",
        "ghp_abc",
        "hunter2",
        "s3cr3t",
    ):
        assert secret not in text
    assert "[REDACTED]" in text


def test_key_names_stay_and_prose_is_left_alone() -> None:
    text, reasons = Redactor().redact("PASSWORD=s3cr3t")
    assert (text, reasons) == ("PASSWORD=[REDACTED]", ["password"])
    prose = "Password: choose a long one. The token of my thanks. A secret: keep it."
    assert Redactor().redact(prose) == (prose, [])


def test_emails_and_public_ips_as_datatrove_does() -> None:
    text, reasons = Redactor().redact(
        "Mail Jane.Doe@corp.com or bob@mail.org; server 8.8.8.8, LAN 192.168.1.10"
    )
    assert "Jane.Doe@corp.com" not in text and "bob@mail.org" not in text
    assert "email@example.com" in text and "firstname.lastname@example.org" in text
    assert "8.8.8.8" not in text and "192.168.1.10" in text  # private addresses stay
    assert Counter(reasons) == {"email": 2, "ip_address": 1}


def test_each_kind_can_be_turned_off() -> None:
    text = f"a@b.com {AWS_ID} 8.8.8.8"
    off = Redactor(RedactionSettings(secrets=False, emails=False, ips=False))
    assert off.redact(text) == (text, [])
    only_secrets = Redactor(RedactionSettings(emails=False, ips=False))
    assert only_secrets.redact(text) == ("a@b.com [REDACTED] 8.8.8.8", ["aws_access_key_id"])


def test_ingest_redacts_text_and_title_and_counts_per_record(make_shard) -> None:
    path = make_shard(
        "s.jsonl",
        [
            {"id": "leak", "title": "Mail ops@corp.com", "text": SECRETS["password"]},
            {"id": "clean", "text": "Nothing to hide here."},
        ],
    )
    docs = {r["doc_id"]: r for r in read_shard(path).docs.iter_rows(named=True)}
    assert "hunter2" not in docs["leak"]["text"] and "ops@corp.com" not in docs["leak"]["title"]
    assert Counter(docs["leak"]["redactions"]) == {"password": 3, "email": 1}
    assert docs["clean"]["redactions"] == []
    kept = read_shard(path, IngestSettings(redact=RedactionSettings(secrets=False)))
    assert "hunter2" in kept.docs["text"][0]


def test_the_vectorized_prefilter_finds_every_text_a_rule_changes() -> None:
    redactor = Redactor()
    samples = [*SECRETS.values(), "Jane.Doe@Corp.com", "ping 8.8.8.8", "Bearer " + "x" * 30]
    assert all(redactor.redact(s)[1] for s in samples)
    flagged = pl.DataFrame({"t": [*samples, FABLE]}).select(redactor.may_redact(pl.col("t")))
    assert flagged.to_series().to_list() == [True] * len(samples) + [False]
