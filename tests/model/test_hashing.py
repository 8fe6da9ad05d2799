"""The vectorised frame hashing agrees with the one-frame contract function."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetprof.model.hashing import frame_id, frame_ids

TEXT = st.text(st.one_of(st.characters(), st.sampled_from(["\ud800", "\udfff", "é", "\0", "🔥"])), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT, st.integers(-5, 10**12)), max_size=20))
def test_frame_ids_match_frame_id(frames):
    names, files, lines = [f[0] for f in frames], [f[1] for f in frames], [f[2] for f in frames]
    assert frame_ids(names, files, lines).tolist() == [frame_id(n, f, ln) for n, f, ln in frames]
    assert frame_ids(names, files).tolist() == [frame_id(n, f) for n, f, _ in frames]
