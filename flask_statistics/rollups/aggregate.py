"""Adding requests up into rollup entries, in memory.

A request is reduced to a :data:`Fact` by the writer (or read back from the table by a
rebuild). Facts are first summed per 15-minute bucket at the finest grain, then those
sums are merged into the coarser grains and into local days: each request is touched
once, whatever the number of rollup rows it counts in.
"""

from __future__ import annotations

import json
import typing as t
from datetime import datetime, timedelta, tzinfo
from operator import itemgetter

from ..buckets import to_local
from ..filters import METHODS, local_midnight_utc
from ..sketches import Histogram, Visitors, count_values as _count
from .counts import add as add_counts
from .tables import (
    AGENT, CLASS, DAY, METHOD_LENGTH, MONTH, PATH, PATH_AGENT, PATH_LENGTH, QUARTER, REFERRER,
    YEAR, ROUTE, ROUTE_AGENT, ROUTE_LENGTH, STATUS,
)

#: date (naive UTC), method, status code, path, route, response time (s), size,
#: visitor (the stored client address), is_bot, browser, platform, referrer.
Fact = tuple[
    datetime, t.Optional[str], t.Optional[int], t.Optional[str], t.Optional[str],
    t.Optional[float], t.Optional[int], t.Optional[str], t.Optional[bool],
    t.Optional[str], t.Optional[str], t.Optional[str],
]
#: tier, bucket, grain, route, path, other, method, status, is_bot, browser, platform.
Key = tuple[
    int, datetime, int, t.Optional[str], t.Optional[str], bool, t.Optional[str],
    t.Optional[int], t.Optional[bool], t.Optional[str], t.Optional[str],
]

#: Methods outside this set count as one method, "OTHER", so a client inventing
#: methods cannot multiply rollup rows.
KNOWN_METHODS = frozenset((*METHODS, "CONNECT", "TRACE"))
OTHER_METHOD = "OTHER"
_QUARTER = timedelta(minutes=15)


class Entry:
    """The sums of one rollup row."""

    __slots__ = (
        "hits", "bytes", "timed", "time_sum", "last_seen", "times", "visitors", "counts",
        "counts_other",
    )

    def __init__(self) -> None:
        self.hits = 0
        self.bytes = 0
        self.timed = 0
        self.time_sum = 0.0
        self.last_seen: datetime | None = None
        self.times = Histogram()
        self.visitors = Visitors()
        self.counts: dict[t.Optional[str], int] | None = None
        #: Hits of values already folded out of ``counts`` (merged day rows).
        self.counts_other = 0

    def add(self, fact: Fact, visitor_hash: int | None) -> None:
        self.hits += 1
        size = fact[6]
        if size:
            self.bytes += size
        rt = fact[5]
        if rt is not None:
            self.timed += 1
            self.time_sum += rt
            self.times.add(rt)
        date = fact[0]
        if self.last_seen is None or date > self.last_seen:
            self.last_seen = date
        if visitor_hash is not None:
            self.visitors.add_hash(visitor_hash)

    def add_all(self, facts: list[Fact], hashes: dict[str, int] | None) -> None:
        """:meth:`add` each fact, in order; ``hashes`` caches visitor hashes (None:
        visitors are not counted)."""
        self.hits += len(facts)
        size_sum = self.bytes
        timed = self.timed
        time_sum = self.time_sum
        last_seen = self.last_seen
        times = []
        visitors = set()
        for fact in facts:
            size = fact[6]
            if size:
                size_sum += size
            rt = fact[5]
            if rt is not None:
                timed += 1
                time_sum += rt
                times.append(rt)
            date = fact[0]
            if last_seen is None or date > last_seen:
                last_seen = date
            if hashes is not None:
                visitor = fact[7]
                if visitor is not None:
                    code = hashes.get(visitor)
                    if code is None:
                        code = hashes[visitor] = Visitors.hash(visitor)
                    visitors.add(code)
        self.bytes = size_sum
        self.timed = timed
        self.time_sum = time_sum
        self.last_seen = last_seen
        self.times.add_all(times)
        if visitors:
            self.visitors.add_hashes(visitors)

    def copy(self, counted: bool = True) -> Entry:
        """A new entry with the same sums and counts (what merging this one into an
        empty one gives); without the counts unless ``counted``."""
        entry = Entry.__new__(Entry)
        entry.hits = self.hits
        entry.bytes = self.bytes
        entry.timed = self.timed
        entry.time_sum = self.time_sum
        entry.last_seen = self.last_seen
        entry.times = self.times.copy()
        entry.visitors = self.visitors.copy()
        if counted:
            entry.counts = None if self.counts is None else dict(self.counts)
            entry.counts_other = self.counts_other
        else:
            entry.counts = None
            entry.counts_other = 0
        return entry

    def merge(self, other: Entry, counted: bool = True) -> None:
        self.hits += other.hits
        self.bytes += other.bytes
        self.timed += other.timed
        self.time_sum += other.time_sum
        if other.last_seen is not None and (self.last_seen is None or other.last_seen > self.last_seen):
            self.last_seen = other.last_seen
        self.times.merge(other.times)
        self.visitors.merge(other.visitors)
        if not counted:
            return
        if other.counts is not None:
            if self.counts is None:
                self.counts = {}
            add_counts(self.counts, other.counts)
        self.counts_other += other.counts_other


def quarter_start(moment: datetime) -> datetime:
    """The start of the 15-minute UTC bucket holding ``moment`` (naive UTC)."""
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


def status_class(status: int | None) -> int:
    return status // 100 if status is not None and 100 <= status <= 599 else 0


def method_key(method: str | None) -> str | None:
    if method is None:
        return None
    return method if method in KNOWN_METHODS else OTHER_METHOD


def month_start(moment: datetime, tz: tzinfo) -> datetime:
    """The first instant (naive UTC) of the local month holding ``moment``."""
    return local_midnight_utc(to_local(moment, tz).date().replace(day=1), tz)


def year_start(moment: datetime, tz: tzinfo) -> datetime:
    """The first instant (naive UTC) of the local year holding ``moment``."""
    return local_midnight_utc(to_local(moment, tz).date().replace(month=1, day=1), tz)


class DayOf:
    """The local day (as its first naive UTC instant) of each quarter, cached: local
    days start on a quarter hour in every zone in use today. :meth:`month` and
    :meth:`year` give the local month of a day and the local year of a month the
    same way."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._days: dict[datetime, datetime] = {}
        self._months: dict[datetime, datetime] = {}
        self._years: dict[datetime, datetime] = {}

    def year(self, month: datetime) -> datetime:
        return _cached(self._years, month, lambda: year_start(month, self.tz))

    def month(self, day: datetime) -> datetime:
        return _cached(self._months, day, lambda: month_start(day, self.tz))

    def __call__(self, quarter: datetime) -> datetime:
        day = self._days.get(quarter)
        if day is None:
            if len(self._days) > 4096:
                self._days.clear()
            day = local_midnight_utc(to_local(quarter, self.tz).date(), self.tz)
            self._days[quarter] = day
        return day


_referrer = itemgetter(11)
_agent = itemgetter(9, 10)


def _cached(cache: dict[datetime, datetime], key: datetime, make: t.Callable[[], datetime]) -> datetime:
    found = cache.get(key)
    if found is None:
        if len(cache) > 4096:
            cache.clear()
        found = cache[key] = make()
    return found


def _cut(value: str | None, length: int) -> str | None:
    return value if value is None or len(value) <= length else value[:length]


class Totals:
    """Facts summed per quarter, route, path, method, status and bot flag; add facts in
    as many calls as needed, then take :meth:`rollup`."""

    def __init__(self, agent_paths: str = "all") -> None:
        #: The path-agent entries (paths per browser and platform, day rows only):
        #: "all" as facts come in; "closed": made in :meth:`rollup` for the facts of
        #: days already over only (a writer's late rows), as the open days have none;
        #: "only": these alone (a day being closed).
        self.agent_paths = agent_paths
        self._late: list[Fact] = []
        self.path_agents: dict[tuple[t.Any, ...], Entry] = {}
        self.entries: dict[tuple[t.Any, ...], Entry] = {}
        #: (quarter, grain, method, status, is_bot) -> {value: hits}, for top lists.
        self.tops: dict[tuple[t.Any, ...], dict[t.Optional[str], int]] = {}
        #: (quarter, browser, platform, method, status, is_bot) -> entry, with the
        #: hits of each referrer in its counts.
        self.agents: dict[tuple[t.Any, ...], Entry] = {}
        self._hashes: dict[str, int] = {}
        self._keys: dict[t.Any, str] = {}

    def add(self, facts: t.Iterable[Fact]) -> None:
        if self.agent_paths == "only":
            self._add_path_agents(facts)
            return
        if self.agent_paths == "closed":
            facts = list(facts)
            self._late.extend(facts)
        elif self.agent_paths == "all":
            facts = list(facts)
            self._add_path_agents(facts)
        # Facts are first sorted into their entries and top lists in one cheap pass,
        # then each entry sums its facts at once: the sums, and the order they are
        # added in, are those of adding the facts one by one.
        groups: dict[tuple[t.Any, ...], list[Fact]] = {}
        top_groups: dict[tuple[t.Any, ...], list[Fact]] = {}
        agent_groups: dict[tuple[t.Any, ...], list[Fact]] = {}
        quarter = end = None
        for fact in facts:
            date = fact[0]
            # Facts mostly arrive in time order: most share the previous one's quarter.
            if quarter is None or not quarter <= date < end:  # type: ignore[operator]
                quarter = date.replace(minute=date.minute - date.minute % 15, second=0, microsecond=0)
                end = quarter + _QUARTER
            key = (quarter, fact[4], fact[3], fact[1], fact[2], fact[8])
            group = groups.get(key)
            if group is None:
                groups[key] = [fact]
            else:
                group.append(fact)
            top = (quarter, fact[1], fact[2], fact[8])
            group = top_groups.get(top)
            if group is None:
                top_groups[top] = [fact]
            else:
                group.append(fact)
            agent = (quarter, fact[9], fact[10], fact[1], fact[2], fact[8])
            group = agent_groups.get(agent)
            if group is None:
                agent_groups[agent] = [fact]
            else:
                group.append(fact)
        entries = self.entries
        hashes = self._hashes
        if len(hashes) > 100_000:
            hashes.clear()
        keys = self._keys
        if len(keys) > 10_000:
            keys.clear()
        for key, group in groups.items():
            entry = entries.get(key)
            if entry is None:
                entry = entries[key] = Entry()
                entry.counts = {}
            # Bots are not counted as visitors.
            entry.add_all(group, None if key[5] else hashes)
            # The path's browser and platform pairs and referrers, for the top lists
            # of a path or route filter.
            found: dict[t.Any, int] = {}
            _count(found, map(_agent, group))
            _count(found, map(_referrer, group))
            counted = t.cast(dict, entry.counts)
            for value, hits in found.items():
                name = keys.get(value)
                if name is None:
                    name = keys[value] = path_count_key(value)
                counted[name] = counted.get(name, 0) + hits
        agents = self.agents
        for key, group in agent_groups.items():
            entry = agents.get(key)
            if entry is None:
                entry = agents[key] = Entry()
                entry.counts = {}
            entry.add_all(group, None if key[5] else hashes)
            _count(entry.counts, map(_referrer, group))
        tops = self.tops
        for (quarter, method, status, is_bot), group in top_groups.items():
            top = (quarter, REFERRER, method, status, is_bot)
            counts = tops.get(top)
            if counts is None:
                counts = tops[top] = {}
            _count(counts, map(_referrer, group))

    def _add_path_agents(
        self, facts: t.Iterable[Fact], entries: dict[tuple[t.Any, ...], Entry] | None = None
    ) -> None:
        groups: dict[tuple[t.Any, ...], list[Fact]] = {}
        quarter = end = None
        for fact in facts:
            date = fact[0]
            if quarter is None or not quarter <= date < end:  # type: ignore[operator]
                quarter = date.replace(minute=date.minute - date.minute % 15, second=0, microsecond=0)
                end = quarter + _QUARTER
            key = (quarter, fact[4], fact[3], fact[1], fact[2], fact[8], fact[9], fact[10])
            group = groups.get(key)
            if group is None:
                groups[key] = [fact]
            else:
                group.append(fact)
        if entries is None:
            entries = self.path_agents
        hashes = self._hashes
        if len(hashes) > 100_000:
            hashes.clear()
        for key, group in groups.items():
            entry = entries.get(key)
            if entry is None:
                entry = entries[key] = Entry()
            entry.add_all(group, None if key[5] else hashes)

    def rollup(
        self, day_of: DayOf, quarters_from: datetime | None = None,
        open_from: datetime | None = None, months_before: datetime | None = None,
        years_before: datetime | None = None, open_merged: datetime | None = None,
    ) -> dict[Key, Entry]:
        """Every rollup row the facts add to, keyed by tier, bucket, grain and
        dimensions. Days from ``open_from`` on count in their quarters only (they get
        day rows when they are over); older quarters than ``quarters_from`` count in
        their day only; days of months before ``months_before`` count in their month
        too (a late row for a month already merged), and in their year before
        ``years_before``. The open day's quarters before ``open_merged`` count in its
        day rows too (the part of the day the writer task has merged into them);
        path-agent entries, which have no 15-minute rows, count there only."""
        out: dict[Key, Entry] = {}
        # The first quarter counted in 15-minute rows only.
        built = open_from if open_merged is None or (open_from is not None and open_merged < open_from) else open_merged

        def tiers(quarter: datetime, day: datetime) -> tuple[tuple[int, datetime], ...]:
            if open_from is not None and day >= open_from:
                if built is not None and quarter < built:
                    return ((QUARTER, quarter), (DAY, day))
                return ((QUARTER, quarter),)
            found: tuple[tuple[int, datetime], ...] = ((DAY, day),)
            if quarters_from is None or quarter >= quarters_from:
                found = ((QUARTER, quarter), *found)
            if months_before is not None and day < months_before:
                month = day_of.month(day)
                found = (*found, (MONTH, month))
                if years_before is not None and day < years_before:
                    found = (*found, (YEAR, day_of.year(month)))
            return found

        def into(key: Key, entry: Entry, counted: bool = True) -> None:
            target = out.get(key)
            if target is None:
                out[key] = entry.copy(counted)
            else:
                target.merge(entry, counted)

        for (quarter, route, path, method, status, is_bot), entry in self.entries.items():
            day = day_of(quarter)
            method = method_key(_cut(method, METHOD_LENGTH))
            route = _cut(route, ROUTE_LENGTH)
            path = _cut(path, PATH_LENGTH)
            cls = status_class(status)
            for tier, bucket in tiers(quarter, day):
                into((tier, bucket, PATH, route, path, False, method, status, is_bot, None, None), entry)
                into((tier, bucket, ROUTE, route, None, False, method, status, is_bot, None, None), entry, False)
                into((tier, bucket, STATUS, None, None, False, method, status, is_bot, None, None), entry, False)
                into((tier, bucket, CLASS, None, None, False, None, cls, is_bot, None, None), entry, False)
        for (quarter, browser, platform, method, status, is_bot), entry in self.agents.items():
            day = day_of(quarter)
            method = method_key(_cut(method, METHOD_LENGTH))
            platform = _cut(platform, ROUTE_LENGTH)
            browser = _cut(browser, PATH_LENGTH)
            for tier, bucket in tiers(quarter, day):
                into((tier, bucket, AGENT, platform, browser, False, method, status, is_bot, None, None), entry)
        path_agents = self.path_agents
        if self.agent_paths == "closed" and self._late:
            late = self._late
            if built is not None:
                late = [fact for fact in late if fact[0] < built]
            path_agents = {}
            self._add_path_agents(late, path_agents)
        for (quarter, route, path, method, status, is_bot, browser, platform), entry in path_agents.items():
            day = day_of(quarter)
            route = _cut(route, ROUTE_LENGTH)
            agent = (
                method_key(_cut(method, METHOD_LENGTH)), status, is_bot,
                _cut(browser, PATH_LENGTH), _cut(platform, ROUTE_LENGTH),
            )
            by_path = (PATH_AGENT, route, _cut(path, PATH_LENGTH), False, *agent)
            by_route = (ROUTE_AGENT, route, None, False, *agent)
            for tier, bucket in tiers(quarter, day):
                if tier != QUARTER:
                    into((tier, bucket, *by_path), entry, False)
                    into((tier, bucket, *by_route), entry, False)
        for (quarter, grain, method, status, is_bot), counts in self.tops.items():
            day = day_of(quarter)
            method = method_key(_cut(method, METHOD_LENGTH))
            hits = sum(counts.values())
            for tier, bucket in tiers(quarter, day):
                key: Key = (tier, bucket, grain, None, None, False, method, status, is_bot, None, None)
                target = out.get(key)
                if target is None:
                    target = out[key] = Entry()
                    target.counts = {}
                target.hits += hits
                add_counts(t.cast(dict, target.counts), counts)
        return out


def path_count_key(value: t.Any) -> str:
    """The name a path row counts ``value`` under: a (browser, platform) pair or a
    referrer (see :func:`split_path_counts`)."""
    if isinstance(value, tuple):
        return "a" + json.dumps(value, ensure_ascii=True)
    return "r" + json.dumps(value, ensure_ascii=True)


def split_path_counts(
    counts: dict[str, int],
) -> tuple[dict[tuple[t.Optional[str], t.Optional[str]], int], dict[t.Optional[str], int]]:
    """The (browser, platform) pairs and the referrers counted by path rows. Each
    request counts once in each; what a row's cap left out is its hits less these."""
    agents: dict[tuple[t.Optional[str], t.Optional[str]], int] = {}
    referrers: dict[t.Optional[str], int] = {}
    for name, hits in counts.items():
        value = json.loads(name[1:])
        if name[0] == "a":
            pair = (value[0], value[1])
            agents[pair] = agents.get(pair, 0) + hits
        else:
            referrers[value] = referrers.get(value, 0) + hits
    return agents, referrers


def quarter_aligned(moment: datetime) -> bool:
    return moment == quarter_start(moment)
