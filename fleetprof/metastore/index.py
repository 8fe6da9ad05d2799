"""The segment index: which immutable segment objects exist, for whom, when, in which state.

An entry (:class:`SegmentEntry`) describes one segment object: tenant, segment id (ULID-like,
time-sortable), compaction level (L0 = written by the ingest path), services and profile
types inside, the inclusive time range ``[min_time_ms, max_time_ms]``, the object key, its
size, the sample-row count, its state and a summary of its series' label sets (used to
answer label-names/values without reading segments).

States: ``live`` (queried), ``compacted`` (replaced by a higher-level segment; kept until
the workers garbage-collect it) and ``tombstoned`` (deleted by retention; the object may be
gone). Only ``live`` entries are returned by default.

Contract of every :class:`Index` implementation (both pass the same test module):

* ``add(entry)`` is conditional: it raises :class:`IndexConflict` if the segment id exists.
  When it returns, the entry is durable (SQLite: WAL with ``synchronous=FULL``, committed;
  DynamoDB: the write was acknowledged).
* ``query(tenant, start_ms, end_ms, ...)`` returns entries overlapping the time range,
  sorted by ``(min_time_ms, segment_id)``; reads are strongly consistent.
* ``set_state(tenant, id, expected, new)`` changes the state only if it currently is
  ``expected`` and reports whether it did.
* ``swap(tenant, new, old_ids)`` is the compaction switch: ``new`` becomes ``live`` and
  every still-``live`` old entry becomes ``compacted``. It is idempotent (re-running it
  after a crash or with the same arguments converges to the same state) and atomic where
  the backend allows (SQLite: one transaction; DynamoDB: one ``TransactWriteItems`` for up to
  99 olds, further olds in follow-up transactions after the new entry is live).
* ``delete(tenant, id)`` is idempotent. ``tenants()`` lists tenants with entries.

DynamoDB key design (the Pulumi stack creates exactly this table)::

    pk      = "tenant#<tenant>"                        (partition key)
    sk      = "seg#<level>#<min_time_ms:013d>#<segment_id>"  (sort key; "span#…" for span segments)
    gsi1pk  = "<tenant>#<state>"   gsi1sk = sk          (GSI "by_state", for workers)
    expires_at                                          (TTL, epoch seconds; set on tombstones)

plus two kinds of helper items in the same table (they lack ``gsi1pk`` so the GSI stays sparse):
``pk = "tenant#<tenant>", sk = "id#<segment_id>"`` pointing to the entry's ``sk`` (state
changes address an entry by id), and ``pk = "tenants", sk = "<tenant>"`` (tenant registry).
State changes are conditional writes (``#state = :expected``). Queries read the base table
with ``ConsistentRead`` so an acknowledged segment is visible to every replica at once.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

STATES = ("live", "compacted", "tombstoned")
KINDS = ("profiles", "spans")
"""What a segment holds: profile samples (:mod:`fleetprof.segment.format`) or trace spans
(:mod:`fleetprof.traces.format`). Queries select one kind (``kind=None``: every kind)."""
ALL_STATES = STATES
MAX_TIME_MS = 10**13 - 1

SERVICES_BUDGET_BYTES = 64 * 1024
"""What the distinct services of one segment (profiles or spans) may cost
(:func:`services_cost`): its index entry lists them, and a DynamoDB item holds at most
400 KB. The writers reject a call over it and flush a batch early rather than pass it;
compaction merges only segments whose services together stay within it
(:func:`budget_chunks`). See :data:`SERIES_BLOB_LIMIT` for the whole item's arithmetic."""
PROFILE_TYPES_BUDGET_BYTES = 16 * 1024
"""The same budget (:func:`services_cost` of the names) for an entry's distinct profile
types; a writer call over it is rejected, a batch flushed early, compaction cuts runs by it."""
SERVICE_OVERHEAD_BYTES = 8
"""Per name in :func:`services_cost`: DynamoDB's per-element overhead, rounded up."""


def services_cost(names: Iterable[str]) -> int:
    """Index-entry bytes of the distinct ``names`` (services or profile types): UTF-8 bytes
    plus :data:`SERVICE_OVERHEAD_BYTES` each."""
    return sum(len(s.encode("utf-8", "surrogatepass")) + SERVICE_OVERHEAD_BYTES for s in names)


def budget_chunks(entries: Sequence[Any], max_inputs: int, budget: int = SERVICES_BUDGET_BYTES,
                  types_budget: int = PROFILE_TYPES_BUDGET_BYTES) -> list[list[Any]]:
    """``entries`` in order, cut into runs of at most ``max_inputs`` whose services together
    cost at most ``budget`` and whose profile types at most ``types_budget``
    (:func:`services_cost`); an entry over a budget by itself forms a run of its own.
    Compaction merges one run into one output, so an output's entry never lists more
    than one writer call may."""
    out: list[list[Any]] = []
    run: list[Any] = []
    names: set[str] = set()
    types: set[str] = set()
    cost = tcost = 0
    for e in entries:
        new, tnew = set(e.services) - names, set(e.profile_types) - types
        extra, textra = services_cost(new), services_cost(tnew)
        if run and (len(run) >= max_inputs or cost + extra > budget or tcost + textra > types_budget):
            out.append(run)
            run, names, types, cost, tcost = [], set(), set(), 0, 0
            new, tnew = set(e.services), set(e.profile_types)
            extra, textra = services_cost(new), services_cost(tnew)
        run.append(e)
        names |= new
        types |= tnew
        cost += extra
        tcost += textra
    if run:
        out.append(run)
    return out


class IndexError_(RuntimeError):
    """The index failed or is unreachable."""


class IndexConflict(IndexError_):
    """A segment id already exists (``add`` is conditional)."""


class SwapConflict(IndexConflict):
    """``swap`` found an input no longer live while its new entry is not in place yet: a
    concurrent compactor or retention got there first. Nothing was changed; the caller
    discards its output (making it live too would count those samples twice)."""


@dataclass(frozen=True, eq=True)
class SegmentEntry:
    """One segment object as the index knows it (see module docstring)."""

    tenant: str
    segment_id: str
    level: int
    services: tuple[str, ...]
    profile_types: tuple[str, ...]
    min_time_ms: int
    max_time_ms: int
    key: str
    bytes: int
    samples: int
    state: str = "live"
    created_ms: int = 0
    series: tuple[dict[str, str], ...] = field(default_factory=tuple)
    """Label sets of the series inside (each includes ``service_name``); may be empty
    when ``series_complete`` is false (too many to summarise)."""
    series_complete: bool = True
    kind: str = "profiles"
    """One of :data:`KINDS`."""

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["services"] = list(self.services)
        d["profile_types"] = list(self.profile_types)
        d["series"] = [dict(s) for s in self.series]
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> SegmentEntry:
        return SegmentEntry(
            tenant=d["tenant"], segment_id=d["segment_id"], level=int(d["level"]),
            services=tuple(d["services"]), profile_types=tuple(d["profile_types"]),
            min_time_ms=int(d["min_time_ms"]), max_time_ms=int(d["max_time_ms"]), key=d["key"],
            bytes=int(d["bytes"]), samples=int(d["samples"]), state=d.get("state", "live"),
            created_ms=int(d.get("created_ms", 0)), series=tuple(dict(s) for s in d.get("series", ())),
            series_complete=bool(d.get("series_complete", True)), kind=d.get("kind", "profiles"),
        )


SERIES_BLOB_LIMIT = 256 * 1024
"""Compressed size above which an entry's series summary is dropped (DynamoDB items are
limited to 400 KB); readers then fall back to reading the segment.

The DynamoDB item of an entry stays under the 400 KB (409,600 bytes) item limit:
``series_z`` <= 262,144 bytes (this limit) + ``services`` <= 65,536 bytes
(:data:`SERVICES_BUDGET_BYTES`, 8 bytes per element included) + ``profile_types`` <=
16,384 bytes (:data:`PROFILE_TYPES_BUDGET_BYTES`) = 344,064 bytes, leaving 65,536 bytes
for the other attributes, which take under 2 KB: the tenant three times (<= 150 bytes
each, see :func:`fleetprof.segment.keys.validate_tenant`), the object key and the two
sort keys (< 300 bytes each), eight numbers, state, kind, one boolean and the attribute
names (< 200 bytes together)."""


def _pack_series(series: Sequence[dict[str, str]]) -> tuple[bytes, bool]:
    if isinstance(series, PackedSeries) and series.blob and len(series.blob) <= SERIES_BLOB_LIMIT:
        return series.blob, True  # read back from an index: already packed
    blob = zlib.compress(json.dumps([sorted(s.items()) for s in series], separators=(",", ":")).encode(), 6)
    if len(blob) > SERIES_BLOB_LIMIT:
        return zlib.compress(b"[]"), False
    return blob, True


def _unpack_series(blob: bytes | None) -> tuple[dict[str, str], ...]:
    if not blob:
        return ()
    return tuple(dict(map(tuple, s)) for s in json.loads(zlib.decompress(blob)))


class PackedSeries(Sequence[dict[str, str]]):
    """An entry's series summary as stored (compressed JSON), parsed on first use.

    Index reads return entries with this in ``series``: a query without label matchers
    (a flame graph over a service, found by the index's service filter) never looks at the
    summaries, and parsing thousands of them cost more than the rest of the index read.
    Behaves as the tuple of label dicts it holds (iteration, ``len``, indexing, equality
    with tuples); callers must not modify the dicts."""

    __slots__ = ("_blob", "_items")

    def __init__(self, blob: bytes | None) -> None:
        self._blob = blob
        self._items: tuple[dict[str, str], ...] | None = None

    @property
    def blob(self) -> bytes | None:
        """The stored (compressed) form."""
        return self._blob

    def _parsed(self) -> tuple[dict[str, str], ...]:
        items = self._items
        if items is None:  # two threads may both parse: they store equal tuples
            items = self._items = _unpack_series(self._blob)
        return items

    def mentions(self, text: str) -> bool:
        """Whether ``text`` occurs in the summary's JSON (a label name or value, or part of
        one): a cheap test that needs no parse; True may be a false alarm, False is sure."""
        if self._items is not None:
            return any(text in k or text in v for s in self._items for k, v in s.items())
        return bool(self._blob) and text.encode() in zlib.decompress(self._blob)

    def __len__(self) -> int:
        return len(self._parsed())

    def __getitem__(self, i: Any) -> Any:
        return self._parsed()[i]

    def __iter__(self) -> Iterator[dict[str, str]]:
        return iter(self._parsed())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedSeries):
            return self._blob == other._blob or self._parsed() == other._parsed()
        if isinstance(other, tuple):
            return self._parsed() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like the tuple of dicts it stands for

    def __repr__(self) -> str:
        return repr(self._parsed())

    def __deepcopy__(self, memo: dict[int, Any]) -> PackedSeries:
        return self  # immutable


@functools.lru_cache(maxsize=4096)
def _json_strings(text: str) -> tuple[str, ...]:
    """A JSON list of strings (services, profile types) as a tuple; the same few lists
    repeat across thousands of entries, so they are parsed once."""
    return tuple(json.loads(text))


def _check_kind(k: str) -> str:
    if k not in KINDS:
        raise ValueError(f"unknown segment kind {k!r} (one of {KINDS})")
    return k


def _check_state(s: str) -> str:
    if s not in STATES:
        raise ValueError(f"unknown segment state {s!r} (one of {STATES})")
    return s


@runtime_checkable
class Index(Protocol):
    """See the module docstring for the contract."""

    url: str

    def add(self, entry: SegmentEntry) -> None: ...

    def get(self, tenant: str, segment_id: str) -> SegmentEntry | None: ...

    def query(
        self,
        tenant: str,
        start_ms: int,
        end_ms: int,
        *,
        services: Iterable[str] | None = None,
        profile_types: Iterable[str] | None = None,
        states: Sequence[str] = ("live",),
        level: int | None = None,
        kind: str | None = "profiles",
    ) -> list[SegmentEntry]: ...

    def set_state(self, tenant: str, segment_id: str, expected: str, new: str) -> bool: ...

    def swap(self, tenant: str, new: SegmentEntry, old_ids: Sequence[str]) -> None: ...

    def delete(self, tenant: str, segment_id: str) -> None: ...

    def tenants(self) -> list[str]: ...

    def ping(self) -> None: ...


def _post_filter(
    entries: Iterable[SegmentEntry], services: Iterable[str] | None, profile_types: Iterable[str] | None
) -> list[SegmentEntry]:
    svc = set(services) if services is not None else None
    pts = set(profile_types) if profile_types is not None else None
    out = [
        e for e in entries
        if (svc is None or svc.intersection(e.services)) and (pts is None or pts.intersection(e.profile_types))
    ]
    out.sort(key=lambda e: (e.min_time_ms, e.segment_id))
    return out


# --------------------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    tenant TEXT NOT NULL,
    segment_id TEXT NOT NULL,
    level INTEGER NOT NULL,
    min_time_ms INTEGER NOT NULL,
    max_time_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    key TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    services TEXT NOT NULL,
    profile_types TEXT NOT NULL,
    series BLOB,
    series_complete INTEGER NOT NULL DEFAULT 1,
    kind TEXT NOT NULL DEFAULT 'profiles',
    PRIMARY KEY (tenant, segment_id)
);
CREATE INDEX IF NOT EXISTS segments_time ON segments (tenant, state, min_time_ms);
CREATE INDEX IF NOT EXISTS segments_key ON segments (key);
"""

_COLS = (
    "tenant, segment_id, level, min_time_ms, max_time_ms, state, key, bytes, samples, created_ms, "
    "services, profile_types, series, series_complete, kind"
)


class SqliteIndex:
    """Index in one SQLite file (WAL, ``synchronous=FULL``); safe across threads and processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.url = "sqlite://" + str(self.path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            self._conn.executescript(_SCHEMA)
            cols = {r[1] for r in self._conn.execute("PRAGMA table_info(segments)").fetchall()}
            if "kind" not in cols:  # an index file written before span segments existed
                self._conn.execute("ALTER TABLE segments ADD COLUMN kind TEXT NOT NULL DEFAULT 'profiles'")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @staticmethod
    def _row(e: SegmentEntry) -> tuple[Any, ...]:
        blob, complete = _pack_series(e.series)
        return (
            e.tenant, e.segment_id, e.level, e.min_time_ms, e.max_time_ms, _check_state(e.state), e.key, e.bytes,
            e.samples, e.created_ms, json.dumps(list(e.services)), json.dumps(list(e.profile_types)), blob,
            int(complete and e.series_complete), _check_kind(e.kind),
        )

    @staticmethod
    def _entry(r: Sequence[Any]) -> SegmentEntry:
        return SegmentEntry(
            tenant=r[0], segment_id=r[1], level=r[2], min_time_ms=r[3], max_time_ms=r[4], state=r[5], key=r[6],
            bytes=r[7], samples=r[8], created_ms=r[9], services=_json_strings(r[10]),
            profile_types=_json_strings(r[11]), series=PackedSeries(r[12]),  # type: ignore[arg-type]
            series_complete=bool(r[13]), kind=r[14],
        )

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise IndexError_(f"sqlite index {self.path}: {e}") from e

    def add(self, entry: SegmentEntry) -> None:
        try:
            with self._lock:
                self._conn.execute(f"INSERT INTO segments ({_COLS}) VALUES ({','.join('?' * 15)})", self._row(entry))
        except sqlite3.IntegrityError:
            raise IndexConflict(f"segment {entry.tenant}/{entry.segment_id} already exists") from None
        except sqlite3.Error as e:
            raise IndexError_(f"sqlite index {self.path}: {e}") from e

    def get(self, tenant: str, segment_id: str) -> SegmentEntry | None:
        rows = self._exec(f"SELECT {_COLS} FROM segments WHERE tenant=? AND segment_id=?", (tenant, segment_id))
        return self._entry(rows[0]) if rows else None

    def query(
        self,
        tenant: str,
        start_ms: int,
        end_ms: int,
        *,
        services: Iterable[str] | None = None,
        profile_types: Iterable[str] | None = None,
        states: Sequence[str] = ("live",),
        level: int | None = None,
        kind: str | None = "profiles",
    ) -> list[SegmentEntry]:
        states = [_check_state(s) for s in states]
        sql = (
            f"SELECT {_COLS} FROM segments WHERE tenant=? AND min_time_ms<=? AND max_time_ms>=? "
            f"AND state IN ({','.join('?' * len(states))})"
        )
        args: list[Any] = [tenant, end_ms, start_ms, *states]
        if level is not None:
            sql += " AND level=?"
            args.append(level)
        if kind is not None:
            sql += " AND kind=?"
            args.append(_check_kind(kind))
        rows = self._exec(sql, args)
        return _post_filter((self._entry(r) for r in rows), services, profile_types)

    def set_state(self, tenant: str, segment_id: str, expected: str, new: str) -> bool:
        _check_state(expected), _check_state(new)
        with self._lock:
            try:
                cur = self._conn.execute(
                    "UPDATE segments SET state=? WHERE tenant=? AND segment_id=? AND state=?",
                    (new, tenant, segment_id, expected),
                )
            except sqlite3.Error as e:
                raise IndexError_(f"sqlite index {self.path}: {e}") from e
            return cur.rowcount == 1

    def swap(self, tenant: str, new: SegmentEntry, old_ids: Sequence[str]) -> None:
        if new.tenant != tenant:
            raise ValueError("swap: new entry belongs to another tenant")
        new = replace(new, state="live")
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    ids = list(dict.fromkeys(i for i in old_ids if i != new.segment_id))
                    present = self._conn.execute(
                        "SELECT 1 FROM segments WHERE tenant=? AND segment_id=?", (tenant, new.segment_id)
                    ).fetchone()
                    if present is None and ids:
                        live = 0
                        for chunk in range(0, len(ids), 500):
                            part = ids[chunk:chunk + 500]
                            live += self._conn.execute(
                                f"SELECT COUNT(*) FROM segments WHERE tenant=? AND state='live' "
                                f"AND segment_id IN ({','.join('?' * len(part))})",
                                (tenant, *part),
                            ).fetchone()[0]
                        if live != len(ids):
                            raise SwapConflict(f"swap {tenant}/{new.segment_id}: {len(ids) - live} input(s) no longer live")
                    self._conn.execute(
                        f"INSERT OR IGNORE INTO segments ({_COLS}) VALUES ({','.join('?' * 15)})", self._row(new)
                    )
                    for chunk in range(0, len(ids), 500):
                        part = ids[chunk:chunk + 500]
                        self._conn.execute(
                            f"UPDATE segments SET state='compacted' WHERE tenant=? AND state='live' "
                            f"AND segment_id IN ({','.join('?' * len(part))})",
                            (tenant, *part),
                        )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise IndexError_(f"sqlite index {self.path}: {e}") from e

    def delete(self, tenant: str, segment_id: str) -> None:
        self._exec("DELETE FROM segments WHERE tenant=? AND segment_id=?", (tenant, segment_id))

    def tenants(self) -> list[str]:
        return [r[0] for r in self._exec("SELECT DISTINCT tenant FROM segments ORDER BY tenant")]

    def ping(self) -> None:
        self._exec("SELECT 1")

    def __repr__(self) -> str:
        return f"SqliteIndex({str(self.path)!r})"


# --------------------------------------------------------------------------------------
# DynamoDB
# --------------------------------------------------------------------------------------


_SK_PREFIX = {"profiles": "seg#", "spans": "span#"}


def dynamo_sk(level: int, min_time_ms: int, segment_id: str, kind: str = "profiles") -> str:
    """Sort key of a segment entry (see the key design in the module docstring; span
    segments use the prefix ``span#`` instead of ``seg#``)."""
    return f"{_SK_PREFIX[_check_kind(kind)]}{int(level)}#{int(min_time_ms):013d}#{segment_id}"


def dynamo_table_spec(table: str) -> dict[str, Any]:
    """``create_table`` arguments for the documented key design (tests and tools)."""
    return {
        "TableName": table,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "by_state",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


TOMBSTONE_TTL_S = 7 * 24 * 3600


class DynamoIndex:
    """Index in a DynamoDB table with the documented key design (``dynamodb://table``)."""

    def __init__(self, table: str, *, client: Any = None) -> None:
        self.table = table
        self.url = f"dynamodb://{table}"
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            from fleetprof.storage.aws import client

            self._client = client("dynamodb")
        return self._client

    # -- item codec ------------------------------------------------------------------
    @staticmethod
    def _item(e: SegmentEntry) -> dict[str, Any]:
        sk = dynamo_sk(e.level, e.min_time_ms, e.segment_id, e.kind)
        blob, complete = _pack_series(e.series)
        item: dict[str, Any] = {
            "pk": {"S": f"tenant#{e.tenant}"}, "sk": {"S": sk},
            "gsi1pk": {"S": f"{e.tenant}#{_check_state(e.state)}"}, "gsi1sk": {"S": sk},
            "tenant": {"S": e.tenant}, "segment_id": {"S": e.segment_id}, "level": {"N": str(e.level)},
            "services": {"L": [{"S": s} for s in e.services]},
            "profile_types": {"L": [{"S": s} for s in e.profile_types]},
            "min_time_ms": {"N": str(e.min_time_ms)}, "max_time_ms": {"N": str(e.max_time_ms)},
            "key": {"S": e.key}, "bytes": {"N": str(e.bytes)}, "samples": {"N": str(e.samples)},
            "state": {"S": e.state}, "created_ms": {"N": str(e.created_ms)},
            "series_z": {"B": blob}, "series_complete": {"BOOL": bool(complete and e.series_complete)},
            "kind": {"S": e.kind},
        }
        return item

    @staticmethod
    def _entry(it: dict[str, Any]) -> SegmentEntry:
        return SegmentEntry(
            tenant=it["tenant"]["S"], segment_id=it["segment_id"]["S"], level=int(it["level"]["N"]),
            services=tuple(x["S"] for x in it["services"]["L"]),
            profile_types=tuple(x["S"] for x in it["profile_types"]["L"]),
            min_time_ms=int(it["min_time_ms"]["N"]), max_time_ms=int(it["max_time_ms"]["N"]), key=it["key"]["S"],
            bytes=int(it["bytes"]["N"]), samples=int(it["samples"]["N"]), state=it["state"]["S"],
            created_ms=int(it["created_ms"]["N"]), series=PackedSeries(it.get("series_z", {}).get("B")),  # type: ignore[arg-type]
            series_complete=bool(it.get("series_complete", {}).get("BOOL", True)),
            kind=it.get("kind", {}).get("S", "profiles"),
        )

    def _pointer(self, tenant: str, segment_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"tenant#{tenant}"}, "sk": {"S": f"id#{segment_id}"}}

    def _call(self, op: str, **kw: Any) -> Any:
        try:
            return getattr(self.client, op)(**kw)
        except Exception as e:
            if _is_condition_failure(e):
                raise
            raise IndexError_(f"dynamodb {self.table} {op}: {e}") from e

    def _sk_of(self, tenant: str, segment_id: str) -> str | None:
        r = self._call("get_item", TableName=self.table, Key=self._pointer(tenant, segment_id), ConsistentRead=True)
        it = r.get("Item")
        return it["ref"]["S"] if it else None

    # -- API -------------------------------------------------------------------------
    def add(self, entry: SegmentEntry) -> None:
        item = self._item(entry)
        ptr = self._pointer(entry.tenant, entry.segment_id) | {"ref": item["sk"]}
        cond = "attribute_not_exists(pk)"
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": cond}},
                    {"Put": {"TableName": self.table, "Item": ptr, "ConditionExpression": cond}},
                ],
            )
        except Exception as e:
            if _is_condition_failure(e):
                raise IndexConflict(f"segment {entry.tenant}/{entry.segment_id} already exists") from None
            raise
        self._register_tenant(entry.tenant)

    def _register_tenant(self, tenant: str) -> None:
        self._call("put_item", TableName=self.table, Item={"pk": {"S": "tenants"}, "sk": {"S": tenant}})

    def get(self, tenant: str, segment_id: str) -> SegmentEntry | None:
        sk = self._sk_of(tenant, segment_id)
        if sk is None:
            return None
        r = self._call(
            "get_item", TableName=self.table, Key={"pk": {"S": f"tenant#{tenant}"}, "sk": {"S": sk}}, ConsistentRead=True
        )
        return self._entry(r["Item"]) if "Item" in r else None

    def query(
        self,
        tenant: str,
        start_ms: int,
        end_ms: int,
        *,
        services: Iterable[str] | None = None,
        profile_types: Iterable[str] | None = None,
        states: Sequence[str] = ("live",),
        level: int | None = None,
        kind: str | None = "profiles",
    ) -> list[SegmentEntry]:
        states = [_check_state(s) for s in states]
        names = {"#st": "state", "#mx": "max_time_ms", "#mn": "min_time_ms"}
        values: dict[str, Any] = {
            ":pk": {"S": f"tenant#{tenant}"}, ":start": {"N": str(int(start_ms))}, ":end": {"N": str(int(end_ms))},
        }
        values |= {f":s{i}": {"S": s} for i, s in enumerate(states)}
        filt = f"#mx >= :start AND #mn <= :end AND #st IN ({', '.join(f':s{i}' for i in range(len(states)))})"
        out: list[SegmentEntry] = []
        for k in KINDS if kind is None else (_check_kind(kind),):
            pre = _SK_PREFIX[k]
            if level is None:
                kc = "pk = :pk AND begins_with(sk, :pre)"
                vals = values | {":pre": {"S": pre}}
            else:
                kc = "pk = :pk AND sk BETWEEN :lo AND :hi"
                hi = f"{pre}{int(level)}#{max(0, min(int(end_ms), MAX_TIME_MS)):013d}#\uffff"
                vals = values | {":lo": {"S": f"{pre}{int(level)}#"}, ":hi": {"S": hi}}
            kw: dict[str, Any] = {
                "TableName": self.table, "KeyConditionExpression": kc, "FilterExpression": filt,
                "ExpressionAttributeNames": names, "ExpressionAttributeValues": vals, "ConsistentRead": True,
            }
            while True:
                r = self._call("query", **kw)
                out.extend(self._entry(it) for it in r.get("Items", []))
                if "LastEvaluatedKey" not in r:
                    break
                kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]
        return _post_filter(out, services, profile_types)

    def _state_update(self, tenant: str, sk: str, expected: str, new: str) -> dict[str, Any]:
        upd: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"pk": {"S": f"tenant#{tenant}"}, "sk": {"S": sk}},
            "UpdateExpression": "SET #st = :new, gsi1pk = :g",
            "ConditionExpression": "#st = :exp",
            "ExpressionAttributeNames": {"#st": "state"},
            "ExpressionAttributeValues": {
                ":new": {"S": new}, ":exp": {"S": expected}, ":g": {"S": f"{tenant}#{new}"},
            },
        }
        if new == "tombstoned":
            upd["UpdateExpression"] += ", expires_at = :ttl"
            upd["ExpressionAttributeValues"][":ttl"] = {"N": str(int(time.time()) + TOMBSTONE_TTL_S)}
        return upd

    def set_state(self, tenant: str, segment_id: str, expected: str, new: str) -> bool:
        _check_state(expected), _check_state(new)
        sk = self._sk_of(tenant, segment_id)
        if sk is None:
            return False
        try:
            self._call("update_item", **self._state_update(tenant, sk, expected, new))
        except Exception as e:
            if _is_condition_failure(e):
                return False
            raise
        return True

    def swap(self, tenant: str, new: SegmentEntry, old_ids: Sequence[str]) -> None:
        if new.tenant != tenant:
            raise ValueError("swap: new entry belongs to another tenant")
        new = replace(new, state="live")
        olds = [i for i in dict.fromkeys(old_ids) if i != new.segment_id]
        for _attempt in range(5):
            actions: list[dict[str, Any]] = []
            existing = self.get(tenant, new.segment_id)
            if existing is None:
                item = self._item(new)
                cond = "attribute_not_exists(pk)"
                actions.append({"Put": {"TableName": self.table, "Item": item, "ConditionExpression": cond}})
                ptr = self._pointer(tenant, new.segment_id) | {"ref": item["sk"]}
                actions.append({"Put": {"TableName": self.table, "Item": ptr, "ConditionExpression": cond}})
            for oid in olds:
                e = self.get(tenant, oid)
                if e is not None and e.state == "live":
                    sk = dynamo_sk(e.level, e.min_time_ms, e.segment_id, e.kind)
                    actions.append({"Update": self._state_update(tenant, sk, "live", "compacted")})
                elif existing is None:
                    raise SwapConflict(f"swap {tenant}/{new.segment_id}: input {oid} is no longer live")
            try:
                # First chunk carries the new entry with up to 98 olds: atomic switch.
                for i in range(0, len(actions), 100):
                    if actions[i:i + 100]:
                        self._call("transact_write_items", TransactItems=actions[i:i + 100])
            except Exception as e:
                if _is_condition_failure(e):
                    continue  # raced with another writer: recompute and retry
                raise
            self._register_tenant(tenant)
            return
        raise IndexError_(f"swap {tenant}/{new.segment_id}: too many concurrent conflicts")

    def delete(self, tenant: str, segment_id: str) -> None:
        sk = self._sk_of(tenant, segment_id)
        if sk is not None:
            self._call("delete_item", TableName=self.table, Key={"pk": {"S": f"tenant#{tenant}"}, "sk": {"S": sk}})
        self._call("delete_item", TableName=self.table, Key=self._pointer(tenant, segment_id))

    def tenants(self) -> list[str]:
        out: list[str] = []
        kw: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": "tenants"}}, "ConsistentRead": True,
        }
        while True:
            r = self._call("query", **kw)
            out.extend(it["sk"]["S"] for it in r.get("Items", []))
            if "LastEvaluatedKey" not in r:
                return sorted(out)
            kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]

    def ping(self) -> None:
        self._call("describe_table", TableName=self.table)

    def __repr__(self) -> str:
        return f"DynamoIndex({self.table!r})"


def _is_condition_failure(e: BaseException) -> bool:
    resp = getattr(e, "response", None)
    if not isinstance(resp, dict):
        return False
    code = resp.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = resp.get("CancellationReasons") or []
        msg = resp.get("Error", {}).get("Message", "")
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons) or "ConditionalCheckFailed" in msg
    return False


def open_index(url: str) -> Index:
    """Open ``sqlite:///abs/path.db`` or ``dynamodb://table``."""
    u = urlparse(url)
    if u.scheme == "sqlite":
        path = unquote(u.netloc + u.path) if u.netloc else unquote(u.path)
        if not path.startswith("/"):
            raise ValueError(f"sqlite URL must be absolute (sqlite:///path.db): {url!r}")
        return SqliteIndex(path)
    if u.scheme == "dynamodb":
        if not u.netloc:
            raise ValueError(f"dynamodb URL needs a table: {url!r}")
        return DynamoIndex(u.netloc)
    raise ValueError(f"unsupported index URL {url!r} (use sqlite:///abs/path.db or dynamodb://table)")
