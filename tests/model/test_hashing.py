"""The batched hashing agrees with the one-at-a-time contract functions and hashlib."""

from __future__ import annotations

import hashlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetprof.model.blake2b import digests64
from fleetprof.model.hashing import (
    frame_id,
    frame_ids,
    frame_ids_utf8,
    labels_id,
    labels_ids,
    labels_ids_utf8,
)

TEXT = st.text(st.one_of(st.characters(), st.sampled_from(["\ud800", "\udfff", "é", "\0", "🔥", "\xff"])), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT, st.integers(-5, 10**12)), max_size=20))
def test_frame_ids_match_frame_id(frames):
    names, files, lines = [f[0] for f in frames], [f[1] for f in frames], [f[2] for f in frames]
    assert frame_ids(names, files, lines).tolist() == [frame_id(n, f, ln) for n, f, ln in frames]
    assert frame_ids(names, files).tolist() == [frame_id(n, f) for n, f, _ in frames]


ASCII = st.text(st.characters(max_codepoint=127), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.one_of(st.tuples(TEXT, TEXT), st.tuples(ASCII, ASCII)), max_size=4), max_size=12))
def test_labels_ids_match_labels_id(sets):
    assert labels_ids(sets).tolist() == [labels_id(ls) for ls in sets]


def test_labels_ids_with_texts_like_the_separator():
    # a "\xff" inside a label is UTF-8 (two bytes), unlike the 0xff between pairs
    sets = [[("a\xff", "b")], [("a", "b"), ("c", "\xff")], [("k", "v"), ("x", "y")], []]
    assert labels_ids(sets).tolist() == [labels_id(ls) for ls in sets]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=400), max_size=12), st.sampled_from([0, 111, 127, 128, 129, 255, 256, 257]))
def test_digests64_equal_hashlib(messages, extra_len):
    messages = [*messages, (bytes(range(256)) * 2)[:extra_len]]  # lengths around the 128-byte block
    offsets = np.zeros(len(messages) + 1, dtype=np.int64)
    np.cumsum([len(m) for m in messages], out=offsets[1:])
    got = digests64(np.frombuffer(b"".join(messages), dtype=np.uint8), offsets)
    assert got.tolist() == [int.from_bytes(hashlib.blake2b(m, digest_size=8).digest(), "little") for m in messages]


def _spans(texts: list[str]):
    encoded = [t.encode("utf-8", "replace") for t in texts]
    ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)
    data = np.frombuffer(b"".join(encoded) + b"\0", dtype=np.uint8)  # never empty
    return data, ends - [len(e) for e in encoded], ends


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=10), st.data())
def test_frame_ids_utf8_match_frame_id(texts, data):
    texts = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]  # what a decoder holds
    idx = st.integers(0, len(texts) - 1)
    frames = data.draw(st.lists(st.tuples(idx, idx, st.sampled_from([0, 1, -7, 10**12, -(2**63), 2**63 - 1])), max_size=12))
    name, file, line = (np.array([f[k] for f in frames], dtype=np.int64) for k in range(3))
    got = frame_ids_utf8(_spans(texts), name, file, line)
    assert got.tolist() == [frame_id(texts[n], texts[f], ln) for n, f, ln in frames]
    assert frame_ids_utf8(_spans(texts), name, file).tolist() == [frame_id(texts[n], texts[f]) for n, f, _ in frames]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(TEXT, ASCII), min_size=1, max_size=8), st.data())
def test_labels_ids_utf8_match_labels_id(texts, data):
    texts = [t.encode("utf-8", "replace").decode("utf-8") for t in texts]
    idx = st.integers(0, len(texts) - 1)
    sets = data.draw(st.lists(st.lists(st.tuples(idx, idx), max_size=5), max_size=8))
    set_off = np.cumsum([0] + [len(s) for s in sets])
    keys = np.array([k for s in sets for k, _ in s], dtype=np.int64)
    vals = np.array([v for s in sets for _, v in s], dtype=np.int64)
    got = labels_ids_utf8(_spans(texts), set_off, keys, vals)
    assert got.tolist() == [labels_id([(texts[k], texts[v]) for k, v in s]) for s in sets]
