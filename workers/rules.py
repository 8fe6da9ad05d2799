"""Recommendation rules and hotspot categories (in the spirit of CodeGuru Profiler).

Rules match **classified frames** (:mod:`fleetprof.analysis.frames`): a :class:`FrameMatch`
states the language(s), the package/module (a regular expression *fully* matching the
classified ``package`` or ``module``) and/or the function name (searched) a frame must
have, so a Python ``compile`` counts as regex compilation only when its module is
``re._compiler``, and a bare ``dumps`` as JSON only when it lives in ``json``.

A :class:`Rule` applies to one family of profile types (``scope``):

* ``"cpu"`` — its *share* in a service is the fraction of the service's CPU whose stack
  contains at least one matching frame (each stack counted once however many frames
  match); it fires when the share is ``>= threshold``.
* ``"contention"`` — on lock/mutex profiles (Go mutex/block, JFR lock events, .NET
  lock-time): its *share* is the blocked time per second of the service's measured profile
  duration (``0.25`` = a quarter of one thread blocked on average), counting every stack
  (the machinery frames only tell where it blocked); it fires at ``>= threshold``.

:data:`CATEGORIES` classify self time for the shared-hotspot table: a sample belongs to the
category of the matching frame nearest its leaf (categories tried in order per frame).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from fleetprof.analysis.frames import FrameClass


@lru_cache(maxsize=512)
def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True)
class FrameMatch:
    """All given conditions must hold: ``languages`` (any of), ``package`` (regex fully
    matching the classified package *or* module), ``name`` (regex searched in the frame's
    function name), ``kinds`` (any of)."""

    languages: tuple[str, ...] | None = None
    package: str | None = None
    name: str | None = None
    kinds: tuple[str, ...] | None = None

    def matches(self, fc: FrameClass) -> bool:
        if self.languages is not None and fc.language not in self.languages:
            return False
        if self.kinds is not None and fc.kind not in self.kinds:
            return False
        if self.package is not None:
            rx = _rx(self.package)
            if not (rx.fullmatch(fc.package) or rx.fullmatch(fc.module)):
                return False
        return self.name is None or bool(_rx(self.name).search(fc.function))


def matches_any(matches: tuple[FrameMatch, ...], fc: FrameClass) -> bool:
    return any(m.matches(fc) for m in matches)


@dataclass(frozen=True)
class Rule:
    """Frame matches + share threshold -> advice (see module docstring)."""

    rule_id: str
    category: str
    matches: tuple[FrameMatch, ...]
    threshold: float
    advice: str
    scope: str = "cpu"


PY, GO, JVM, NODE, DOTNET, NATIVE, RUBY = ("python",), ("go",), ("jvm",), ("node",), ("dotnet",), ("native",), ("ruby",)
M = FrameMatch

JSON = (
    M(PY, r"json(\..*)?|_json|simplejson(\..*)?|orjson|ujson|rapidjson"),
    M(GO, r"encoding/json|github\.com/(json-iterator/go|goccy/go-json|bytedance/sonic|mailru/easyjson|tidwall/gjson|buger/jsonparser)(/.*)?"),
    M(JVM, r"com\.fasterxml\.jackson(\..*)?|com\.google\.gson(\..*)?|org\.json(\..*)?|com\.alibaba\.fastjson2?(\..*)?|jakarta\.json(\..*)?|javax\.json(\..*)?"),
    M(NODE, name=r"^JSON\.(parse|stringify)$"), M(NODE, r"fast-json-stringify|json-bigint|safe-stable-stringify"),
    M(DOTNET, r"System\.Text\.Json(\..*)?|Newtonsoft\.Json(\..*)?"),
    M(RUBY, r"json|oj|multi_json"),
    M(NATIVE, r"libsimdjson|libyyjson|libjansson|libcjson"),
)
REGEX_COMPILE = (
    M(PY, r"re\._compiler|re\._parser|sre_compile|sre_parse"),
    M(GO, r"regexp(/syntax)?", name=r"(^regexp\.(Must)?Compile(POSIX)?$|^regexp\.compile$|^regexp/syntax\.(Parse|Compile))"),
    M(JVM, r"java\.util\.regex\.Pattern", name=r"Pattern[./](compile|<init>)$"),
    M(DOTNET, r"System\.Text\.RegularExpressions(\..*)?", name=r"(RegexParser|RegexWriter|RegexCompiler|Regex\.\.ctor)"),
)
REGEX_MATCH = (
    M(PY, r"re", name=r"^(match|search|sub|subn|findall|finditer|fullmatch|split|_subx|_expand|Match\.\w+|Pattern\.\w+)$"),
    M(PY, r"_sre|sre"),
    M(GO, r"regexp", name=r"^regexp\.(?!(Must)?Compile|compile)"),
    M(JVM, r"java\.util\.regex", name=r"(Matcher|Pattern\$|Pattern[./](matcher|matches|split))"),
    M(DOTNET, r"System\.Text\.RegularExpressions(\..*)?", name=r"(Match|Scan|Interpreter|IsMatch|Replace)"),
    M(NATIVE, r"libpcre\w*|libre2|libonig\w*"),
)
LOGGING = (
    M(PY, r"logging(\..*)?|structlog(\..*)?|loguru(\..*)?"),
    M(GO, r"log|log/slog|go\.uber\.org/zap(/.*)?|github\.com/(sirupsen/logrus|rs/zerolog|go-kit/log|go-logr/logr)(/.*)?"),
    M(JVM, r"(org\.apache\.log4j|org\.apache\.logging\.log4j|ch\.qos\.logback|org\.slf4j|java\.util\.logging)(\..*)?"),
    M(NODE, r"winston|pino|morgan|bunyan|log4js"),
    M(DOTNET, r"(Microsoft\.Extensions\.Logging|Serilog|NLog|log4net)(\..*)?"),
    M(RUBY, r"logger|lograge|semantic_logger"),
)
COMPRESSION = (
    M(PY, r"gzip|zlib|bz2|lzma|zipfile|_bz2|_lzma|zstandard(\..*)?|lz4(\..*)?|brotli|snappy"),
    M(GO, r"compress/.*|archive/zip|github\.com/(klauspost/compress|DataDog/zstd|golang/snappy|pierrec/lz4|andybalholm/brotli)(/.*)?"),
    M(JVM, r"java\.util\.zip", name=r"(Deflater|Inflater|GZIP|Zip)"),
    M(JVM, r"(org\.xerial\.snappy|com\.github\.luben\.zstd|net\.jpountz\.lz4|org\.apache\.commons\.compress|org\.apache\.kafka\.common\.compress)(\..*)?"),
    M(NODE, r"node:zlib"),
    M(DOTNET, r"System\.IO\.Compression(\..*)?"),
    M(NATIVE, r"libz|libzstd|liblz4|libbz2|liblzma|libbrotli\w*|libsnappy|libdeflate|libisal"),
)
HASHING = (
    M(PY, r"hashlib|_hashlib|hmac|_hashopenssl|_sha\d*|_md5|_blake2|xxhash|mmh3"),
    M(GO, r"crypto/(sha1|sha256|sha512|sha3|md5|hmac)|hash/.*|github\.com/(cespare/xxhash|zeebo/blake3|minio/sha256-simd)(/.*)?|golang\.org/x/crypto/(blake2b|blake2s|sha3)"),
    M(JVM, r"java\.security", name=r"MessageDigest"), M(JVM, r"sun\.security\.provider", name=r"(SHA|MD5|Digest)"),
    M(JVM, r"java\.util\.zip", name=r"(CRC32|Adler32|Checksum)"), M(JVM, name=r"Crc32C?[./]"),
    M(DOTNET, r"System\.Security\.Cryptography(\..*)?", name=r"(SHA|MD5|Hash)"),
    M(NATIVE, r"libcrypto|libssl|libxxhash|libb2", name=r"^(SHA\d*_|sha\d+_block|MD5_|md5_block|EVP_Digest|ossl_sha|blake2|KECCAK|keccak|SHA3_|HMAC)"),
)
TLS_HANDSHAKE = (
    M(GO, r"crypto/tls", name=r"[Hh]andshake"),
    M(JVM, r"sun\.security\.ssl", name=r"Handshake"),
    M(PY, r"ssl|_ssl", name=r"do_handshake|wrap_socket"),
    M(NATIVE, r"libssl", name=r"(SSL_do_handshake|ssl3_|tls13_|tls_(construct|process)_|ssl_handshake|ossl_statem)"),
)
CRYPTO = (
    M(GO, r"crypto/(tls|aes|cipher|ecdsa|ed25519|rsa|elliptic|ecdh|subtle|x509|internal/.*)|golang\.org/x/crypto/(chacha20.*|curve25519|poly1305)"),
    M(JVM, r"(sun\.security\.ssl|javax\.crypto|com\.sun\.crypto\.provider|sun\.security\.rsa|sun\.security\.ec|org\.bouncycastle)(\..*)?"),
    M(PY, r"ssl|_ssl|cryptography(\..*)?|nacl(\..*)?|Crypto(\..*)?"),
    M(DOTNET, r"System\.Security\.Cryptography(\..*)?|System\.Net\.Security(\..*)?", name=r"(Aes|Rsa|ECDsa|Ssl|Tls|Cipher|Encrypt|Decrypt)"),
    M(NATIVE, r"libssl"),
    M(NATIVE, r"libcrypto", name=r"^(EVP_(Encrypt|Decrypt|Cipher|PKEY|DigestSign|DigestVerify)|AES_|aes|gcm_|CRYPTO_gcm|RSA_|rsa_|EC_|ec_|ecp_|BN_|bn_|ChaCha|chacha|Poly1305|poly1305|X25519|x25519|ossl_(rsa|ec|aes|gcm|bn))"),
)
GC = (
    M(GO, r"runtime", name=r"^runtime\.(gcBgMarkWorker|gcDrain\w*|scanobject|scanblock|markroot\w*|gcAssistAlloc\w*|bgsweep|sweepone|greyobject|findObject|wbBuf\w*|gcMarkDone|gcStart)$"),
    M(("jvm",), r"jvm", name=r"(G1|GC|ParScan|Parallel(Scavenge|Compact)|PSPromotion|ZMark|ZRelocate|ShenandoahMark|Shenandoah\w*Evac|CardTable|OopOopIterate|MarkSweep|Scavenge)"),
    M(PY, r"cpython", name=r"^(gc_collect\w*|collect|_PyGC_\w*|PyGC_\w*|move_unreachable|subtract_refs|update_refs|visit_decref|visit_reachable|deduce_unreachable)$"),
    M(NODE, name=r"^\(garbage collector\)$"),
    M(DOTNET, name=r"(GarbageCollect|gc_heap::|WKS::gc|SVR::gc)"),
)
ALLOCATION = (
    M(GO, r"runtime", name=r"^runtime\.(mallocgc\w*|newobject|makeslice\w*|growslice|makemap\w*|newarray|(\(\*mcache\)\.)?(nextFree|refill|allocLarge)|memclrNoHeapPointers|rawstring\w*|rawbyteslice|slicebytetostring|concatstrings)$"),
    M(("jvm",), r"jvm", name=r"(MemAllocator|TLAB|CollectedHeap::(allocate|obj_allocate|array_allocate)|OptoRuntime::new_)"),
    M(PY, r"cpython", name=r"^(_?PyObject_Malloc|_PyObject_GC_New\w*|_PyObject_GC_Alloc|pymalloc_alloc|_PyMem_\w*Malloc|PyMem_Malloc|allocate_from_new_pool|_PyObject_GC_Link)$"),
)
LOCKS = (
    M(GO, r"sync|runtime", name=r"^(sync\.\(\*(RW)?Mutex\)\.(lockSlow|rUnlockSlow|unlockSlow|RLock)|runtime\.(lock2|lockWithRank|semacquire\w*|sellock))$"),
    M(JVM, r"java\.util\.concurrent\.locks", name=r"(AbstractQueuedSynchronizer|ReentrantLock|ReentrantReadWriteLock|StampedLock)[^.]*[./](acquire\w*|lock\w*|tryAcquire\w*)"),
    M(JVM, r"jvm", name=r"(ObjectMonitor::(enter|EnterI|TrySpin)|Monitor::lock|Mutex::lock|SharedRuntime::complete_monitor_locking)"),
    M(PY, r"cpython|_thread|threading", name=r"(PyThread_acquire_lock\w*|lock_PyThread_acquire_lock|take_gil)"),
    M(NATIVE, r"libc|libpthread", name=r"^(pthread_mutex_(lock|timedlock)|__pthread_mutex_lock\w*|__lll_lock_wait\w*|pthread_rwlock_\w*lock)$"),
    M(DOTNET, r"System\.Threading", name=r"(Monitor\.(Enter|ReliableEnter)|SpinLock|SemaphoreSlim\.Wait|Lock\.Enter)"),
)
REFLECTION = (
    M(GO, r"reflect"),
    M(JVM, r"(java\.lang\.reflect|sun\.reflect|jdk\.internal\.reflect)(\..*)?"),
    M(JVM, r"java\.lang", name=r"^java/lang/Class\.(getMethod|getDeclared\w+|forName|newInstance|getField|getMethods)"),
    M(PY, r"inspect|typing|dataclasses", name=r"^(signature|getmembers|getattr_static|_signature_\w+|Signature\.\w+|get_type_hints|fields|asdict|_asdict_inner|astuple)$"),
    M(DOTNET, r"System\.Reflection(\..*)?"),
)
EXCEPTIONS = (
    M(JVM, r"java\.lang", name=r"Throwable[./](fillInStackTrace|<init>)|Exception[./]<init>"),
    M(GO, r"runtime", name=r"^runtime\.(gopanic|gorecover|recovery|addOneOpenDeferFrame|panicwrap)$"),
    M(PY, r"cpython", name=r"^(_PyErr_\w+|PyErr_\w+|BaseException_\w+|_PyTraceBack_\w+|PyTraceBack_\w+|tb_create_raw|_PyException_\w+|PyException_\w+|_PyEval_MatchClass|do_raise)$"),
    M(PY, r"traceback|linecache"),
    M(DOTNET, name=r"(Exception\.\.ctor|ExceptionDispatchInfo|StackTrace\.\.ctor|RaiseException|IL_Throw)"),
    M(NODE, name=r"^(captureStackTrace|Error)$"),
)
ORM_DB = (
    M(PY, r"sqlite3|_sqlite|sqlalchemy(\..*)?|django\.db(\..*)?|psycopg2?(\..*)?|pymysql(\..*)?|MySQLdb(\..*)?|asyncpg(\..*)?|pymongo(\..*)?|peewee|tortoise(\..*)?|redis(\..*)?|cassandra(\..*)?"),
    M(GO, r"database/sql(/.*)?|gorm\.io/.*|github\.com/(lib/pq|jackc/pgx(/v\d+)?|go-sql-driver/mysql|jmoiron/sqlx|mattn/go-sqlite3|redis/go-redis(/v\d+)?|go-redis/redis(/v\d+)?)(/.*)?|go\.mongodb\.org/.*"),
    M(JVM, r"(java\.sql|javax\.sql|org\.hibernate|com\.zaxxer\.hikari|org\.postgresql|com\.mysql|org\.mariadb|org\.jooq|org\.mybatis|org\.springframework\.jdbc|com\.mongodb|io\.lettuce|redis\.clients)(\..*)?"),
    M(NODE, r"pg|mysql2?|sequelize|typeorm|knex|mongoose|mongodb|@prisma/client|ioredis|redis"),
    M(DOTNET, r"(System\.Data|Microsoft\.Data|Microsoft\.EntityFrameworkCore|Npgsql|Dapper|MySqlConnector|StackExchange\.Redis)(\..*)?"),
    M(RUBY, r"activerecord|pg|mysql2|sequel|sqlite3|redis"),
    M(NATIVE, r"libsqlite\w*|libpq|libmysqlclient|libmariadb"),
)
COPY_SERIAL = (
    M(PY, r"copy|copyreg|pickle|_pickle|_compat_pickle|marshal|shelve|dill(\..*)?|cloudpickle(\..*)?"),
    M(GO, r"encoding/gob"),
    M(JVM, r"java\.io", name=r"(ObjectOutputStream|ObjectInputStream|ObjectStreamClass)"),
    M(JVM, r"java\.lang", name=r"^java/lang/Object\.clone$"),
    M(DOTNET, r"System\.Runtime\.Serialization(\..*)?"),
    M(NODE, name=r"^(structuredClone|cloneDeep|baseClone)$"),
)
PROTOBUF = (
    M(GO, r"google\.golang\.org/protobuf(/.*)?|github\.com/golang/protobuf(/.*)?|github\.com/gogo/protobuf(/.*)?"),
    M(JVM, r"com\.google\.protobuf(\..*)?"),
    M(PY, r"google|google\.protobuf(\..*)?"),
    M(NATIVE, r"libprotobuf|libupb\w*"),
)
SYSCALL = (
    M(("kernel",)),
    M(GO, r"syscall|internal/poll|runtime", name=r"^(syscall\.|internal/poll\.|runtime\.(futex|epollwait|netpoll|usleep|write1|read))"),
)

RULES: tuple[Rule, ...] = (
    Rule("json-serialization", "json", JSON, 0.10,
         "JSON encoding/decoding is a large share of CPU: use a faster codec (orjson/msgspec in Python, sonic/"
         "goccy in Go, Jackson afterburner/blackbird on the JVM), cache encodings of unchanged payloads, or use "
         "protobuf on internal hops."),
    Rule("regex-compile", "regex", REGEX_COMPILE, 0.02,
         "Regular expressions are compiled on a hot path: compile each pattern once (module level / static "
         "final) and reuse it; in Java, String.split/replaceAll/matches compile a pattern on every call."),
    Rule("regex-matching", "regex", REGEX_MATCH, 0.10,
         "Regular-expression matching is expensive here: use plain string operations (prefix/contains/split) "
         "where possible, anchor patterns, or a linear-time engine (RE2)."),
    Rule("logging", "logging", LOGGING, 0.05,
         "Logging costs a noticeable share of CPU: lower the level on hot paths, sample repetitive messages, "
         "use lazy formatting (logger.debug('%s', x), not f-strings) and asynchronous handlers/appenders."),
    Rule("compression", "compression", COMPRESSION, 0.10,
         "Compression is a large share of CPU: lower the level, switch to a faster codec (zstd/lz4/snappy) "
         "or skip compressing small or already-compressed payloads."),
    Rule("hashing", "hashing", HASHING, 0.08,
         "Hashing is a large share of CPU: hash once and cache the digest, hash less data (or incrementally), "
         "and use a non-cryptographic hash (xxhash/CRC32C) where integrity against attackers is not needed."),
    Rule("tls-handshakes", "tls", TLS_HANDSHAKE, 0.05,
         "TLS handshakes are expensive: reuse connections (keep-alive, pooling) and enable session resumption."),
    Rule("crypto", "tls", CRYPTO, 0.15,
         "Cryptography is a large share of CPU: check that AES-NI/ARMv8 crypto paths are used, prefer "
         "AES-GCM/ChaCha20 suites and terminate TLS once (not on every hop)."),
    Rule("garbage-collection", "gc", GC, 0.15,
         "Garbage collection is a large share of CPU: reduce allocations on hot paths (pool/reuse buffers) "
         "and tune the collector (GOGC/GOMEMLIMIT, JVM heap sizing and collector choice, Python gc.freeze/thresholds)."),
    Rule("allocation-churn", "allocation", ALLOCATION, 0.20,
         "Allocation is a large share of CPU: preallocate slices/maps/lists, reuse buffers and avoid boxing "
         "and temporary objects in hot loops."),
    Rule("lock-contention-cpu", "locks", LOCKS, 0.05,
         "Threads burn CPU acquiring locks: shorten critical sections, shard the protected state, or use "
         "lock-free/atomic structures."),
    Rule("lock-contention", "locks", (M(),), 0.10,
         "Threads spend a large share of time blocked on locks: shorten critical sections, shard the protected "
         "state (striped locks, per-core counters), prefer read/write locks for read-mostly data.",
         scope="contention"),
    Rule("reflection", "reflection", REFLECTION, 0.05,
         "Reflection is expensive: generate code or cache reflected metadata instead of reflecting per call."),
    Rule("exceptions", "exceptions", EXCEPTIONS, 0.03,
         "Exceptions are raised on a hot path: do not use them for control flow (check first, return a status, "
         "or use a sentinel); creating stack traces is costly."),
    Rule("orm-db-driver", "database", ORM_DB, 0.10,
         "The database client/ORM is a large share of CPU: batch queries, fetch only needed columns, avoid N+1 "
         "query patterns, reuse prepared statements and connections, and hydrate fewer ORM objects."),
    Rule("deepcopy-pickling", "copy", COPY_SERIAL, 0.05,
         "Deep copies and (un)pickling are a large share of CPU: copy only what changes (shallow copies, "
         "immutable data), and use a faster wire format than pickle/Java serialization."),
)
"""Default rule table."""

DEFAULT_RULES: tuple[Rule, ...] = RULES

CATEGORIES: tuple[tuple[str, tuple[FrameMatch, ...]], ...] = (
    ("gc", GC), ("json", JSON), ("tls", TLS_HANDSHAKE + CRYPTO), ("hashing", HASHING), ("logging", LOGGING),
    ("regex", REGEX_MATCH + REGEX_COMPILE), ("compression", COMPRESSION), ("database", ORM_DB), ("copy", COPY_SERIAL),
    ("protobuf", PROTOBUF), ("allocation", ALLOCATION), ("locks", LOCKS), ("reflection", REFLECTION),
    ("exceptions", EXCEPTIONS), ("syscall", SYSCALL),
)
"""Hotspot categories, tried in order on each frame."""


def category_of(fc: FrameClass, categories: tuple[tuple[str, tuple[FrameMatch, ...]], ...] = CATEGORIES) -> str | None:
    """First category with a match for the classified frame ``fc`` (one call per distinct frame)."""
    for cat, matches in categories:
        if matches_any(matches, fc):
            return cat
    return None
