"""The summaries stored in rollup rows: response-time quantiles within 1 % of the exact
nearest-rank values, visitor counts exact while small and within 2 % after, however
the rows are merged, and the bytes they are stored as."""

from __future__ import annotations

import math
import random
import sys
import typing as t
from array import array
from fractions import Fraction
from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_statistics.sketches import (
    ALPHA,
    MIN_VALUE,
    SPARSE_LIMIT,
    Histogram,
    Visitors,
    bucket_index,
    representative,
)

# A value on a bucket edge can land on either side after rounding (log, division):
# the bound then holds to about 1e-12 of the value rather than exactly.
ROUNDING = 1e-9
QUANTILES = (0.5, 0.95, 0.99)


def exact_quantile(values: list[float], q: float | Fraction) -> float:
    """The value at rank ceil(q * n), q read as the decimal it prints as (as in SQL)."""
    share = Fraction(repr(q)) if isinstance(q, float) else Fraction(q)
    return sorted(values)[math.ceil(share * len(values)) - 1]


def assert_close(estimate: float | None, exact: float) -> None:
    assert estimate is not None
    assert abs(estimate - exact) <= ALPHA * exact * (1 + ROUNDING), (estimate, exact)


def histogram_of(values: t.Iterable[float]) -> Histogram:
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    return histogram


@st.composite
def lognormal(draw: st.DrawFn) -> list[float]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    mu = draw(st.floats(-10, 3))
    sigma = draw(st.floats(0.01, 3))
    return [rng.lognormvariate(mu, sigma) for _ in range(draw(st.integers(1, 2000)))]


@st.composite
def ties(draw: st.DrawFn) -> list[float]:
    pool = draw(st.lists(st.floats(MIN_VALUE, 100), min_size=1, max_size=4))
    return draw(st.lists(st.sampled_from([0.0, *pool]), min_size=1, max_size=300))


finite = st.floats(MIN_VALUE, sys.float_info.max)
log_uniform = st.floats(math.log(MIN_VALUE), math.log(sys.float_info.max)).map(math.exp)
value = st.one_of(st.just(0.0), st.floats(1e-5, 100), log_uniform, finite)
samples = st.one_of(
    st.lists(value, min_size=1, max_size=300),
    lognormal(),
    ties(),
    st.lists(st.just(0.0), min_size=1, max_size=50),
    value.map(lambda v: [v]),
    # Huge ranges: from a nanosecond to the largest float in one histogram.
    st.lists(st.one_of(st.just(MIN_VALUE), st.just(sys.float_info.max), value), min_size=1),
)
some_q = st.floats(0, 1, exclude_min=True)


@settings(deadline=None)
@given(samples, some_q)
def test_quantiles_are_within_alpha_of_the_exact_nearest_rank_value(
    values: list[float], q: float
) -> None:
    histogram = histogram_of(values)
    assert histogram.count == len(values)
    for wanted in (*QUANTILES, q):
        assert_close(histogram.quantile(wanted), exact_quantile(values, wanted))


def test_the_quantile_is_the_value_at_rank_ceil_q_n() -> None:
    histogram = histogram_of([4.0, 1.0, 3.0, 2.0])
    assert_close(histogram.quantile(0.5), 2.0)
    assert_close(histogram.quantile(0.75), 3.0)
    assert_close(histogram.quantile(0.76), 4.0)
    assert_close(histogram.quantile(1), 4.0)
    assert_close(histogram.quantile(0.01), 1.0)
    # 0.07 is read as 7/100, not as the double just above it: rank 7 of 100, not 8.
    hundred = histogram_of([float(i) for i in range(1, 101)])
    assert_close(hundred.quantile(0.07), 7.0)
    assert hundred.quantile(0.07) == hundred.quantile(Fraction(7, 100))
    assert_close(hundred.quantile(0.95), 95.0)


def test_an_empty_histogram_has_no_quantile() -> None:
    empties = (Histogram(), Histogram.from_bytes(None), Histogram.from_bytes(b""))
    for empty in (*empties, Histogram.merged([])):
        assert empty.count == 0
        assert empty.quantile(0.5) is None
        assert empty.to_bytes() == Histogram().to_bytes()


def test_missing_and_impossible_times_are_not_counted() -> None:
    histogram = Histogram()
    for junk in (None, math.nan, math.inf, -math.inf, -1.0, -MIN_VALUE):
        histogram.add(junk)
    assert histogram.count == 0
    assert histogram.to_bytes() == Histogram().to_bytes()


def test_times_below_a_nanosecond_count_as_zero() -> None:
    histogram = histogram_of([0.0, 5e-10, MIN_VALUE / 2, 2.0])
    assert histogram.count == 4
    assert histogram.quantile(0.75) == 0.0
    assert_close(histogram.quantile(1), 2.0)
    assert bucket_index(0.0) is None
    assert bucket_index(5e-10) is None
    assert representative(None) == 0.0


def test_add_with_a_count_is_adding_that_many_times() -> None:
    once = Histogram()
    once.add(0.25, 3)
    once.add(0.0, 2)
    once.add(0.5, 0)
    assert once.to_bytes() == histogram_of([0.25, 0.25, 0.25, 0.0, 0.0]).to_bytes()
    with pytest.raises(ValueError, match="count"):
        once.add(0.25, -1)


@pytest.mark.parametrize("q", [0, -0.5, 1.01, math.nan, math.inf, Fraction(3, 2)])
def test_a_quantile_outside_0_to_1_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        histogram_of([1.0]).quantile(q)


def test_extremes_of_the_float_range() -> None:
    values = [MIN_VALUE, 1.0, 1e300, sys.float_info.max]
    histogram = histogram_of(values)
    for q, exact in zip((0.25, 0.5, 0.75, 1.0), values):
        assert_close(histogram.quantile(q), exact)
    assert math.isfinite(t.cast(float, histogram.quantile(1.0)))


def test_each_bucket_shows_a_value_that_falls_in_it() -> None:
    # (The lowest bucket's value, 0.993 ns, is below MIN_VALUE: it would count as 0.)
    for index in [*range(-1035, -1000), *range(-50, 50), *range(35450, 35489)]:
        assert bucket_index(representative(index)) == index
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="finite number"):
            bucket_index(bad)


@settings(deadline=None)
@given(samples, st.integers(0, 2000))
def test_merging_halves_gives_the_histogram_of_the_whole(values: list[float], cut: int) -> None:
    cut = min(cut, len(values))
    whole = histogram_of(values).to_bytes()
    first, second = histogram_of(values[:cut]), histogram_of(values[cut:])
    merged = Histogram.from_bytes(first.to_bytes())
    merged.merge(second)
    assert merged.to_bytes() == whole
    second.merge(first)
    assert second.to_bytes() == whole
    pieces = [histogram_of(values[:cut]).to_bytes(), None, b""]
    assert Histogram.merged([*pieces, histogram_of(values[cut:]).to_bytes()]).to_bytes() == whole


@settings(deadline=None)
@given(samples)
def test_a_histogram_reads_back_from_its_bytes(values: list[float]) -> None:
    histogram = histogram_of(values)
    data = histogram.to_bytes()
    assert data[0] == 1
    back = Histogram.from_bytes(data)
    assert back.to_bytes() == data
    assert back.count == histogram.count
    for q in QUANTILES:
        assert back.quantile(q) == histogram.quantile(q)


def test_merged_equals_merging_one_by_one() -> None:
    rng = random.Random(7)
    blobs = [
        histogram_of(rng.lognormvariate(-3, 1.5) for _ in range(rng.randrange(0, 300))).to_bytes()
        for _ in range(60)
    ]
    one_by_one = Histogram()
    for blob in blobs:
        one_by_one.merge(Histogram.from_bytes(blob))
    assert Histogram.merged(blobs).to_bytes() == one_by_one.to_bytes()
    assert Histogram.merged(iter(blobs)).count == sum(Histogram.from_bytes(b).count for b in blobs)


def test_merged_reaches_buckets_on_both_sides_of_the_first_blob() -> None:
    # A merge grows its tally below and above what the blobs before reached.
    blobs = [histogram_of(times).to_bytes() for times in ([1.0, 2.0], [1e-6, 3e-6], [500.0], [0.0, 0.03])]
    merged = Histogram.merged(blobs)
    assert merged.count == 7
    assert merged.quantile(Fraction(1, 7)) == 0.0
    assert merged.quantile(Fraction(2, 7)) == pytest.approx(1e-6, rel=0.01)
    assert merged.quantile(1.0) == pytest.approx(500.0, rel=0.01)
    one_by_one = Histogram()
    for blob in blobs:
        one_by_one.merge(Histogram.from_bytes(blob))
    assert merged.to_bytes() == one_by_one.to_bytes()


def test_merged_counts_equal_blobs_as_often_as_they_come() -> None:
    # Rows of a request or two often hold equal histograms; each counts.
    rng = random.Random(8)
    few = [histogram_of([rng.choice((0.0, 0.0101, 0.25, 3.0))]).to_bytes() for _ in range(200)]
    many = histogram_of(rng.lognormvariate(-3, 1.5) for _ in range(500)).to_bytes()
    blobs = [*few, many, many, None, many]
    one_by_one = Histogram()
    for blob in blobs:
        one_by_one.merge(Histogram.from_bytes(blob))
    assert len(set(few)) < 10 and one_by_one.count == 1700
    assert Histogram.merged(blobs).to_bytes() == one_by_one.to_bytes()
    # Blobs a driver hands over as writable buffers, which no dict can key.
    assert Histogram.merged(bytearray(b) if b else b for b in blobs).to_bytes() == one_by_one.to_bytes()
    visitors = [Visitors(), Visitors()]
    visitors[0].add("192.0.2.1")
    visitors[1].add("192.0.2.2")
    repeated = [v.to_bytes() for v in visitors * 3]
    assert Visitors.merged(repeated).count() == 2
    assert Visitors.merged(bytearray(b) for b in repeated).count() == 2


def test_a_busy_day_fits_in_two_kilobytes() -> None:
    rng = random.Random(3)
    # Times from 0.1 ms to 16 s, spread evenly on a log scale: about 600 buckets.
    day = histogram_of(10 ** rng.uniform(-4, 1.2) for _ in range(100_000))
    assert len({bucket_index(day.quantile(i / 1000)) for i in range(1, 1001)}) > 500
    assert len(day.to_bytes()) < 2000


def test_unreadable_histogram_bytes_are_refused() -> None:
    data = histogram_of([0.1, 0.2, 0.3]).to_bytes()
    with pytest.raises(ValueError, match="version 9"):
        Histogram.from_bytes(b"\x09" + data[1:])
    for broken in (data[:5], data[:-1], data + b"\x00"):
        with pytest.raises(ValueError, match="corrupt"):
            Histogram.from_bytes(broken)


# Visitors


def random_hashes(rng: random.Random, n: int) -> array[int]:
    hashes = array("Q")
    hashes.frombytes(rng.randbytes(8 * n))
    return hashes


def visitors_of(hashes: t.Iterable[int]) -> Visitors:
    visitors = Visitors()
    for h in hashes:
        visitors.add_hash(h)
    return visitors


def union(*parts: Visitors) -> Visitors:
    return reduce(lambda a, b: (a.merge(b), a)[1], parts, Visitors())


def test_the_hash_of_an_address_never_changes() -> None:
    assert Visitors.hash("203.0.113.7") == 9872284406514510511
    assert Visitors.hash("") == 16476032584258269876
    assert 0 <= Visitors.hash("2001:db8::1 ünïcode \udc80") < 2**64


def test_visitors_are_counted_exactly_up_to_the_sparse_limit() -> None:
    visitors = Visitors()
    for i in range(SPARSE_LIMIT):
        visitors.add(f"10.0.{i // 256}.{i % 256}")
        visitors.add(f"10.0.{i // 256}.{i % 256}")
        visitors.add(None)
    assert visitors.exact
    assert visitors.count() == SPARSE_LIMIT
    visitors.add("192.0.2.1")
    assert not visitors.exact
    assert abs(visitors.count() - (SPARSE_LIMIT + 1)) <= 0.02 * (SPARSE_LIMIT + 1)


def test_an_empty_sketch_counts_nobody() -> None:
    empties = (Visitors(), Visitors.from_bytes(None), Visitors.from_bytes(b""))
    for empty in (*empties, Visitors.merged([None])):
        assert empty.count() == 0
        assert empty.exact


@pytest.mark.parametrize(
    ("cardinality", "seeds"),
    [(10, 300), (1_000, 300), (10_000, 100), (100_000, 30), (1_000_000, 10)],
)
def test_counts_are_within_two_percent(cardinality: int, seeds: int) -> None:
    misses = []
    for seed in range(seeds):
        hashes = random_hashes(random.Random(seed), cardinality)
        count = visitors_of(hashes).count()
        if abs(count - cardinality) > 0.02 * cardinality:
            misses.append((seed, count))
    assert len(misses) <= seeds // 100, misses


def test_a_union_of_small_sketches_stays_exact() -> None:
    addresses = [f"198.51.100.{i}" for i in range(250)] + [f"203.0.113.{i}" for i in range(250)]
    first, second = Visitors(), Visitors()
    for address in addresses[:300]:
        first.add(address)
    for address in addresses[200:]:
        second.add(address)
    both = Visitors.merged([first.to_bytes(), second.to_bytes()])
    assert both.exact
    assert both.count() == 500
    first.merge(second)
    assert first.exact
    assert first.count() == 500


@settings(deadline=None, max_examples=40)
@given(
    st.integers(0, 2**32),
    st.lists(st.integers(0, 1500), min_size=3, max_size=3),
    st.integers(0, 300),
)
def test_merging_is_commutative_and_associative(seed: int, sizes: list[int], shared: int) -> None:
    rng = random.Random(seed)
    common = list(random_hashes(rng, shared))
    parts = [[*random_hashes(rng, n), *common[: rng.randrange(shared + 1)]] for n in sizes]
    a, b, c = (visitors_of(p) for p in parts)
    everyone = visitors_of(h for p in parts for h in p).to_bytes()
    assert union(a, b, c).to_bytes() == everyone
    assert union(c, b, a).to_bytes() == everyone
    assert union(b, union(c, a)).to_bytes() == everyone
    assert Visitors.merged([x.to_bytes() for x in (b, a, c)]).to_bytes() == everyone


def test_sparse_and_dense_sketches_merge_both_ways() -> None:
    rng = random.Random(11)
    many, few = list(random_hashes(rng, 5000)), list(random_hashes(rng, 100))
    overlapping = few + many[:50]
    everyone = visitors_of(many + few).to_bytes()
    dense, sparse = visitors_of(many), visitors_of(overlapping)
    assert not dense.exact and sparse.exact
    assert union(dense, sparse).to_bytes() == everyone
    assert union(sparse, dense).to_bytes() == everyone
    assert Visitors.merged([sparse.to_bytes(), dense.to_bytes()]).to_bytes() == everyone
    assert Visitors.merged([dense.to_bytes(), sparse.to_bytes()]).to_bytes() == everyone
    assert abs(Visitors.from_bytes(everyone).count() - 5100) <= 0.02 * 5100


def test_merged_of_many_small_sketches_equals_one_sketch_of_everyone() -> None:
    rng = random.Random(5)
    regulars = list(random_hashes(rng, 300))
    parts = [rng.sample(regulars, 20) + list(random_hashes(rng, 5)) for _ in range(400)]
    blobs = [visitors_of(p).to_bytes() for p in parts]
    everyone = visitors_of(h for p in parts for h in p)
    assert Visitors.merged([None, *blobs, b""]).to_bytes() == everyone.to_bytes()
    # Only regulars: the union stays small, and so exact.
    days = [rng.sample(regulars, 20) for _ in range(400)]
    quiet = Visitors.merged(visitors_of(day).to_bytes() for day in days)
    assert quiet.exact
    assert quiet.count() == len({h for day in days for h in day})


@pytest.fixture(scope="module")
def million() -> Visitors:
    return visitors_of(random_hashes(random.Random(2**40), 1_000_000))


@pytest.mark.parametrize("cardinality", [0, 1, 512, 513, 5_000, 100_000])
def test_a_sketch_reads_back_from_its_bytes(cardinality: int) -> None:
    visitors = visitors_of(random_hashes(random.Random(cardinality), cardinality))
    data = visitors.to_bytes()
    assert data[0] == 1
    back = Visitors.from_bytes(data)
    assert back.to_bytes() == data
    assert back.count() == visitors.count()
    assert back.exact == visitors.exact == (cardinality <= SPARSE_LIMIT)
    if visitors.exact:
        assert len(data) == 2 + 8 * cardinality
    assert len(data) <= 12 * 1024


def test_a_million_visitors_fit_in_twelve_kilobytes(million: Visitors) -> None:
    data = million.to_bytes()
    assert len(data) <= 12 * 1024
    assert abs(Visitors.from_bytes(data).count() - 1_000_000) <= 20_000


def test_bad_hashes_are_refused() -> None:
    visitors = Visitors()
    for bad in (-1, 2**64):
        with pytest.raises(ValueError, match="2\\*\\*64"):
            visitors.add_hash(bad)
    assert visitors.count() == 0


def test_unreadable_visitor_bytes_are_refused(million: Visitors) -> None:
    dense = million.to_bytes()
    sparse = visitors_of([1, 2, 3]).to_bytes()
    with pytest.raises(ValueError, match="version 2"):
        Visitors.from_bytes(b"\x02" + sparse[1:])
    for broken in (sparse[:-1], b"\x01\x07", dense[:-10], b"\x01\x01" + bytes(100)):
        with pytest.raises(ValueError, match="corrupt"):
            Visitors.from_bytes(broken)


# -- the value counts of top-list rows (rollups.counts) --------------------------------

_count_values = st.one_of(st.none(), st.text(max_size=12))  # lone surrogates included


@given(st.dictionaries(_count_values, st.integers(1, 10**12), max_size=30), st.integers(0, 10**9))
def test_counts_read_back_from_their_blob(values: dict[str | None, int], other: int) -> None:
    from flask_statistics.rollups import counts

    blob = counts.encode(values, other)
    assert counts.decode(blob) == (values, other)
    assert counts.decode(memoryview(blob)) == (values, other)  # PostgreSQL's bytea
    into = {"a": 1}
    assert counts.add_encoded(into, bytearray(blob)) == other
    expected = dict(values)
    expected["a"] = expected.get("a", 0) + 1
    assert into == expected


@pytest.mark.parametrize("blob", [b"{", b"", b"   ", b"[1,"])
def test_unreadable_counts_blobs_are_refused_as_values(blob: bytes) -> None:
    from flask_statistics.rollups import counts

    if not blob:
        assert counts.decode(blob) == ({}, 0)  # an empty column counts nothing
        return
    with pytest.raises(ValueError):
        counts.decode(blob)
