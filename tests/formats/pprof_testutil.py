"""Test helpers for the pprof codecs: fixture discovery, an independent reference reader
built on plain protobuf, and a hypothesis strategy of random valid pprof messages."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import strategies as st

from fleetprof.formats.proto import profile_pb2
from fleetprof.model import expand
from fleetprof.model.profile import Profile, frame_lookup

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / ".." / "shared" / "fixtures" / "pprof"
DATA = Path(__file__).resolve().parent / "data"


def fixture_files() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix != ".md")


def _lenient_profile_class():
    """``Profile`` with ``string_table`` as bytes (same wire format), so that the reference
    can read profiles holding invalid UTF-8, which proto3 strings reject."""
    fdp = descriptor_pb2.FileDescriptorProto()
    profile_pb2.DESCRIPTOR.CopyToProto(fdp)
    fdp.name = "lenient_profile.proto"
    fdp.package = "lenient.perftools.profiles"
    for msg in fdp.message_type:
        for f in msg.field:
            if f.type_name.startswith(".perftools.profiles."):
                f.type_name = ".lenient" + f.type_name
            if msg.name == "Profile" and f.name == "string_table":
                f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("lenient.perftools.profiles.Profile"))


LenientProfile = _lenient_profile_class()


def parse_reference(data: bytes):
    """The pprof message of ``data`` via plain protobuf (gunzipped by magic)."""
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    msg = LenientProfile()
    msg.ParseFromString(raw)
    return msg


def reference_totals(msg) -> list[int]:
    """Sum of ``sample.value[i]`` per sample type, straight from the message."""
    totals = [0] * len(msg.sample_type)
    for s in msg.sample:
        for i, v in enumerate(s.value):
            totals[i] += v
    return totals


GO_SHAPE = re.compile(r"\[go\.shape\..*\]")


def _text(msg, idx: int) -> str:
    return msg.string_table[idx].decode("utf-8", "replace")


def reference_stacks(msg, *, keep_lines: bool = False) -> Counter:
    """Independent expansion of every sample into root-first (name, file[, line]) frames
    and label pairs, summed per (stack, labels): value tuples as Counter of tuples."""
    fn = {(f.id or i + 1): f for i, f in enumerate(msg.function)} if all(f.id == 0 for f in msg.function) else {f.id: f for f in msg.function}
    positional_locs = len(msg.location) > 0 and all(loc.id == 0 for loc in msg.location)
    loc = {(i + 1 if positional_locs else loc.id): loc for i, loc in enumerate(msg.location)}
    positional_maps = len(msg.mapping) > 0 and all(m.id == 0 for m in msg.mapping)
    maps = {(i + 1 if positional_maps else m.id): m for i, m in enumerate(msg.mapping)}

    def addr_frame(location):
        m = maps.get(location.mapping_id)
        base = _text(msg, m.filename).rsplit("/", 1)[-1] if m is not None else ""
        if base:
            return (f"{base} 0x{location.address:x}", _text(msg, m.filename), 0)
        if location.address:
            return (f"0x{location.address:x}", "", 0)
        return ("<unknown>", "", 0)

    out: dict = {}
    for s in msg.sample:
        frames = []
        for lid in reversed(list(s.location_id)):
            location = loc[lid]
            if not location.line:
                frames.append(addr_frame(location))
                continue
            for ln in reversed(list(location.line)):
                if ln.function_id == 0:
                    frames.append(addr_frame(location))
                    continue
                f = fn[ln.function_id]
                name = _text(msg, f.name) or _text(msg, f.system_name) or addr_frame(location)[0]
                name = GO_SHAPE.sub("[...]", name)  # Go type parameters dropped (Pyroscope's rule)
                frames.append((name, _text(msg, f.filename), ln.line if keep_lines else 0))
        labels = []
        for lab in s.label:
            if lab.str:
                labels.append((_text(msg, lab.key), _text(msg, lab.str)))
            elif lab.num or lab.num_unit:
                unit = _text(msg, lab.num_unit)
                labels.append((_text(msg, lab.key), f"{lab.num} {unit}" if unit else f"{lab.num}"))
        key = (tuple(frames), tuple(sorted(set(labels))))  # a label set: a repeated pair counts once
        prev = out.get(key)
        vals = tuple(s.value)
        out[key] = vals if prev is None else tuple(a + b for a, b in zip(prev, vals, strict=True))
    return _nonzero(out)


def _nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if any(v)}


def profile_stacks(p: Profile, *, with_lines: bool = False) -> dict:
    """The decoded profile in the same shape as :func:`reference_stacks`."""
    ex = expand(p)
    names = frame_lookup(p, ex.frame_ids, "name") if len(ex.frame_ids) else np.array([], dtype=object)
    files = frame_lookup(p, ex.frame_ids, "file") if len(ex.frame_ids) else np.array([], dtype=object)
    lines = frame_lookup(p, ex.frame_ids, "line") if len(ex.frame_ids) else np.array([], dtype=np.int64)
    labsets: dict[int, list] = {}
    for lid, k, v in p.labels.iter_rows():
        labsets.setdefault(lid, []).append((k, v))
    vals = ex.samples.select(p.value_cols).rows() if p.value_cols else [()] * ex.samples.height
    labs = ex.samples["labels"].to_list()
    out: dict = {}
    for i in range(ex.samples.height):
        a, b = int(ex.offsets[i]), int(ex.offsets[i + 1])
        frames = tuple(
            (str(n), str(f), int(ln) if with_lines else 0) for n, f, ln in zip(names[a:b], files[a:b], lines[a:b], strict=True)
        )
        key = (frames, tuple(sorted(labsets.get(labs[i], []))))
        prev = out.get(key)
        out[key] = tuple(vals[i]) if prev is None else tuple(x + y for x, y in zip(prev, vals[i], strict=True))
    return _nonzero(out)


# ---------------------------------------------------------------------------------------
# random valid profiles

NAMES = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=8)


@st.composite
def pprof_messages(draw, max_samples: int = 30, max_depth: int = 40):
    """A random valid ``profile_pb2.Profile`` (ids in random order and sparse)."""
    strings: list[str] = [""]
    index: dict[str, int] = {"": 0}

    def s(text: str) -> int:
        if text not in index:
            index[text] = len(strings)
            strings.append(text)
        return index[text]

    p = profile_pb2.Profile()
    ntypes = draw(st.integers(1, 3))
    for i in range(ntypes):
        p.sample_type.add(type=s(f"t{i}" + draw(NAMES)), unit=s(draw(st.sampled_from(["count", "nanoseconds", "bytes"]))))
    nmap = draw(st.integers(0, 2))
    map_ids = draw(st.lists(st.integers(1, 2**40), min_size=nmap, max_size=nmap, unique=True))
    for mid in map_ids:
        p.mapping.add(id=mid, filename=s("/usr/lib/" + draw(NAMES) + ".so"))
    nfun = draw(st.integers(1, 12))
    fun_ids = draw(st.lists(st.integers(1, 2**40), min_size=nfun, max_size=nfun, unique=True))
    for fid in fun_ids:
        p.function.add(id=fid, name=s(draw(NAMES)), system_name=s(draw(NAMES)), filename=s(draw(NAMES)), start_line=draw(st.integers(0, 99)))
    nloc = draw(st.integers(1, 16))
    dense = draw(st.booleans())
    loc_ids = list(range(1, nloc + 1)) if dense else draw(st.lists(st.integers(1, 2**63), min_size=nloc, max_size=nloc, unique=True))
    for lid in loc_ids:
        loc = p.location.add(id=lid, address=draw(st.integers(0, 2**48)))
        if map_ids and draw(st.booleans()):
            loc.mapping_id = draw(st.sampled_from(map_ids))
        for _ in range(draw(st.integers(0, 3))):
            loc.line.add(function_id=draw(st.sampled_from(fun_ids)), line=draw(st.integers(0, 5000)))
    label_keys = [s(k) for k in ("thread", "span", "bytes")]
    for _ in range(draw(st.integers(0, max_samples))):
        smp = p.sample.add()
        smp.location_id.extend(draw(st.lists(st.sampled_from(loc_ids), max_size=max_depth)))
        smp.value.extend(draw(st.lists(st.integers(-(2**40), 2**40), min_size=ntypes, max_size=ntypes)))
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.booleans()):
                smp.label.add(key=draw(st.sampled_from(label_keys)), str=s(draw(NAMES)))
            else:
                smp.label.add(key=draw(st.sampled_from(label_keys)), num=draw(st.integers(-5, 10**6)), num_unit=draw(st.sampled_from([0, s("bytes")])))
    p.period = draw(st.integers(0, 10**9))
    p.time_nanos = draw(st.integers(0, 2**62))
    p.string_table.extend(strings)
    return p


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def serialize_unpacked(p) -> bytes:
    """Serialise ``p`` with samples' repeated scalars *unpacked* (one field per element,
    as proto2 writers do); protobuf readers must accept both encodings."""
    head = profile_pb2.Profile()
    head.CopyFrom(p)
    del head.sample[:]
    out = bytearray(head.SerializeToString())
    for s in p.sample:
        body = bytearray()
        for lid in s.location_id:
            body += b"\x08" + _varint(lid)
        for v in s.value:
            body += b"\x10" + _varint(v)
        for lab in s.label:
            lb = lab.SerializeToString()
            body += b"\x1a" + _varint(len(lb)) + lb
        out += b"\x12" + _varint(len(body)) + body
    return bytes(out)
