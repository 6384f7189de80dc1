"""Every ``STATISTICS_*`` key, its default, and the checks that turn a bad value into
an error that says how to fix it."""

from __future__ import annotations

import re
import typing as t
from datetime import timedelta

from .privacy import ADDRESS_MODES, REFERRER_MODES

DEFAULTS: dict[str, t.Any] = {
    "STATISTICS_DEFAULT_DATE_SPAN": timedelta(days=7),
    "STATISTICS_URL_PREFIX": "/statistics",
    "STATISTICS_WRITE_MODE": "buffered",
    "STATISTICS_FLUSH_INTERVAL": 1.0,
    "STATISTICS_BATCH_SIZE": 10_000,
    "STATISTICS_QUEUE_SIZE": 10_000,
    "STATISTICS_QUEUE_BYTES": 16 * 1024 * 1024,
    "STATISTICS_SHUTDOWN_TIMEOUT": 5.0,
    "STATISTICS_SYNC_TIMEOUT": 2.0,
    "STATISTICS_ANONYMIZE_IP": None,
    "STATISTICS_REFERRER": "path",
    "STATISTICS_RETENTION": None,
    "STATISTICS_ROLLUP_RETENTION": None,
    "STATISTICS_ROLLUP_DETAIL": timedelta(days=35),
    "STATISTICS_EXCLUDE": (),
    "STATISTICS_TABLE_NAME": "statistics_request",
    "STATISTICS_PAGE_SIZE": 50,
    "STATISTICS_TIMEZONE": "UTC",
    "STATISTICS_CSP": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; "
        "require-trusted-types-for 'script'; trusted-types flask-statistics"
    ),
}

WRITE_MODES = ("buffered", "sync")
# One or more path segments of URL-safe characters: no empty segment ("//"), no
# query, fragment, space or markup.
_PREFIX = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+/?")


class ConfigError(RuntimeError):
    """A ``STATISTICS_*`` setting has a value the extension cannot use."""


def apply_defaults(config: t.MutableMapping[str, t.Any]) -> None:
    for key, value in DEFAULTS.items():
        config.setdefault(key, value)
    _check(config)


def _check(config: t.Mapping[str, t.Any]) -> None:
    span = config["STATISTICS_DEFAULT_DATE_SPAN"]
    if not isinstance(span, timedelta) or span < timedelta(0):
        raise ConfigError(
            f"STATISTICS_DEFAULT_DATE_SPAN must be a non-negative datetime.timedelta, "
            f"got {span!r}; use e.g. timedelta(days=7)"
        )
    mode = config["STATISTICS_WRITE_MODE"]
    if mode not in WRITE_MODES:
        raise ConfigError(
            f"STATISTICS_WRITE_MODE must be 'buffered' or 'sync', got {mode!r}"
        )
    prefix = config["STATISTICS_URL_PREFIX"]
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"STATISTICS_URL_PREFIX must be a path below the root such as '/statistics' "
            f"or '/admin/statistics' (no empty segments, query or spaces), got {prefix!r}"
        )
    for key in (
        "STATISTICS_FLUSH_INTERVAL",
        "STATISTICS_SHUTDOWN_TIMEOUT",
        "STATISTICS_SYNC_TIMEOUT",
    ):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{key} must be a positive number of seconds, got {value!r}")
    for key in (
        "STATISTICS_BATCH_SIZE",
        "STATISTICS_QUEUE_SIZE",
        "STATISTICS_QUEUE_BYTES",
        "STATISTICS_PAGE_SIZE",
    ):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    address = config["STATISTICS_ANONYMIZE_IP"]
    if address not in ADDRESS_MODES:
        raise ConfigError(
            "STATISTICS_ANONYMIZE_IP must be None (store addresses as they are), "
            f"'truncate' or 'hash', got {address!r}"
        )
    referrer = config["STATISTICS_REFERRER"]
    if referrer not in REFERRER_MODES:
        raise ConfigError(
            f"STATISTICS_REFERRER must be 'full', 'path' or 'origin', got {referrer!r}"
        )
    for key, kept in (
        ("STATISTICS_RETENTION", "keep every row"),
        ("STATISTICS_ROLLUP_RETENTION", "keep the rollups' whole history"),
        ("STATISTICS_ROLLUP_DETAIL", "keep 15-minute rollups as long as daily ones"),
    ):
        retention = config[key]
        if retention is not None and (
            not isinstance(retention, timedelta) or retention <= timedelta(0)
        ):
            raise ConfigError(
                f"{key} must be None ({kept}) or a positive datetime.timedelta such as "
                f"timedelta(days=90), got {retention!r}"
            )
    exclude_rules(config["STATISTICS_EXCLUDE"])


def exclude_rules(
    exclude: t.Any,
) -> tuple[tuple[str, ...], tuple[re.Pattern[str], ...]]:
    """Split ``STATISTICS_EXCLUDE`` into path prefixes and compiled regexes."""
    if isinstance(exclude, (str, re.Pattern)):
        exclude = (exclude,)
    try:
        items = list(exclude)
    except TypeError:
        items = None
    if items is None or not all(isinstance(i, (str, re.Pattern)) for i in items):
        raise ConfigError(
            "STATISTICS_EXCLUDE must be a list of path prefixes (str) or compiled "
            f"regexes (re.compile(...)), got {exclude!r}"
        )
    prefixes = tuple(i for i in items if isinstance(i, str))
    patterns = tuple(i for i in items if isinstance(i, re.Pattern))
    return prefixes, patterns
