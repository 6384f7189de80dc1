"""Numbers, sizes, durations and dates formatted for people, and recorded text made
safe to display.

Recorded values are attacker-controlled. Escaping is Jinja's (HTML) and ElementTree's
(SVG) job; :func:`clean` makes visible what neither would show as it is: control
characters, lone surrogates, and the invisible characters that reorder or hide text.
"""

from __future__ import annotations

import math
import re
import typing as t
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo

from markupsafe import Markup, escape

EMPTY = "—"
#: Longest recorded value placed in an HTML attribute (title, aria-label, data-*);
#: the text itself, or the detail page, shows more.
ATTRIBUTE_LIMIT = 256

# What a reader could not see or would be misled by:
# - C0 and C1 controls, DEL, and lone surrogates (which no encoder accepts);
# - bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) and the
#   Arabic letter mark (U+061C), which reorder the text after them ("Trojan Source");
# - zero-width spaces, joiners and marks (U+200B-U+200F), word joiners and invisible
#   operators (U+2060-U+2064), the byte order mark (U+FEFF), and the line and
#   paragraph separators (U+2028, U+2029), which hide or split text.
_UNSHOWABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064"
    "\u2066-\u2069\ufeff\ud800-\udfff]"
)


def clean(value: t.Any) -> str:
    """``value`` as text in which every control, bidi or invisible character is shown.

    Each one becomes a visible ``\\xNN``/``\\uNNNN`` escape (U+202E is shown as
    ``\\u202e``), so a path that carried one still shows that it did, and no value
    can reorder or hide the text around it. Escaping for HTML or XML still follows.
    """
    text = value if isinstance(value, str) else str(value)
    return _UNSHOWABLE.sub(_escape_char, text)


def needs_cleaning(value: str) -> bool:
    """Whether :func:`clean` would change ``value``."""
    return _UNSHOWABLE.search(value) is not None


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shorten(value: t.Any, limit: int = 120) -> str:
    """:func:`clean` text cut to ``limit`` characters with an ellipsis."""
    # Cut before cleaning as well, so a megabyte value costs no more than a short one;
    # every character cleans to at least one, so limit + 1 still shows that it was cut.
    text = clean(value[: limit + 1] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def attribute(value: t.Any) -> str:
    """A recorded value for an HTML attribute: :func:`shorten` to ``ATTRIBUTE_LIMIT``."""
    return shorten(value, ATTRIBUTE_LIMIT)


def number(value: int | float | None) -> str:
    """``12345`` → ``12,345``."""
    if value is None:
        return EMPTY
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def duration(seconds: float | None) -> str:
    """Seconds → ``0.42 ms``, ``87 ms``, ``3.08 s``, ``12.3 s`` or ``1,234 s``."""
    if seconds is None or not math.isfinite(seconds):
        return EMPTY
    ms = seconds * 1000
    # Thresholds sit where rounding would carry into the next format: 9.996 ms is
    # "10 ms", not "10.0 ms", and 999.7 ms is "1.00 s", not "1,000 ms".
    if ms < 0.995:
        return f"{ms:.2f} ms"
    if ms < 9.95:
        return f"{ms:.1f} ms"
    if ms < 999.5:
        return f"{ms:.0f} ms"
    if seconds < 9.995:
        return f"{seconds:.2f} s"
    if seconds < 99.95:
        return f"{seconds:.1f} s"
    return f"{seconds:,.0f} s"


def path_breaks(value: t.Any) -> Markup:
    """:func:`clean` text, HTML-escaped, that a browser may wrap after each ``/`` and
    nowhere else (``<wbr>``), so ``/reports/monthly`` never becomes ``monthl y``."""
    return Markup(escape(clean(value)).replace("/", Markup("/<wbr>")))


def milliseconds(seconds: float | None) -> float | None:
    """Seconds → milliseconds rounded for charts; None stays None."""
    return None if seconds is None else round(seconds * 1000, 2)


_UNITS = ("KB", "MB", "GB", "TB")


def filesize(size: int | float | None) -> str:
    """Bytes → ``512 B``, ``1.5 KB``, ``12.3 MB`` (1 KB = 1024 B)."""
    if size is None:
        return EMPTY
    value = float(size)
    if abs(value) < 1024:
        return f"{int(value):,} B"
    for unit in _UNITS:
        value /= 1024
        if abs(value) < 99.95:
            return f"{value:.1f} {unit}"
        if abs(value) < 1023.5 or unit == _UNITS[-1]:
            return f"{value:,.0f} {unit}"
    raise AssertionError("unreachable")


def percent(ratio: float | None, digits: int = 1) -> str:
    """``0.0123`` → ``1.2 %``."""
    if ratio is None:
        return EMPTY
    return f"{ratio * 100:.{digits}f} %"


def local(moment: datetime | None, tz: tzinfo) -> datetime | None:
    """A naive UTC datetime from the database, converted to ``tz``."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(tz)


def timestamp(
    moment: datetime | None, tz: tzinfo, *, seconds: bool = True, label: bool = True
) -> str:
    """``2024-05-01 13:45:12 CEST``: the moment in ``tz`` with the zone's label
    (``label=False``: without it, where a heading names the zone once)."""
    converted = local(moment, tz)
    if converted is None:
        return EMPTY
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    text = converted.strftime(pattern)
    return f"{text} {zone_label(converted)}" if label else text


def zone_label(moment: datetime) -> str:
    return moment.tzname() or str(moment.tzinfo)


@dataclass(frozen=True)
class Change:
    """How a KPI moved against the previous period."""

    text: str  # "+12 %", "−0.4 pp", "new", "—"
    direction: str  # "up", "down", "flat", "none"
    tone: str  # "good", "bad", "neutral"
    description: str  # for screen readers and the title attribute


def change(
    current: float | None,
    previous: float | None,
    *,
    higher_is: str = "neutral",
    points: bool = False,
) -> Change:
    """Relative change (``points=True``: percentage points of a 0..1 ratio).

    ``higher_is`` is "good", "bad" or "neutral" and picks the tone of an increase.
    """
    if current is None or previous is None:
        return Change(EMPTY, "none", "neutral", "no previous value to compare with")
    if points:
        diff = (current - previous) * 100
        text = f"{_signed(diff, 1)} pp"
        exact = abs(diff) < 0.05
    elif previous == 0:
        if current == 0:
            return Change("±0 %", "flat", "neutral", "unchanged from the previous period")
        return Change("new", "up", _tone("up", higher_is), "none in the previous period")
    else:
        diff = (current - previous) / abs(previous) * 100
        text = f"{_signed(diff, 0 if abs(diff) >= 10 else 1)} %"
        exact = abs(diff) < 0.05
    if exact:
        return Change("±0" + text[text.index(" "):], "flat", "neutral",
                      "unchanged from the previous period")
    direction = "up" if diff > 0 else "down"
    word = "up" if diff > 0 else "down"
    return Change(text, direction, _tone(direction, higher_is),
                  f"{word} {text.lstrip('+−')} on the previous period")


def _signed(value: float, digits: int) -> str:
    sign = "+" if value > 0 else "−" if value < 0 else "±"
    return f"{sign}{abs(value):,.{digits}f}"


def _tone(direction: str, higher_is: str) -> str:
    if higher_is == "neutral" or direction not in ("up", "down"):
        return "neutral"
    good = (direction == "up") == (higher_is == "good")
    return "good" if good else "bad"
