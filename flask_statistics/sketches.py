"""Mergeable summaries stored in rollup rows: response times and distinct visitors.

:class:`Histogram` counts response times in logarithmic buckets (DDSketch, Masson,
Rivière and Lee, 2019). Every quantile it gives is within ``ALPHA`` (1 %) of the exact
nearest-rank value, however many histograms were merged to make it: each value is
counted in the bucket ``ceil(log(v) / log(GAMMA))``, and the value shown for a bucket
is never further than ``ALPHA`` from anything counted in it. Values below
``MIN_VALUE`` (a nanosecond) count as 0.0. Up to the rounding of floats, which can
move a value lying on a bucket edge by about 1e-12 of itself, the bound is exact.

:class:`Visitors` counts distinct client addresses. It keeps the 64-bit hashes
themselves, and so counts exactly, while there are at most ``SPARSE_LIMIT`` of them,
then switches to a HyperLogLog of ``2**PRECISION`` registers (Flajolet et al. 2007).
The count is a function of the set of hashes added, however they were split and
merged. With 32,768 registers the standard error of the estimate is
1.04 / sqrt(32768) = 0.57 %, so 2 % is about 3.5 standard errors: more than 99.9 %
of estimates are within 2 % of the true count at any cardinality. (With 16,384
registers, 2 % is only 2.5 standard errors and about 1.4 % of estimates miss it.)
Measured over 10,140 random sets of 600 to 10 million hashes, the standard deviation
was 0.39 % to 0.63 % and no estimate was off by more than 1.9 %.
The estimate is Ertl's improved estimator ("New cardinality estimation algorithms for
HyperLogLog sketches", 2017, also used by Redis). Like HyperLogLog++ (Heule et al.
2013) it needs no large-range correction with 64-bit hashes, and it removes the bias
of the raw estimate at small and middle cardinalities analytically, where
HyperLogLog++ switches to linear counting and interpolates tables of measured bias.

Both serialise to compact bytes whose first byte is the format version:

- a histogram: version, width of the index steps, width of the counts, first bucket
  index (int32), number of buckets (uint32), count of zeros (uint64), then the steps
  between consecutive bucket indexes and the counts as little-endian arrays of the
  smallest width that holds them. A busy day of about 600 buckets takes about 1.8 KB.
- visitors: version, kind, then either the sorted hashes (8 bytes each, little
  endian) or the registers, one byte each, zlib-compressed: at most about 11.9 KB
  (a register holds 2.83 bits of information at large counts, 11.6 KB in all), about
  1.2 KB just past the sparse limit.
"""

from __future__ import annotations

import math
import struct
import sys
import typing as t
import zlib
from array import array
from fractions import Fraction
from hashlib import blake2b
from itertools import accumulate, compress
from operator import sub

try:
    # Counts an iterable's values into a dict, in C: what Counter.update uses.
    from collections import _count_elements as count_values  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - an interpreter without the helper

    def count_values(counts: dict[t.Any, int], values: t.Iterable[t.Any]) -> None:
        for value in values:
            counts[value] = counts.get(value, 0) + 1

__all__ = [
    "ALPHA",
    "GAMMA",
    "MIN_VALUE",
    "PRECISION",
    "SPARSE_LIMIT",
    "Histogram",
    "Visitors",
    "bucket_index",
    "representative",
]

#: The relative accuracy of every quantile a :class:`Histogram` gives.
ALPHA = 0.01
#: The ratio between the upper edges of consecutive buckets.
GAMMA = (1 + ALPHA) / (1 - ALPHA)
#: Smaller values (and 0.0) are counted in the zero bucket, shown as 0.0.
MIN_VALUE = 1e-9

_LOG_GAMMA = math.log(GAMMA)
_LOWER = 2 / (GAMMA + 1)  # 1 - ALPHA: a bucket's value over its upper edge
_UPPER = 2 * GAMMA / (GAMMA + 1)  # 1 + ALPHA: over its lower edge
_MAX_FLOAT = sys.float_info.max
_INF = math.inf
_LITTLE = sys.byteorder == "little"


def _typecodes() -> dict[int, str]:
    # The array type code of each unsigned width; "L" is 4 or 8 bytes by platform.
    codes: dict[int, str] = {}
    for code in "QLIHB":
        codes[array(code).itemsize] = code
    return codes


_UNSIGNED = _typecodes()


def _packed(values: t.Sequence[int]) -> tuple[int, bytes]:
    # The values in the narrowest little-endian unsigned array that holds them.
    top = max(values, default=0)
    width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    packed = array(_UNSIGNED[width], values)
    if not _LITTLE:
        packed.byteswap()
    return width, packed.tobytes()


def _unpacked(width: int, data: bytes) -> array[int]:
    values = array(_UNSIGNED[width])
    values.frombytes(data)
    if not _LITTLE:
        values.byteswap()
    return values


def bucket_index(value: float) -> int | None:
    """The bucket ``value`` is counted in: ``ceil(log(value) / log(GAMMA))``, or None
    for the zero bucket (values below ``MIN_VALUE``).

    Raises ValueError for the values :meth:`Histogram.add` ignores (negative, NaN,
    infinite).
    """
    if not 0.0 <= value < _INF:
        raise ValueError(f"a response time must be a finite number >= 0, got {value!r}")
    if value < MIN_VALUE:
        return None
    return math.ceil(math.log(value) / _LOG_GAMMA)


def representative(index: int | None) -> float:
    """The value shown for bucket ``index``: ``2 * GAMMA**index / (GAMMA + 1)``, which
    is within ``ALPHA`` of every value the bucket counts; 0.0 for the zero bucket."""
    if index is None:
        return 0.0
    try:
        return GAMMA**index * _LOWER
    except OverflowError:
        # The top bucket's upper edge is past the largest float; its values are not.
        try:
            return min(GAMMA ** (index - 1) * _UPPER, _MAX_FLOAT)
        except OverflowError:
            return _MAX_FLOAT


def _rank_share(q: float | Fraction) -> Fraction:
    # A float is taken as the decimal it prints as: 0.07 is 7/100, not the binary
    # fraction just above it, so that ceil(0.07 * 100) is 7 as in SQL.
    if isinstance(q, float):
        share = Fraction(repr(q)) if math.isfinite(q) else None
    else:
        share = Fraction(q)
    if share is None or not 0 < share <= 1:
        raise ValueError(f"a quantile must be in (0, 1], got {q!r}")
    return share


# The lowest and highest buckets a value can be counted in.
_BOTTOM_KEY = bucket_index(MIN_VALUE)
_TOP_KEY = bucket_index(_MAX_FLOAT)
_HISTOGRAM_VERSION = 1
_HISTOGRAM_HEADER = struct.Struct("<BBBiIQ")


class Histogram:
    """Response times (seconds) in buckets of relative width ``ALPHA``."""

    __slots__ = ("_bins", "_zeros")

    def __init__(self) -> None:
        self._bins: dict[int, int] = {}
        self._zeros = 0

    def add(self, value: float | None, count: int = 1) -> None:
        """Count ``value`` ``count`` times. None, NaN, infinities and negative values
        are ignored."""
        if value is None or not 0.0 <= value < _INF or count < 1:
            if count < 0:
                raise ValueError(f"count must be >= 0, got {count!r}")
            return
        if value < MIN_VALUE:
            self._zeros += count
            return
        key = math.ceil(math.log(value) / _LOG_GAMMA)
        bins = self._bins
        bins[key] = bins.get(key, 0) + count

    def add_all(self, values: t.Iterable[float | None]) -> None:
        """:meth:`add` each of ``values`` once."""
        bins = self._bins
        get = bins.get
        log = math.log
        ceil = math.ceil
        zeros = 0
        for value in values:
            if value is None or not 0.0 <= value < _INF:
                continue
            if value < MIN_VALUE:
                zeros += 1
                continue
            key = ceil(log(value) / _LOG_GAMMA)
            bins[key] = get(key, 0) + 1
        self._zeros += zeros

    def copy(self) -> Histogram:
        histogram = Histogram.__new__(Histogram)
        histogram._bins = self._bins.copy()
        histogram._zeros = self._zeros
        return histogram

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s counts to this histogram."""
        bins = self._bins
        get = bins.get
        for key, count in other._bins.items():
            bins[key] = get(key, 0) + count
        self._zeros += other._zeros

    @property
    def count(self) -> int:
        """How many values were counted, zeros included."""
        return self._zeros + sum(self._bins.values())

    def quantile(self, q: float | Fraction) -> float | None:
        """The nearest-rank ``q`` quantile: the value at rank ``ceil(q * n)`` (from 1)
        of the ``n`` sorted values, within ``ALPHA`` of it; None when empty.

        ``q`` must be in (0, 1]; a float is read as the decimal it prints as.
        """
        share = _rank_share(q)
        total = self.count
        if not total:
            return None
        rank = math.ceil(share * total)
        seen = self._zeros
        if seen >= rank:
            return 0.0
        bins = self._bins
        for key in sorted(bins):
            seen += bins[key]
            if seen >= rank:
                return representative(key)
        raise AssertionError("unreachable: the counts add up to the total")

    def to_bytes(self) -> bytes:
        """The histogram as bytes for :meth:`from_bytes`; equal histograms give equal
        bytes."""
        keys = sorted(self._bins)
        first = keys[0] if keys else 0
        step_width, steps = _packed(list(map(sub, keys[1:], keys)))
        count_width, counts = _packed(list(map(self._bins.__getitem__, keys)))
        header = _HISTOGRAM_HEADER.pack(
            _HISTOGRAM_VERSION, step_width, count_width, first, len(keys), self._zeros
        )
        return header + steps + counts

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Histogram:
        """The histogram ``data`` holds; None and b"" give an empty one."""
        histogram = cls()
        if data:
            first, keys, counts, zeros = _decode_histogram(data)
            histogram._bins = dict(zip(accumulate(keys, initial=first), counts))
            histogram._zeros = zeros
        return histogram

    @classmethod
    def merged(cls, blobs: t.Iterable[bytes | None]) -> Histogram:
        """The merge of the histograms in ``blobs`` (None and b"" count as empty),
        without building each one."""
        # Counts add up in a list over the buckets seen so far, grown as blobs reach
        # further: list indexing is cheaper than a dict's get and set, and a list
        # over every bucket a float can reach (290 KB) cost more to allocate than a
        # merge of a few hundred blobs does.
        totals: list[int] = []
        base = 0  # the bucket of totals[0]
        others: dict[int, int] = {}
        zeros = 0
        # Equal blobs are decoded once: rows of a few requests often hold the same
        # one or two buckets.
        for data, times in _tally(blobs).items():
            if not data:
                continue
            first, steps, counts, blob_zeros = _decode_histogram(data)
            zeros += blob_zeros * times
            if not counts:
                continue
            if times > 1:
                counts = [count * times for count in counts]  # type: ignore[assignment]
            last = first + sum(steps)
            if not (_BOTTOM_KEY <= first and last <= _TOP_KEY):
                # Only bytes from elsewhere get here: no float has such a bucket.
                for key, count in zip(accumulate(steps, initial=first), counts):
                    others[key] = others.get(key, 0) + count
                continue
            if not totals:
                base = first
                totals = [0] * (last - first + 1)
            else:
                if first < base:
                    totals[:0] = [0] * (base - first)
                    base = first
                beyond = last - (base + len(totals) - 1)
                if beyond > 0:
                    totals += [0] * beyond
            for position, count in zip(accumulate(steps, initial=first - base), counts):
                totals[position] += count
        histogram = cls()
        if totals:
            keys = compress(range(base, base + len(totals)), totals)
            histogram._bins = dict(zip(keys, filter(None, totals)))
        for key, count in others.items():
            histogram._bins[key] = histogram._bins.get(key, 0) + count
        histogram._zeros = zeros
        return histogram

    def __repr__(self) -> str:
        return f"<Histogram count={self.count} buckets={len(self._bins) + bool(self._zeros)}>"


def _tally(blobs: t.Iterable[bytes | None]) -> dict[t.Any, int]:
    """How many times each blob occurs (a blob that cannot be a dict key, such as a
    writable buffer, counts as bytes)."""
    if not isinstance(blobs, (list, tuple)):
        blobs = list(blobs)
    found: dict[t.Any, int] = {}
    try:
        count_values(found, blobs)
    except TypeError:
        found = {}
        count_values(found, (None if blob is None else bytes(blob) for blob in blobs))
    return found


def _decode_histogram(data: bytes) -> tuple[int, array[int], array[int], int]:
    # first bucket index, steps between indexes, counts, zeros.
    if data[0] != _HISTOGRAM_VERSION:
        raise ValueError(
            f"unknown histogram format version {data[0]} (this version of "
            f"flask-statistics reads version {_HISTOGRAM_VERSION}); upgrade it to read "
            f"rollups written by a newer one"
        )
    try:
        _, step_width, count_width, first, size, zeros = _HISTOGRAM_HEADER.unpack_from(data)
        end = _HISTOGRAM_HEADER.size + step_width * max(size - 1, 0)
        steps = _unpacked(step_width, data[_HISTOGRAM_HEADER.size : end])
        counts = _unpacked(count_width, data[end:])
    except (struct.error, KeyError) as exc:
        raise ValueError(f"corrupt histogram ({len(data)} bytes): {exc}") from None
    if len(steps) != max(size - 1, 0) or len(counts) != size:
        raise ValueError(f"corrupt histogram: {len(data)} bytes do not hold {size} buckets")
    return first, steps, counts, zeros


#: The registers of a dense :class:`Visitors` are ``2**PRECISION``.
PRECISION = 15
#: A :class:`Visitors` keeps its hashes, and counts exactly, up to this many.
SPARSE_LIMIT = 512

_REGISTERS = 1 << PRECISION
_SUFFIX_BITS = 64 - PRECISION  # the bits after the register index
_SUFFIX_MASK = (1 << _SUFFIX_BITS) - 1
_TOP_RANK = _SUFFIX_BITS + 1  # the rank of a suffix of zeros only
_HASH_END = 1 << 64
_ALPHA_INF = 1 / (2 * math.log(2))
_VALID_REGISTERS = bytes(range(_TOP_RANK + 1))
# A one in the top bit of each register, for the byte-wise maximum of two registers.
_HIGH_BITS = int.from_bytes(b"\x80" * _REGISTERS, "little")

_VISITORS_VERSION = 1
_SPARSE, _DENSE = 0, 1
_HASH_CODE = _UNSIGNED[8]


class Visitors:
    """Distinct visitors: exact up to ``SPARSE_LIMIT``, then a HyperLogLog."""

    __slots__ = ("_hashes", "_registers")

    def __init__(self) -> None:
        # Exactly one of them is None: the hashes while sparse, the registers after.
        self._hashes: set[int] | None = set()
        self._registers: bytearray | None = None

    @staticmethod
    def hash(value: str) -> int:
        """The 64-bit hash ``value`` is counted by: the first 8 bytes of its BLAKE2b
        digest, big-endian, the same in every process and version."""
        digest = blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def add_hash(self, h: int) -> None:
        """Count the visitor whose :meth:`hash` is ``h``."""
        if not 0 <= h < _HASH_END:
            raise ValueError(f"a visitor hash is an int in [0, 2**64), got {h!r}")
        hashes = self._hashes
        if hashes is not None:
            hashes.add(h)
            if len(hashes) > SPARSE_LIMIT:
                self._densify()
            return
        registers = t.cast(bytearray, self._registers)
        index = h >> _SUFFIX_BITS
        rank = _TOP_RANK - (h & _SUFFIX_MASK).bit_length()
        if rank > registers[index]:
            registers[index] = rank

    def add_hashes(self, hashes: set[int]) -> None:
        """:meth:`add_hash` each of ``hashes``."""
        if hashes and not (0 <= min(hashes) and max(hashes) < _HASH_END):
            bad = next(h for h in hashes if not 0 <= h < _HASH_END)
            raise ValueError(f"a visitor hash is an int in [0, 2**64), got {bad!r}")
        if self._hashes is not None:
            self._hashes |= hashes
            if len(self._hashes) > SPARSE_LIMIT:
                self._densify()
        else:
            _scatter(t.cast(bytearray, self._registers), hashes)

    def copy(self) -> Visitors:
        visitors = Visitors.__new__(Visitors)
        visitors._hashes = None if self._hashes is None else self._hashes.copy()
        visitors._registers = None if self._registers is None else bytearray(self._registers)
        return visitors

    def add(self, value: str | None) -> None:
        """Count the visitor ``value`` (a client address); None is ignored."""
        if value is not None:
            self.add_hash(self.hash(value))

    def merge(self, other: Visitors) -> None:
        """Count ``other``'s visitors too (a union: one counted in both counts once)."""
        if other._hashes is not None:
            if self._hashes is not None:
                self._hashes |= other._hashes
                if len(self._hashes) > SPARSE_LIMIT:
                    self._densify()
            else:
                _scatter(t.cast(bytearray, self._registers), other._hashes)
        elif self._hashes is not None:
            hashes = self._hashes
            self._hashes = None
            self._registers = bytearray(t.cast(bytearray, other._registers))
            _scatter(self._registers, hashes)
        else:
            mine = t.cast(bytearray, self._registers)
            theirs = t.cast(bytearray, other._registers)
            self._registers = bytearray(_as_bytes(_register_max(_as_int(mine), _as_int(theirs))))

    def count(self) -> int:
        """The number of distinct visitors: exact while :attr:`exact`, else an
        estimate within 2 % of it (see the module's documentation)."""
        if self._hashes is not None:
            return len(self._hashes)
        return round(_estimate(t.cast(bytearray, self._registers)))

    @property
    def empty(self) -> bool:
        """Whether no visitor was counted (cheaper than :meth:`count`)."""
        return self._hashes is not None and not self._hashes

    @property
    def exact(self) -> bool:
        """Whether the count is exact (at most ``SPARSE_LIMIT`` visitors)."""
        return self._hashes is not None

    def to_bytes(self) -> bytes:
        """The sketch as bytes for :meth:`from_bytes`; equal sketches give equal
        bytes."""
        if self._hashes is not None:
            hashes = array(_HASH_CODE, sorted(self._hashes))
            if not _LITTLE:
                hashes.byteswap()
            return bytes((_VISITORS_VERSION, _SPARSE)) + hashes.tobytes()
        return bytes((_VISITORS_VERSION, _DENSE)) + _compressed(t.cast(bytearray, self._registers))

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Visitors:
        """The sketch ``data`` holds; None and b"" give an empty one."""
        visitors = cls()
        if not data:
            return visitors
        kind, payload = _decode_visitors(data)
        if kind == _SPARSE:
            visitors._hashes = set(t.cast(array, payload))
            if len(visitors._hashes) > SPARSE_LIMIT:
                visitors._densify()
        else:
            visitors._hashes = None
            visitors._registers = t.cast(bytearray, payload)
        return visitors

    @classmethod
    def merged(cls, blobs: t.Iterable[bytes | None]) -> Visitors:
        """The union of the sketches in ``blobs`` (None and b"" count as empty),
        without building each one."""
        hashes: set[int] = set()
        dense: int | None = None
        scattered: bytearray | None = None
        # A union: equal blobs count once.
        for data in _tally(blobs):
            if not data:
                continue
            kind, payload = _decode_visitors(data)
            if kind == _SPARSE:
                hashes.update(payload)
                if len(hashes) > 1 << 16:
                    # Bound the memory held by a union of many sparse sketches.
                    scattered = scattered or bytearray(_REGISTERS)
                    _scatter(scattered, hashes)
                    hashes = set()
            else:
                registers = _as_int(t.cast(bytearray, payload))
                dense = registers if dense is None else _register_max(dense, registers)
        visitors = cls()
        if dense is None and scattered is None and len(hashes) <= SPARSE_LIMIT:
            visitors._hashes = hashes
            return visitors
        registers_out = bytearray(_REGISTERS) if dense is None else bytearray(_as_bytes(dense))
        if scattered is not None:
            both = _register_max(_as_int(registers_out), _as_int(scattered))
            registers_out = bytearray(_as_bytes(both))
        _scatter(registers_out, hashes)
        visitors._hashes = None
        visitors._registers = registers_out
        return visitors

    def _densify(self) -> None:
        registers = bytearray(_REGISTERS)
        _scatter(registers, t.cast(set, self._hashes))
        self._hashes = None
        self._registers = registers

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "estimated"
        return f"<Visitors {kind} count={self.count()}>"


def _scatter(registers: bytearray, hashes: t.Iterable[int]) -> None:
    for h in hashes:
        index = h >> _SUFFIX_BITS
        rank = _TOP_RANK - (h & _SUFFIX_MASK).bit_length()
        if rank > registers[index]:
            registers[index] = rank


def _as_int(registers: bytes | bytearray) -> int:
    return int.from_bytes(registers, "little")


def _as_bytes(registers: int) -> bytes:
    return registers.to_bytes(_REGISTERS, "little")


def _register_max(a: int, b: int) -> int:
    # The byte-wise maximum of two register arrays held as ints, with a handful of
    # big-int operations instead of a Python loop over 32,768 bytes. Registers are
    # below 128, so in each byte (0x80 | a) - b keeps its top bit exactly when
    # a >= b and never borrows from the next byte.
    a_wins = (((a | _HIGH_BITS) - b) & _HIGH_BITS) >> 7
    mask = (a_wins << 8) - a_wins  # 0xff in the bytes where a >= b
    return b ^ ((a ^ b) & mask)


def _compressed(registers: bytearray) -> bytes:
    # With many visitors the registers are independent draws from one narrow
    # distribution (2.83 bits of entropy each): Huffman coding alone gets within 2 % of
    # that, where zlib's default string matching costs 20 % more, and time. Just past
    # the sparse limit nearly every register is 0 and the matching wins instead.
    mostly_empty = registers.count(0) > _REGISTERS * 7 // 8
    strategy = zlib.Z_DEFAULT_STRATEGY if mostly_empty else zlib.Z_HUFFMAN_ONLY
    compressor = zlib.compressobj(6, zlib.DEFLATED, 15, 9, strategy)
    return compressor.compress(registers) + compressor.flush()


def _decode_visitors(data: bytes) -> tuple[int, array[int] | bytearray]:
    if data[0] != _VISITORS_VERSION:
        raise ValueError(
            f"unknown visitors format version {data[0]} (this version of "
            f"flask-statistics reads version {_VISITORS_VERSION}); upgrade it to read "
            f"rollups written by a newer one"
        )
    kind, payload = data[1] if len(data) > 1 else None, data[2:]
    if kind == _SPARSE:
        if len(payload) % 8:
            raise ValueError(f"corrupt visitors sketch: {len(payload)} bytes of hashes")
        hashes = array(_HASH_CODE)
        hashes.frombytes(payload)
        if not _LITTLE:
            hashes.byteswap()
        return _SPARSE, hashes
    if kind == _DENSE:
        inflater = zlib.decompressobj()
        try:
            registers = bytearray(inflater.decompress(payload, _REGISTERS + 1))
        except zlib.error as exc:
            raise ValueError(f"corrupt visitors sketch: {exc}") from None
        complete = len(registers) == _REGISTERS and inflater.eof
        if not complete or registers.translate(None, _VALID_REGISTERS):
            raise ValueError("corrupt visitors sketch: the registers do not decode")
        return _DENSE, registers
    raise ValueError(f"corrupt visitors sketch: unknown kind {kind!r}")


def _estimate(registers: bytearray) -> float:
    # Ertl (2017), algorithm 6, from the number of registers holding each rank.
    m = _REGISTERS
    counts = [registers.count(rank) for rank in range(_TOP_RANK + 1)]
    z = m * _tau(1 - counts[_TOP_RANK] / m)
    for rank in range(_SUFFIX_BITS, 0, -1):
        z = 0.5 * (z + counts[rank])
    z += m * _sigma(counts[0] / m)
    return _ALPHA_INF * m * m / z


def _sigma(x: float) -> float:
    if x == 1.0:
        return _INF
    y = 1.0
    z = x
    while True:
        x *= x
        previous = z
        z += x * y
        y += y
        if z == previous:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y = 1.0
    z = 1 - x
    while True:
        x = math.sqrt(x)
        previous = z
        y *= 0.5
        z -= (1 - x) ** 2 * y
        if z == previous:
            return z / 3
