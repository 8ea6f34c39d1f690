"""Redaction of secrets and personal data at ingest, counted per record and reason.

Secrets (on by default) become `[REDACTED]`; where a key name introduces the value
(`password=...`, `aws_secret_access_key = ...`, `Bearer ...`) the name stays and the value goes:
- `private_key`: PEM private key blocks (`-----BEGIN ... PRIVATE KEY-----` to its END line, or to
  the end of the text when the block is cut).
- `aws_access_key_id`: AWS access key ids (AKIA, ASIA, ... and 16 characters).
- `aws_secret_access_key`: 40-character values after `aws_secret_access_key`/`secret_access_key`.
- `api_key`: well-known token shapes: OpenAI/Anthropic (`sk-...`), GitHub (`ghp_...`,
  `github_pat_...`), Slack (`xox?-...`), Google (`AIza...`), Stripe (`sk_live_...`), JWTs.
- `bearer_token`: the token after `Bearer`.
- `password`: the value in `password=`/`passwd=`/`pwd=` forms, and after `password:` when it is
  quoted or holds a digit or symbol (so prose like "Password: choose a long one" is left).
- `secret_assignment`: a 16+ character value after `api_key`, `secret`, `token`,
  `access_token`, `client_secret` and `=`/`:`.
E-mail and IP addresses are replaced as in datatrove's PII formatter
(huggingface/datatrove `pipeline/formatters/pii.py`): its e-mail pattern (matched
case-insensitively here) and IPv4 pattern; only global (public) IPs are replaced; replacements
cycle through the same example addresses, restarting for every record so the result does not
depend on the order records are read in.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from raising_dagster.config import RedactionSettings

REDACTED = "[REDACTED]"
EMAIL_REPLACEMENTS = ("email@example.com", "firstname.lastname@example.org")
IP_REPLACEMENTS = (
    "22.214.171.124",
    "126.96.36.199",
    "188.8.131.52",
    "184.108.40.206",
    "220.127.116.11",
    "18.104.22.168",
)


@dataclass(frozen=True)
class Rule:
    """One kind of redaction: a pattern, a `prefilter` (Rust regex syntax, for Polars) that
    matches wherever the pattern could, and what replaces a match (the `keep` group, if any, is
    kept in front of the replacement)."""

    reason: str
    pattern: re.Pattern[str]
    prefilter: str
    keep: str | None = None
    replacements: tuple[str, ...] = (REDACTED,)
    valid: Callable[[str], bool] | None = None


def _public_ip(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_global
    except ValueError:
        return False


SECRET_RULES: tuple[Rule, ...] = (
    Rule(
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?"
            r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.S,
        ),
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY",
    ),
    Rule(
        "aws_secret_access_key",
        re.compile(
            r"(?i)(?P<keep>\b(?:aws_?)?secret_?access_?key[\"']?\s*[=:]\s*[\"']?)"
            r"[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
        ),
        r"(?i:secret_?access_?key)",
        keep="keep",
    ),
    Rule(
        "aws_access_key_id",
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}\b"),
        r"(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}",
    ),
    Rule(
        "api_key",
        re.compile(
            r"\b(?:sk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{20,}"
            r"|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"
            r"|xox[abposr]-[A-Za-z0-9-]{10,}"
            r"|AIza[0-9A-Za-z_-]{35}"
            r"|[sr]k_(?:live|test)_[0-9A-Za-z]{16,}"
            r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
        ),
        r"sk-|gh[pousr]_|github_pat_|xox[abposr]-|AIza|[sr]k_(?:live|test)_"
        r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ",
    ),
    Rule(
        "bearer_token",
        re.compile(r"(?i)(?P<keep>\bbearer\s+)[A-Za-z0-9._~+/-]{20,}=*"),
        r"(?i:bearer)\s+[A-Za-z0-9._~+/-]{20}",
        keep="keep",
    ),
    Rule(
        "password",
        re.compile(
            r"(?i)(?P<keep>\b(?:password|passwd|pwd)[\"']?\s*=\s*)"
            r"(?:\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|[^\s,;'\"]{1,200})"
            r"|(?P<keep2>\b(?:password|passwd|pwd)[\"']?\s*:\s*)"
            r"(?:\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|(?=[^\s,;'\"]*[^A-Za-z\s,;'\"])[^\s,;'\"]{1,200})"
        ),
        r"(?i:password|passwd|pwd)[\"']?\s*[=:]",
        keep="keep",
    ),
    Rule(
        "secret_assignment",
        re.compile(
            r"(?i)(?P<keep>\b(?:api[_-]?key|secret|token|access[_-]?token|client[_-]?secret)"
            r"[\"']?\s*[=:]\s*[\"']?)[A-Za-z0-9_\-./+=]{16,}"
        ),
        r"(?i:api[_-]?key|secret|token|access[_-]?token|client[_-]?secret)[\"']?\s*[=:]",
        keep="keep",
    ),
)

EMAIL_RULE = Rule(
    "email",
    re.compile(
        r"\b[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:(?:[a-z0-9](?:[a-z0-9-]*"
        r"[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?|\[(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
        r"\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[a-z0-9-]*[a-z0-9]:)])",
        re.I,
    ),
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]@[A-Za-z0-9\[]",
    replacements=EMAIL_REPLACEMENTS,
)
IP_RULE = Rule(
    "ip_address",
    re.compile(
        r"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
    ),
    r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}",
    replacements=IP_REPLACEMENTS,
    valid=_public_ip,
)


class Redactor:
    """Applies the rules the settings turn on; `redact` returns the text and one reason per
    redaction made."""

    def __init__(self, settings: RedactionSettings | None = None) -> None:
        settings = settings or RedactionSettings()
        rules: list[Rule] = []
        if settings.secrets:
            rules += SECRET_RULES
        if settings.emails:
            rules.append(EMAIL_RULE)
        if settings.ips:
            rules.append(IP_RULE)
        self.rules = tuple(rules)
        # Rust regex (Polars): matches every text some rule could change, and few others
        self.prefilter = "|".join(f"(?:{r.prefilter})" for r in self.rules)

    def redact(self, text: str) -> tuple[str, list[str]]:
        reasons: list[str] = []
        for rule in self.rules:
            text, found = _apply(rule, text)
            reasons += [rule.reason] * found
        return text, reasons

    def may_redact(self, texts: pl.Expr) -> pl.Expr:
        """Whether `redact` could change each text (vectorized; the rules run only there)."""
        return texts.str.contains(self.prefilter) if self.rules else pl.lit(False)


def _apply(rule: Rule, text: str) -> tuple[str, int]:
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        if rule.valid is not None and not rule.valid(match.group(0)):
            return match.group(0)
        replacement = rule.replacements[count % len(rule.replacements)]
        count += 1
        groups = match.groupdict()
        kept = groups.get(rule.keep or "") or groups.get(f"{rule.keep}2") or ""
        return kept + replacement

    return rule.pattern.sub(replace, text), count
