"""The compiled sample scan (:mod:`fleetprof.formats.pprof_scan`) must decode exactly what
the exact field walk of :mod:`fleetprof.formats.pprof` decodes, for every valid encoding
(packed, unpacked, mixed, unknown fields, labels), decline (None) whatever is malformed,
and group identical stacks exactly."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

import fleetprof.formats.pprof as P
from fleetprof.formats.pprof_scan import (
    dedupe_stacks,
    label_sets,
    label_values,
    scan_samples,
    table_spans,
)
from fleetprof.formats.proto import pprof_view_pb2
from tests.formats.pprof_testutil import _varint, fixture_files, pprof_messages, serialize_unpacked


class _Table:
    """A location table as the sample decoders see it: ids, one frame each."""

    def __init__(self, ids) -> None:
        self.ids = np.asarray(list(ids), dtype=np.uint64)
        self.frame_offsets = np.arange(len(self.ids) + 1, dtype=np.int64)


CRAFTED_IDS = (1, 3, 5, 7, 18, 300)
"""Location ids of the crafted samples below (not 1 .. L: resolved through a hash table)."""


def _table_of(raw: bytes) -> _Table:
    ids = [loc.id for loc in pprof_view_pb2.ProfileView.FromString(raw).location]
    if ids and not any(ids):
        ids = list(range(1, len(ids) + 1))
    return _Table(ids or CRAFTED_IDS)


def _walked(raw: bytes, ntypes: int) -> P._Samples:
    return P._samples(pprof_view_pb2.ProfileView.FromString(raw), ntypes, P.DEFAULT_LIMITS, _table_of(raw))


def _scanned(raw: bytes, ntypes: int, table: _Table | None = None):
    buf = np.frombuffer(raw, dtype=np.uint8)
    spans = table_spans(buf)
    assert spans is not None
    t = table or _table_of(raw)
    return scan_samples(buf, spans[0][0], spans[0][1], ntypes, t.ids, t.frame_offsets)


def _labels(owner, rows) -> list[tuple]:
    return sorted(zip(np.asarray(owner).tolist(), [tuple(r) for r in np.asarray(rows).tolist()], strict=True))


def _assert_same(raw: bytes, ntypes: int) -> None:
    got = _scanned(raw, ntypes)
    assert got is not None
    loc_offsets, loc_index, values, owner, lab, frames, deepest = got
    want = _walked(raw, ntypes)
    assert loc_offsets.tolist() == want.loc_offsets.tolist()
    assert loc_index.tolist() == want.loc_index.tolist()
    assert values.tolist() == want.values.tolist()
    assert _labels(owner, lab) == _labels(want.label_owner, want.labels)
    assert (frames, deepest) == (want.frames, want.deepest)


@settings(max_examples=60, deadline=None)
@given(pprof_messages(), st.booleans())
def test_scan_equals_walk(p, unpacked: bool) -> None:
    raw = serialize_unpacked(p) if unpacked else p.SerializeToString()
    _assert_same(raw, len(p.sample_type))


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: p.name)
def test_scan_equals_walk_on_fixtures(path) -> None:
    from fleetprof.formats.errors import maybe_gunzip

    raw = maybe_gunzip(path.read_bytes(), "pprof", P.DEFAULT_LIMITS)
    try:
        view = pprof_view_pb2.ProfileView.FromString(raw)
    except DecodeError:  # a malformed fixture: the decoder must reject it cleanly
        with pytest.raises(P.ProfileFormatError):
            P.decode_pprof(raw)
        return
    if _scanned(raw, len(view.sample_type)) is None:
        with pytest.raises(P.ProfileFormatError):  # declined: the exact walk must reject it too
            _walked(raw, len(view.sample_type))
    else:
        _assert_same(raw, len(view.sample_type))


def _sample(body: bytes) -> bytes:
    return b"\x12" + _varint(len(body)) + body


def test_mixed_packed_unpacked_unknown_fields_and_repeated_label_fields() -> None:
    packed = b"\x0a" + _varint(3) + _varint(5) + _varint(300)  # location ids 5, 300 (packed)
    single = b"\x08" + _varint(7)  # location id 7 (unpacked), after the packed ones
    unknown = b"\x38" + _varint(99) + b"\x41" + bytes(8) + b"\x4a\x02ab" + b"\x55" + bytes(4)
    label = b"\x08\x01\x10\x02\x10\x03" + b"\x30\x09"  # str twice: the last (3) wins; unknown field 6
    body = packed + unknown + single + b"\x10" + _varint((1 << 64) - 5) + b"\x1a" + _varint(len(label)) + label
    raw = _sample(body) + _sample(b"\x10\x04")
    loc_offsets, loc_index, values, owner, lab, frames, deepest = _scanned(raw, 1)
    assert loc_offsets.tolist() == [0, 3, 3] and (frames, deepest) == (3, 3)
    assert np.array(CRAFTED_IDS)[loc_index].tolist() == [5, 300, 7]
    assert values.tolist() == [[-5], [4]]
    assert owner.tolist() == [0] and lab.tolist() == [[1, 3, 0, 0]]
    _assert_same(raw, 1)


@pytest.mark.parametrize(
    "raw",
    [
        _sample(b"\x08"),  # truncated varint
        _sample(b"\x0a\x05\x01"),  # packed field longer than the sample
        _sample(b"\x0a\x02\x01\x81"),  # packed field ending inside a varint
        _sample(b"\x10\x01\x10\x02"),  # two values for one sample type
        _sample(b"\x08\x01"),  # no value
        _sample(b"\x1d\x00\x00\x00\x00\x10\x01"),  # label with the wrong wire type
        _sample(b"\x1a\x02\x09\x00" + b"\x10\x01"),  # label key with the wrong wire type
        _sample(b"\x0b\x10\x01"),  # a group start (wire type 3)
        _sample(b"\x08" + b"\xff" * 10 + b"\x01\x10\x01"),  # an 11-byte varint
    ],
)
def test_malformed_samples_are_declined(raw: bytes) -> None:
    assert _scanned(raw, 1) is None


def test_malformed_top_level_has_no_spans() -> None:
    assert table_spans(np.frombuffer(b"\x12\x05\x01", dtype=np.uint8)) is None
    assert table_spans(np.frombuffer(b"\x0f", dtype=np.uint8)) is None  # wire type 7


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(1, 4), max_size=4), st.integers(0, 2), st.integers(-50, 50)), max_size=60))
def test_dedupe_groups_exactly(rows) -> None:
    lengths = [len(r[0]) for r in rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    elems = np.array([e for r in rows for e in r[0]], dtype=np.int64)
    extra = np.array([r[1] for r in rows], dtype=np.int64)
    values = np.array([[r[2], 1] for r in rows], dtype=np.int64).reshape(-1, 2)
    new_off, new_elems, summed, counts, first = dedupe_stacks(offsets, elems, extra, values)
    want: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for stack, lab, v in rows:
        want[(tuple(stack), lab)][0] += v
        want[(tuple(stack), lab)][1] += 1
    got = {}
    for g, f in enumerate(first.tolist()):
        got[(tuple(new_elems[new_off[g] : new_off[g + 1]].tolist()), int(extra[f]))] = [int(summed[g, 0]), int(counts[g])]
        assert int(summed[g, 1]) == int(counts[g])
    assert got == dict(want)


# one label: (key, str, num, num_unit) over a 6-entry string table
LABEL = st.tuples(st.integers(1, 5), st.integers(0, 3), st.sampled_from([0, 0, 7, -7, 2**62]), st.integers(0, 2))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(LABEL, max_size=4), min_size=1, max_size=25), st.booleans())
def test_label_sets_group_samples_by_their_label_set(samples, shuffled) -> None:
    nstr = 6
    owner = np.array([s for s, labs in enumerate(samples) for _ in labs], dtype=np.int64)
    lab = np.array([lb for labs in samples for lb in labs], dtype=np.int64).reshape(-1, 4)
    if shuffled:  # labels need not arrive grouped by sample
        order = np.random.default_rng(len(owner)).permutation(len(owner))
        owner, lab = owner[order], lab[order]

    def text(k, sv, num, unit):  # the pair a label stands for, or None when it is ignored
        if sv:
            return (k, f"s{sv}")
        if num or unit:
            return (k, f"n{num}u{unit}")
        return None

    want = [sorted({p for p in (text(*lb) for lb in labs) if p is not None}) for labs in samples]  # repeats count once
    got = label_values(owner, lab, nstr)
    if not any(want):
        assert got is None
        return
    assert got is not None
    owner, key, vid, pairs = got
    assert (np.diff(owner) >= 0).all()
    nv = nstr + len(pairs)
    label_index, set_off, set_codes = label_sets(owner, key * nv + vid, len(samples))

    def decoded(g):
        out = []
        for c in set_codes[set_off[g] : set_off[g + 1]].tolist():
            k, v = divmod(c, nv)
            out.append((k, f"s{v}" if v < nstr else "n{}u{}".format(*pairs[v - nstr].tolist())))
        assert len(set(out)) == len(out)  # distinct
        return sorted(out)

    assert len({tuple(decoded(g)) for g in range(len(set_off) - 1)}) == len(set_off) - 1  # sets are distinct
    for s, w in enumerate(want):
        assert (label_index[s] == 0) == (not w)
        if w:
            assert decoded(label_index[s] - 1) == w


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 3), min_size=1, max_size=6),
    st.lists(st.lists(st.integers(0, 8), max_size=8), max_size=20),
    st.sampled_from([0, 1, 2**62]),
)
def test_scan_resolves_location_ids_like_the_numpy_path(frames_per_loc, stacks, id_base) -> None:
    nloc = len(frames_per_loc)
    table = _Table(id_base + 7 * i + 1 if id_base != 1 else i + 1 for i in range(nloc))  # 1 .. L when id_base == 1
    table.frame_offsets = np.concatenate([[0], np.cumsum(frames_per_loc)]).astype(np.int64)
    # reference ids; an index >= nloc stands for an id missing from the table
    refs = [[int(table.ids[i]) if i < nloc else 2**63 + i for i in s] for s in stacks]
    raw = b"".join(_sample(b"\x0a" + _varint(len(b"".join(map(_varint, r)))) + b"".join(map(_varint, r)) + b"\x10\x01") for r in refs)
    got = _scanned(raw, 1, table)
    if any(i >= nloc for s in stacks for i in s):
        assert got is None  # an unknown id: declined (the exact path names it)
        return
    assert got is not None
    loc_offsets, loc_index, _, _, _, frames, deepest = got
    flat = np.array([x for r in refs for x in r], dtype=np.uint64)
    assert loc_index.tolist() == P._resolve_locations(table.ids, flat, loc_offsets, np.arange(len(refs))).tolist()
    depths = [sum(frames_per_loc[i] for i in s) for s in stacks]
    assert (frames, deepest) == (sum(depths), max(depths, default=0))


def test_declined_samples_get_the_exact_error_from_the_walk() -> None:
    from fleetprof.formats.proto import profile_pb2

    p = profile_pb2.Profile()
    p.string_table.extend(["", "cpu", "nanoseconds", "f"])
    p.sample_type.add(type=1, unit=2)
    p.sample_type.add(type=1, unit=2)
    p.function.add(id=1, name=3)
    p.location.add(id=1).line.add(function_id=1)
    for i in range(4):
        p.sample.add(location_id=[1], value=[1, 2] if i != 2 else [1])
    raw = p.SerializeToString()
    assert _scanned(raw, 2) is None
    with pytest.raises(P.ProfileFormatError) as e:
        P.decode_pprof(raw)
    assert e.value.where == "sample[2].value" and "1 values for 2 sample types" in e.value.reason


def _profile(*samples: bytes, ntypes: int = 1) -> bytes:
    """A profile with ``ntypes`` sample types, locations 3 and 18 and the raw samples."""
    from fleetprof.formats.proto import profile_pb2

    p = profile_pb2.Profile()
    p.string_table.extend(["", "cpu", "ns", "f"])
    for _ in range(ntypes):
        p.sample_type.add(type=1, unit=2)
    p.function.add(id=1, name=3)
    for lid in (3, 18):
        p.location.add(id=lid).line.add(function_id=1)
    return p.SerializeToString() + b"".join(_sample(s) for s in samples)


@pytest.mark.parametrize(
    "samples",
    [
        (b"\x10\x05\x0a\x00",),  # value 5, then an EMPTY packed location_id field
        (b"\x10\x05\x0a\x00", b"\x10\x07\x08\x03"),  # ... followed by a sample at location 3
        (b"\x12\x00\x10\x05",),  # an empty packed value field, then value 5
        (b"\x0a\x00\x10\x05\x82\x01\x03\xaa\xbb\xcc",),  # empty packed field, unknown field 16
        (b"\x10\x05\x3b\x3c",),  # an (empty) unknown group
        (b"\x10\x05\x3b\x08\x01\x43\x44\x3c",),  # nested unknown groups (7 holding 8)
        (b"\x0a\x00" * 1000 + b"\x08\x03\x10\x01",),  # many empty packed fields, then id 3
    ],
)
def test_valid_edge_encodings_decode_as_upb_does(samples: tuple[bytes, ...]) -> None:
    from fleetprof.formats.proto import profile_pb2

    raw = _profile(*samples)
    ref = profile_pb2.Profile.FromString(raw)
    got = _scanned(raw, 1)
    assert got is not None
    loc_offsets, loc_index, values = got[:3]
    ids = np.array([loc.id for loc in ref.location])
    for i, smp in enumerate(ref.sample):
        assert ids[loc_index[loc_offsets[i] : loc_offsets[i + 1]]].tolist() == list(smp.location_id)
        assert values[i].tolist() == list(smp.value)
    prof = P.decode_pprof(raw)  # end to end, no crash, the same totals
    assert int(prof.samples["v0"].sum()) == sum(v for smp in ref.sample for v in smp.value)


@pytest.mark.parametrize(
    "sample",
    [
        b"\x10\x05\x00\x09",  # field number 0
        b"\x10\x05" + _varint(((1 << 33) << 3) | 0) + b"\x01",  # a tag beyond 32 bits
        b"\x10\x05\x3b\x44",  # a group closed by another field's end tag
        b"\x10\x05\x3c",  # an end-group tag without a group
        b"\x10\x05\x3b\x08\x01",  # an unterminated group
    ],
)
def test_malformed_tags_and_groups_are_errors(sample: bytes) -> None:
    raw = _profile(sample)
    assert _scanned(raw, 1) is None
    with pytest.raises(P.ProfileFormatError):
        P.decode_pprof(raw)
