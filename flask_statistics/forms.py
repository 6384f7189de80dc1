"""The dashboard's GET filter form, and its translation into :class:`Filters`."""

from __future__ import annotations

import dataclasses
import re
import typing as t
from datetime import date, datetime, timedelta, timezone, tzinfo

import wtforms
from wtforms import validators as v

from .config import DEFAULTS, ConfigError
from .buckets import to_local
from .filters import METHODS, PRESET_DAYS, PRESETS, ROLLING, SORTS, TEXT_FILTERS, Filters, zone

__all__ = ["FilterForm", "Filters", "default_preset", "parse_filters"]

MAX_TEXT = 2048
MAX_PAGE = 100_000
#: The longest window a visitor may ask for; it bounds the points of the day chart.
MAX_DAYS = 3660
# Far enough from date.min/max that shifting by a time zone or a period never overflows.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(9998, 12, 31)

_STATUS = re.compile(r"\A(?:(?P<cls>[1-5])[xX]{2}|(?P<code>[1-5][0-9]{2}))\Z")
# NUL cannot be stored in PostgreSQL text, and lone surrogates cannot be encoded for
# any driver; no recorded value can contain them, so they would only cause errors.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _choices(*pairs: tuple[str, str]) -> list[t.Any]:
    # WTForms 3.3 deprecates (value, label) tuples in favour of SelectChoice, which
    # older versions lack.
    make = getattr(wtforms, "SelectChoice", None)
    return [make(value, label) if make else (value, label) for value, label in pairs]


def _or_default(default: str) -> t.Callable[[t.Any], t.Any]:
    return lambda value: (value.strip() if isinstance(value, str) else value) or default


def _strip(value: t.Any) -> t.Any:
    return value.strip() if isinstance(value, str) else value


def _upper(value: t.Any) -> t.Any:
    return value.strip().upper() if isinstance(value, str) else value


def _storable(form: wtforms.Form, field: wtforms.Field) -> None:
    if isinstance(field.data, str) and _UNSTORABLE.search(field.data):
        raise v.ValidationError("Remove the NUL or invalid characters from this field.")


def _day_in_range(form: wtforms.Form, field: wtforms.Field) -> None:
    if field.data is not None and not FIRST_DAY <= field.data <= LAST_DAY:
        raise v.ValidationError(
            f"Choose a date between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}."
        )


def _text_field(label: str) -> wtforms.StringField:
    return wtforms.StringField(
        label,
        validators=[
            v.Optional(),
            v.Length(max=MAX_TEXT, message=f"Use at most {MAX_TEXT} characters."),
            _storable,
        ],
    )


class _DayField(wtforms.DateField):  # type: ignore[misc]  # WTForms is untyped
    """A YYYY-MM-DD date whose parse error says what to type.

    WTForms 3.3 takes ``invalid_value_message=`` for this; older versions, which we
    support, only say "Not a valid date value."
    """

    def __init__(self, label: str, *, invalid_message: str, **kwargs: t.Any) -> None:
        super().__init__(label, **kwargs)
        self.invalid_message = invalid_message

    def process_formdata(self, valuelist: list[t.Any]) -> None:
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError(self.invalid_message) from None


class _Choice(wtforms.SelectField):  # type: ignore[misc]  # WTForms is untyped
    """A select whose error lists the values it takes, rather than WTForms' "Not a
    valid choice." (which does not say what would be)."""

    def pre_validate(self, form: wtforms.Form) -> None:
        try:
            super().pre_validate(form)
        except v.ValidationError:
            allowed = [str(value) for value, *_ in self.iter_choices() if value != ""]
            empty = any(value == "" for value, *_ in self.iter_choices())
            raise v.ValidationError(
                f"Not a valid choice. Choose one of {', '.join(allowed)}"
                + (", or leave it empty." if empty else ".")
            ) from None


class FilterForm(wtforms.Form):  # type: ignore[misc]  # WTForms is untyped
    """The filter bar, bound to the query string: ``FilterForm(request.args)``.

    Every field may be missing or empty (htmx sends empty inputs); empty means "no
    filter" or the default.
    """

    range = _Choice(
        "Range",
        choices=_choices(("", "Chosen dates"), *PRESETS.items()),
        default="",
        filters=[_strip],
    )
    start = _DayField(
        "From", validators=[v.Optional(), _day_in_range],
        invalid_message="Enter the start date as YYYY-MM-DD.",
    )
    end = _DayField(
        "To", validators=[v.Optional(), _day_in_range],
        invalid_message="Enter the end date as YYYY-MM-DD.",
    )
    path = _text_field("Path")
    route = _text_field("Route")
    path_match = _Choice(
        "Match",
        choices=_choices(("exact", "Exact path"), ("prefix", "Path prefix")),
        default="exact",
        filters=[_or_default("exact")],
    )
    status = wtforms.StringField(
        "Status",
        validators=[
            v.Optional(),
            v.Regexp(
                _STATUS,
                message="Enter a status code from 100 to 599, or a class such as 4xx.",
            ),
        ],
        filters=[_strip],
    )
    method = _Choice(
        "Method",
        choices=_choices(("", "Any"), *((m, m) for m in METHODS)),
        default="",
        filters=[_upper],
    )
    bots = _Choice(
        "Bots",
        choices=_choices(("include", "Included"), ("exclude", "Left out"), ("only", "Only bots")),
        default="include",
        filters=[_or_default("include")],
    )
    browser = _text_field("Browser")
    platform = _text_field("Platform")
    remote_address = _text_field("Address")
    user_agent = _text_field("User agent")
    referrer = _text_field("Referrer")
    sort = _Choice(
        "Sort by",
        choices=_choices(*zip(SORTS, ("Date", "Response time", "Size", "Status"))),
        default="date",
        filters=[_or_default("date")],
    )
    order = _Choice(
        "Order",
        choices=_choices(("desc", "Descending"), ("asc", "Ascending")),
        default="desc",
        filters=[_or_default("desc")],
    )
    page = wtforms.IntegerField(
        "Page",
        validators=[
            v.Optional(),
            v.NumberRange(1, MAX_PAGE, message=f"Choose a page from 1 to {MAX_PAGE}."),
        ],
        default=1,
    )

    def validate_end(self, field: wtforms.Field) -> None:
        start = self.start.data
        if field.data is not None and start is not None and field.data < start:
            raise v.ValidationError(
                f"The end date is before the start date. Choose {start.isoformat()} or later."
            )


def _time_zone(name: t.Any) -> tzinfo:
    try:
        return zone(name)
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise ConfigError(
            f"STATISTICS_TIMEZONE must be an IANA time zone name such as 'UTC' or "
            f"'Europe/Berlin', got {name!r}; if the name is right, install the "
            f"'tzdata' package"
        ) from exc


def _text(value: str | None) -> str | None:
    return value if value and value.strip() else None


def default_preset(span: timedelta) -> str | None:
    """The preset that ``STATISTICS_DEFAULT_DATE_SPAN`` amounts to, if any: the
    default range is the span's whole days up to and including today."""
    return next((name for name, n in PRESET_DAYS.items() if n == _span_days(span)), None)


def _span_days(span: timedelta) -> int:
    # A span of 7 days means 7 days including today; a part of a day counts whole.
    return max(1, -(-span // timedelta(days=1)))


def _preset(
    name: str, today: date, now: datetime, first_day: t.Callable[[], date | None] | None,
    tz_name: str,
) -> Filters:
    # The window of a preset, before the other filters are added.
    if name == ROLLING:
        return Filters.last_hours(now, tz=tz_name)
    if name == "yesterday":
        start = end = today - timedelta(days=1)
    elif name == "all":
        first = first_day() if first_day is not None else None
        earliest = today - timedelta(days=MAX_DAYS - 1)
        start = min(today, max(first, earliest)) if first is not None else today
        end = today
    else:
        start, end = today - timedelta(days=PRESET_DAYS[name] - 1), today
    return Filters.between(start, end, tz=tz_name, start_explicit=False, end_explicit=False)


def parse_filters(
    args: t.Any,
    config: t.Mapping[str, t.Any],
    today: date | None = None,
    *,
    now: datetime | None = None,
    first_day: t.Callable[[], date | None] | None = None,
) -> tuple[Filters | None, FilterForm]:
    """Validate the dashboard's query string ``args`` (``request.args``).

    Returns ``(filters, form)``, or ``(None, form)`` with the messages in
    ``form.errors`` when the input is invalid.

    The window is a preset (``range``, see :data:`~.filters.PRESETS`) or chosen
    dates. Without either it is the default: the ``STATISTICS_DEFAULT_DATE_SPAN``'s
    days up to and including ``today`` (default: today in ``STATISTICS_TIMEZONE``),
    itself a preset when the span is 1, 7, 30, 90 or 365 days. Explicit dates win
    over a preset, except dates equal to the preset's own days, which are what the
    form sends back with it. With only a start date the window ends today (or on
    that day if it is later); with only an end date it holds the span's days up to
    it. Explicit windows longer than ``MAX_DAYS`` are refused; ``all`` starts on
    the first day ``first_day()`` returns (the first day with rows), at most
    ``MAX_DAYS`` days back. ``now`` (naive UTC) anchors the ``24h`` range.
    """
    tz_name = config.get("STATISTICS_TIMEZONE", DEFAULTS["STATISTICS_TIMEZONE"])
    info = _time_zone(tz_name)
    span: timedelta = config.get(
        "STATISTICS_DEFAULT_DATE_SPAN", DEFAULTS["STATISTICS_DEFAULT_DATE_SPAN"]
    )
    form = FilterForm(args)
    if not form.validate():
        return None, form

    if now is None:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
    if today is None:
        today = to_local(now, info).date()
    start, end = form.start.data, form.end.data
    preset = form.range.data or default_preset(span)
    window = None
    if preset is not None:
        window = _preset(preset, today, now, first_day, tz_name)
        if (start in (None, window.start_day)) and (end in (None, window.end_day)):
            start = end = None
        else:
            window = None  # chosen dates win over the preset

    if window is None:
        if end is None:
            end = max(today, start) if start is not None else today
        days = _span_days(span)
        if start is None:
            start = end - timedelta(days=days - 1) if (end - FIRST_DAY).days >= days else FIRST_DAY
        elif (end - start).days + 1 > MAX_DAYS:
            form.start.errors.append(
                f"Choose a range of at most {MAX_DAYS} days: {start.isoformat()} to "
                f"{end.isoformat()} is {(end - start).days + 1:,} days."
            )
            return None, form

    status = status_class = None
    if form.status.data:
        match = _STATUS.match(form.status.data)
        assert match is not None  # the form's Regexp validator accepted it
        if match["cls"]:
            status_class = int(match["cls"])
        else:
            status = int(match["code"])

    path = _text(form.path.data)
    fields: dict[str, t.Any] = dict(
        path=path,
        path_match=form.path_match.data if path is not None else "exact",
        route=_text(form.route.data),
        bots=None if form.bots.data == "include" else form.bots.data,
        status=status,
        status_class=status_class,
        **{name: _text(getattr(form, name).data) for name in TEXT_FILTERS},
        sort=form.sort.data,
        descending=form.order.data == "desc",
        page=form.page.data or 1,
    )
    if window is not None:
        return dataclasses.replace(
            window, range=preset, range_explicit=bool(form.range.data), **fields
        ), form
    assert start is not None and end is not None
    filters = Filters.between(
        start,
        end,
        tz=tz_name,
        **fields,
        start_explicit=form.start.data is not None,
        end_explicit=form.end.data is not None,
    )
    return filters, form
