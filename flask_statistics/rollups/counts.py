"""Value counts of one rollup row (its browsers, platforms or referrers), kept as
one small JSON blob so a top list costs one row per bucket and filter combination,
not one per value. The busiest ``CAP`` values are kept; the rest add up in "other"."""

from __future__ import annotations

import json
import typing as t

#: Most distinct values one row keeps.
CAP = 500

Counts = dict[t.Optional[str], int]

#: The C scanner behind ``json.loads``, without its encoding detection and checks:
#: a top list decodes thousands of these small blobs.
_scan = json.JSONDecoder().scan_once


def _loads(data: t.Any) -> t.Any:
    # encode() writes ASCII only.
    text = (data if isinstance(data, (bytes, bytearray)) else bytes(data)).decode("ascii")
    try:
        return _scan(text, 0)[0]
    except StopIteration as stop:
        raise ValueError(f"not a counts blob (at {stop.value})") from None


def encode(counts: Counts, other: int = 0) -> bytes:
    items = list(counts.items())
    if len(items) > CAP:
        items.sort(key=lambda kv: -kv[1])
        other += sum(count for _, count in items[CAP:])
        items = items[:CAP]
    # ensure_ascii: a recorded value may hold lone surrogates, which stay escaped.
    return json.dumps({"v": items, "other": other}, ensure_ascii=True, separators=(",", ":")).encode()


def decode(data: bytes | None) -> tuple[Counts, int]:
    if not data:
        return {}, 0
    found = _loads(data)
    return {value: count for value, count in found["v"]}, int(found.get("other", 0))


def add_encoded(into: Counts, data: bytes | None) -> int:
    """Add the counts of an encoded row to ``into`` without building them first;
    returns the row's "other" hits."""
    if not data:
        return 0
    found = _loads(data)
    get = into.get
    for value, count in found["v"]:
        into[value] = get(value, 0) + count
    return int(found.get("other", 0))


def add(into: Counts, counts: Counts) -> None:
    for value, count in counts.items():
        into[value] = into.get(value, 0) + count
