"""The string table's UTF-8 spans: decoded like entry-by-entry decoding, spans equal to the
texts' encodings, canonical indices and numeric label values."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetprof.formats.pprof_strings import from_texts, string_table

# raw bytes (NUL too), valid UTF-8 (surrogates too), and UTF-8 cut inside a character
ENTRY = st.one_of(
    st.binary(max_size=8),
    st.text(max_size=4).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.text(min_size=1, max_size=4).map(lambda t: t.encode()[:-1]),
    st.sampled_from([b"", b"a", b"\xc3\xa9", b"a\0b"]),
)


def _on_the_wire(entries: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The entries inside a buffer with junk between them, and their spans."""
    out, starts = bytearray(), []
    for e in entries:
        out += b"\x32\x07"  # junk
        starts.append(len(out))
        out += e
    starts_a = np.array(starts, dtype=np.int64)
    return np.frombuffer(bytes(out), dtype=np.uint8), starts_a, starts_a + np.array([len(e) for e in entries], dtype=np.int64)


def _check(table, texts: list[str]) -> None:
    assert table.texts == texts
    data, starts, ends = table.spans
    assert [data[a:b].tobytes() for a, b in zip(starts, ends, strict=True)] == [t.encode("utf-8") for t in texts]


@settings(max_examples=300, deadline=None)
@given(st.lists(ENTRY, max_size=12))
def test_string_table_decodes_as_entry_by_entry(entries):
    texts = [e.decode("utf-8", "replace") for e in entries]
    table = string_table(*_on_the_wire(entries))
    _check(table, texts)
    first: dict[str, int] = {}
    assert table.canon().tolist() == [first.setdefault(t, i) for i, t in enumerate(texts)]
    assert table.empty().tolist() == [not t for t in texts]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["", "7", "bytes", "7 bytes", "é"]) | st.text(max_size=5), min_size=1, max_size=6),
    st.lists(st.tuples(st.sampled_from([0, 7, -7, 2**63 - 1, -(2**63)]), st.integers(0, 5)), max_size=6),
    st.booleans(),
)
def test_numeric_values_are_appended_spans(texts, pairs, canon_first):
    texts = ["", *(t.encode("utf-8", "replace").decode("utf-8") for t in texts)]
    table = from_texts(texts)
    if canon_first:  # the extension reuses the table's hashes
        table.canon()
    pairs = [(n, u % len(texts)) for n, u in pairs]
    ext = table.with_numeric(np.array([n for n, _ in pairs], dtype=np.int64), np.array([u for _, u in pairs], dtype=np.int64))
    want = texts + [f"{n} {texts[u]}" if u else f"{n}" for n, u in pairs]
    _check(ext, want)
    first: dict[str, int] = {}
    assert ext.canon().tolist() == [first.setdefault(t, i) for i, t in enumerate(want)]
