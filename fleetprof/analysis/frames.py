"""Frame classification: ``(function name, file)`` -> language, package, module, kind.

Agents name frames differently: Python agents report bare names (``dumps``,
``JSONEncoder.iterencode``) with the module only in the file field (a full path from
pyroscope-io, the ``package/module.py`` part from py-spy); Go names carry the import path
(``encoding/json.(*encodeState).marshal``); JFR names carry the class
(``java/util/regex/Pattern.compile``); .NET names the namespace before ``!``; native frames
name a binary (``libz.so.1``) and often only an address. :func:`classify_frame` maps each
to a :class:`FrameClass`:

* ``language`` — one of :data:`LANGUAGES`.
* ``package`` — the unit a rule or a reader thinks in: Python top-level package (``json``,
  ``sqlalchemy``), Go import path (``encoding/json``, ``github.com/klauspost/compress/zstd``),
  JVM/.NET package or namespace (``java.util.regex``), Node package (``express``,
  ``node:internal/streams``), Ruby gem, native library (``libz``), ``kernel``.
* ``module`` — the finer unit: Python dotted module (``re._compiler``), JVM class
  (``java.util.regex.Pattern``), Go import path, binary file name.
* ``kind`` — one of :data:`KINDS`: ``app`` (the service's own code), ``stdlib`` (the
  language's standard library, C accelerators included), ``third-party`` (installed
  packages), ``runtime`` (interpreter/VM/GC internals), ``native`` (shared libraries),
  ``kernel``, ``unknown``.
* ``function`` — the name flame graphs and tables group by: the frame name, except that
  unsymbolized frames of one binary (``libfoo.so 0x1a2b``, a bare address with the binary in
  the file field, ``libfoo.so+0x1a2b``) group to the binary's file name, as pprof's function
  view does; an address with no binary at all groups to ``[unknown]``.

Classification is a pure function of the two strings (no file-system lookups), so the same
profile classifies the same way on every machine; :func:`classify_frames` runs it once per
distinct ``(name, file)`` of a frames table.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache

import polars as pl

LANGUAGES = ("python", "go", "jvm", "node", "ruby", "dotnet", "native", "kernel", "unknown")
KINDS = ("app", "stdlib", "third-party", "runtime", "native", "kernel", "unknown")


@dataclass(frozen=True)
class FrameClass:
    """What one frame is (see the module docstring for each field)."""

    language: str
    package: str
    module: str
    kind: str
    function: str


# ---------------------------------------------------------------- native & kernel
_ADDR = re.compile(r"^(0x)?[0-9a-fA-F]{6,16}$")
_BIN_ADDR = re.compile(r"^(?P<bin>\S+?)(?:\s+|\+)(0x)?[0-9a-fA-F]+$")
_LIB = re.compile(r"(^|/)(?P<base>(?P<stem>[\w.+-]+?)\.(so(\.[\w.]+)?|dylib|dll))$")
_JVM_NATIVE_NAME = re.compile(r"^(?P<lib>lib\w+\.so)\.(?P<rest>[A-Za-z_~].*)$")
_KERNEL_NAME = re.compile(
    r"(_\[k\]$|^(entry_SYSCALL|do_syscall_64|__x64_sys_|__arm64_sys_|ksys_|__sys_|__do_softirq|asm_exc_|asm_sysvec|"
    r"exc_page_fault|handle_mm_fault|__handle_mm_fault|schedule$|__schedule|finish_task_switch|tcp_|__tcp_|ip_finish|"
    r"__netif_|net_rx_action|update_blocked_averages|native_write_msr|copy_user_|__memcpy|clear_page_erms|"
    r"syscall_exit_to_user_mode|do_futex|futex_wait|futex_wake|__futex))"
)
_C_SOURCE = re.compile(r"(^|/)(?P<stem>[\w.+-]+)\.(c|cc|cpp|cxx|h|hpp)$")
_CPYTHON_CORE = re.compile(
    r"^(ceval\w*|\w+object|obmalloc|gcmodule|gc|pystate|import|pylifecycle|abstract|call|compile|frame|errors|"
    r"pythonrun|bltinmodule|sysmodule|specialize|pyerrors|exceptions|getargs|modsupport|pymem|pyarena|"
    r"Python-ast|ast\w*|symtable|codecs|structmember|thread\w*|pytime|traceback|genobject|_warnings)$"
)
_RUNTIME_LIBS = {"libpython": ("python", "cpython"), "libjvm": ("jvm", "jvm"), "libcoreclr": ("dotnet", "coreclr"),
                 "libnode": ("node", "v8"), "libruby": ("ruby", "ruby")}


def _lib_stem(base: str) -> str:
    """``libz.so.1.2.13`` -> ``libz``; ``libpython3.11.so.1.0`` -> ``libpython``; ``ld-linux-x86-64.so.2`` -> ``ld-linux-x86-64``."""
    stem = base.split(".so")[0].split(".dylib")[0].split(".dll")[0]
    return re.sub(r"[\d.]+$", "", stem) or stem


def _native(name: str, file: str) -> FrameClass | None:
    """Kernel frames, shared-library frames and unsymbolized addresses."""
    if file in ("[kernel.kallsyms]", "vmlinux", "[kernel]") or _KERNEL_NAME.search(name):
        return FrameClass("kernel", "kernel", "kernel", "kernel", name.removesuffix("_[k]"))
    m = _JVM_NATIVE_NAME.match(name)  # async-profiler: "libjvm.so.G1ParScanThreadState::trim_queue"
    if m:
        return _library(m.group("lib"), m.group("rest"))
    bm = _BIN_ADDR.match(name)
    if bm and _LIB.search(bm.group("bin")) and not _LIB.search(file):
        file = bm.group("bin")
        name = f"{bm.group('bin')} 0x0"
    if _LIB.search(file):
        base = _LIB.search(file).group("base")  # type: ignore[union-attr]
        unsym = bool(_ADDR.match(name) or (bm and _LIB.search(bm.group("bin"))))
        return _library(base, base if unsym else name)
    if _ADDR.match(name):
        return FrameClass("native", "", file.rsplit("/", 1)[-1], "native" if file else "unknown",
                          file.rsplit("/", 1)[-1] if file and file != "?" else "[unknown]")
    return None


def _library(base: str, function: str) -> FrameClass:
    stem = _lib_stem(base)
    if stem in _RUNTIME_LIBS:
        lang, pkg = _RUNTIME_LIBS[stem]
        return FrameClass(lang, pkg, base, "runtime", function)
    return FrameClass("native", stem, base, "native", function)


# ---------------------------------------------------------------- python
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | {"sre_compile", "sre_parse", "sre_constants", "_sre"}
_PY_C_MODULES = {"_json": "json", "_sre": "re", "sre": "re", "_pickle": "pickle", "_hashopenssl": "hashlib",
                 "_sha256": "hashlib", "_sha2": "hashlib", "_sha512": "hashlib", "_sha1": "hashlib", "_md5": "hashlib",
                 "_blake2": "hashlib", "sha256module": "hashlib", "md5module": "hashlib", "zlibmodule": "zlib",
                 "_bz2module": "bz2", "_lzmamodule": "lzma", "_ssl": "ssl", "_sqlite": "sqlite3", "_copy": "copy",
                 "_struct": "struct", "_datetimemodule": "datetime", "_decimal": "decimal", "_csv": "csv",
                 "_elementtree": "xml", "pyexpat": "xml", "_pickle_module": "pickle", "mathmodule": "math",
                 "_randommodule": "random", "_threadmodule": "threading", "_asynciomodule": "asyncio"}
_PY_THIRD_PARTY = frozenset({
    "orjson", "ujson", "simplejson", "rapidjson", "msgpack", "yaml", "sqlalchemy", "django", "flask", "fastapi",
    "starlette", "uvicorn", "gunicorn", "psycopg", "psycopg2", "pymysql", "MySQLdb", "asyncpg", "pymongo", "redis",
    "requests", "urllib3", "httpx", "httpcore", "aiohttp", "boto3", "botocore", "numpy", "pandas", "polars",
    "pyarrow", "pydantic", "structlog", "loguru", "cryptography", "OpenSSL", "zstandard", "lz4", "brotli",
    "google", "grpc", "celery", "kombu", "jinja2", "werkzeug", "pyroscope", "ddtrace", "opentelemetry",
})
_PY_FILE = re.compile(r"\.(py|pyx|pyi|pyw)$")
_PY_LIBDIR = re.compile(r"(^|[/\\])[Ll]ib(64)?[/\\](python|pypy)[\d.]*[/\\]")
_SITE = re.compile(r"(^|[/\\])(site|dist)-packages[/\\]")


def _dotted(rel: str) -> str:
    parts = re.split(r"[/\\]", _PY_FILE.sub("", rel))
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(p for p in parts if p) or rel


def _python(name: str, file: str) -> FrameClass | None:
    frozen = re.match(r"^<frozen ([\w.]+)>$", file)
    if frozen:
        mod = frozen.group(1)
        return FrameClass("python", mod.split(".")[0], mod, "stdlib", name)
    if not _PY_FILE.search(file):
        return None
    site = _SITE.search(file)
    if site:
        mod = _dotted(file[site.end():])
        return FrameClass("python", mod.split(".")[0], mod, "third-party", name)
    lib = _PY_LIBDIR.search(file)
    if lib:
        mod = _dotted(file[lib.end():])
        return FrameClass("python", mod.split(".")[0], mod, "stdlib", name)
    if file.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[/\\]", file):
        # an application file outside the interpreter's directories
        parts = re.split(r"[/\\]", _PY_FILE.sub("", file))
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        mod = ".".join(p for p in parts[-2:] if p.isidentifier()) or parts[-1]
        return FrameClass("python", mod.split(".")[0], mod, "app", name)
    # py-spy's shortened path: the part below the sys.path entry that holds it
    mod = _dotted(file)
    top = mod.split(".")[0]
    kind = "stdlib" if top in _STDLIB else "third-party" if top in _PY_THIRD_PARTY else "app"
    return FrameClass("python", top, mod, kind, name)


def _c_source(name: str, file: str) -> FrameClass | None:
    """C/C++ frames with a source file (py-spy --native names CPython's own functions so)."""
    m = _C_SOURCE.search(file)
    if not m:
        return None
    stem = m.group("stem")
    if stem in _PY_C_MODULES or stem.endswith("module"):
        pkg = _PY_C_MODULES.get(stem, stem.removesuffix("module"))
        return FrameClass("python", pkg, stem, "stdlib", name)
    if _CPYTHON_CORE.match(stem) or name.startswith(("_Py", "Py")):
        return FrameClass("python", "cpython", stem, "runtime", name)
    return FrameClass("native", stem, stem, "native", name)


# ---------------------------------------------------------------- go
_GO_STD_TOP = frozenset({
    "archive", "bufio", "bytes", "cmp", "compress", "container", "context", "crypto", "database", "debug", "embed",
    "encoding", "errors", "expvar", "flag", "fmt", "go", "hash", "html", "image", "index", "internal", "io", "iter",
    "log", "maps", "math", "mime", "net", "os", "path", "plugin", "reflect", "regexp", "runtime", "slices", "sort",
    "strconv", "strings", "sync", "syscall", "testing", "text", "time", "unicode", "unique", "unsafe", "vendor",
    "weak", "main",
})
_GO_NAME = re.compile(r"^(?P<path>(?:[\w.~-]+/)*)(?P<pkg>[\w~-]+(?:\.v\d+)?)\.(?P<rest>\S.*)$")
_GO_RECEIVER = re.compile(r"\.\(\*?[\w\[\], .]+\)\.|\.func\d+(\.\d+)*$|\.gowrap\d+$")


def _go_import_path(name: str) -> tuple[str, str] | None:
    m = _GO_NAME.match(name)
    if not m:
        return None
    return m.group("path") + m.group("pkg"), m.group("rest")


def _go(name: str, file: str) -> FrameClass | None:
    is_go_file = file.endswith(".go") or (file.endswith(".s") and "/src/" in file)
    parsed = _go_import_path(name)
    if parsed is None:
        return None
    path, _rest = parsed
    top = path.split("/")[0]
    looks_go = ("/" in path and not path[path.rfind("/") + 1:][:1].isupper()) or bool(_GO_RECEIVER.search(name)) \
        or (top in _GO_STD_TOP and "/" not in path and not file)
    if not (is_go_file or (not file and looks_go)):
        return None
    if path == "main" or path.startswith("main."):
        kind = "app"
    elif path == "runtime" or path.startswith(("runtime/internal/", "internal/runtime/")):
        kind = "runtime"
    elif "." in top:
        kind = "third-party"
    elif top in _GO_STD_TOP:
        kind = "stdlib"
    else:
        kind = "app"  # a module path without a domain: the service's own module
    return FrameClass("go", path.removeprefix("vendor/"), path, kind, name)


# ---------------------------------------------------------------- jvm
_JVM_STD = re.compile(r"^(java|javax|jdk|sun|com\.sun|jakarta\.annotation)\.")
_JVM_RUNTIME = re.compile(r"^(java\.lang\.invoke\.LambdaForm|jdk\.internal\.misc\.Unsafe|java\.lang\.invoke\.Invokers)")
_JVM_LIBS = re.compile(r"^(com\.fasterxml|com\.google|org\.apache|org\.springframework|io\.netty|org\.slf4j|ch\.qos|"
                       r"org\.hibernate|com\.zaxxer|org\.postgresql|com\.mysql|scala|kotlin|kotlinx|io\.micrometer|"
                       r"org\.eclipse|org\.glassfish|io\.grpc|com\.github|net\.jpountz|org\.xerial|com\.alibaba|"
                       r"org\.json|com\.amazonaws|software\.amazon|reactor|io\.opentelemetry|io\.pyroscope|one\.profiler)\.")
_JVM_SLASH = re.compile(r"^(?P<cls>(?:[\w$]+/)+[\w$]+)\.(?P<meth>[\w$<>]+)$")
_JVM_DOTTED = re.compile(r"^(?P<cls>(?:[a-z_][\w$]*\.){2,}[A-Z][\w$]*)\.(?P<meth>[\w$<>]+)$")
_JVM_SOURCE = re.compile(r"\.(java|kt|scala|groovy|clj)$")


def _jvm(name: str, file: str) -> FrameClass | None:
    name_ = name
    name = re.sub(r"\.0x[0-9a-fA-F]+(?=\.)", "", name)  # hidden classes: LambdaForm$MH.0x0000000801466800
    m = _JVM_SLASH.match(name)
    if m and (m.group("cls").rsplit("/", 1)[-1][:1].isupper() or _JVM_SOURCE.search(file)):
        cls = m.group("cls").replace("/", ".")
    else:
        m = _JVM_DOTTED.match(name)
        if not m or (file and not _JVM_SOURCE.search(file)):
            return None
        cls = m.group("cls")
    pkg = cls.rsplit(".", 1)[0] if "." in cls else ""
    kind = ("runtime" if _JVM_RUNTIME.match(cls) else "stdlib" if _JVM_STD.match(cls)
            else "third-party" if _JVM_LIBS.match(cls) else "app")
    return FrameClass("jvm", pkg, cls, kind, name_)


# ---------------------------------------------------------------- .NET
_DOTNET = re.compile(r"^(?P<ns>[\w.`]+)!(?P<rest>.+)$")
_DOTNET_STD = re.compile(r"^(System|Microsoft|mscorlib|netstandard)(\.|$)")


def _dotnet(name: str, file: str) -> FrameClass | None:
    m = _DOTNET.match(name)
    if not m:
        return None
    ns = m.group("ns")
    cls = m.group("rest").split("(")[0].rsplit(".", 1)[0]
    kind = "stdlib" if _DOTNET_STD.match(ns) or _DOTNET_STD.match(file) else "app"
    if kind == "app" and file and not file.startswith(ns.split(".")[0]):
        kind = "third-party"
    return FrameClass("dotnet", ns, f"{ns}.{cls}", kind, name)


# ---------------------------------------------------------------- node & ruby
_NODE_MODULES = re.compile(r"[/\\]node_modules[/\\](?P<pkg>@[\w.-]+[/\\][\w.-]+|[\w.-]+)")
_NODE_RUNTIME_NAMES = {"(garbage collector)", "(program)", "(idle)", "(root)", ":(idle):0"}


def _node(name: str, file: str) -> FrameClass | None:
    if name in _NODE_RUNTIME_NAMES:
        return FrameClass("node", "v8", "v8", "runtime", name)
    if file.startswith("node:"):
        mod = file.removeprefix("node:")
        return FrameClass("node", f"node:{mod.split('/')[0]}", file, "runtime" if mod.startswith("internal") else "stdlib", name)
    if not re.search(r"\.(js|mjs|cjs|ts|mts|cts|jsx|tsx)$", file):
        return None
    nm = _NODE_MODULES.search(file)
    if nm:
        pkg = nm.group("pkg").replace("\\", "/")
        return FrameClass("node", pkg, pkg, "third-party", name)
    stem = re.split(r"[/\\]", file)[-1].rsplit(".", 1)[0]
    return FrameClass("node", stem, stem, "app", name)


_GEM = re.compile(r"[/\\]gems[/\\](?P<gem>[\w.-]+?)-\d[\w.]*[/\\]")
_RUBY_STD = re.compile(r"[/\\]lib[/\\]ruby[/\\]\d[\d.]*[/\\]")


def _ruby(name: str, file: str) -> FrameClass | None:
    if file.startswith("<internal:"):
        return FrameClass("ruby", "ruby", file, "runtime", name)
    if not file.endswith(".rb"):
        return None
    g = _GEM.search(file)
    if g:
        return FrameClass("ruby", g.group("gem"), g.group("gem"), "third-party", name)
    if _RUBY_STD.search(file):
        rel = _RUBY_STD.split(file)[-1] if _RUBY_STD.search(file) else file
        mod = rel.removesuffix(".rb").split("/")[0]
        return FrameClass("ruby", mod, rel.removesuffix(".rb"), "stdlib", name)
    stem = re.split(r"[/\\]", file)[-1].removesuffix(".rb")
    return FrameClass("ruby", stem, stem, "app", name)


# ---------------------------------------------------------------- entry points
_UNKNOWN_NAMES = {"", "<unknown>", "[unknown]", ".unknown_Java", "unknown", "?"}


@lru_cache(maxsize=200_000)
def classify_frame(name: str, file: str = "") -> FrameClass:
    """Classify one frame (see the module docstring). Never raises."""
    name = name or ""
    file = file or ""
    if name in _UNKNOWN_NAMES:
        return FrameClass("unknown", "", "", "unknown", name or "[unknown]")
    for fn in (_native, _python, _c_source, _node, _ruby, _dotnet, _go, _jvm):
        c = fn(name, file)
        if c is not None:
            return c
    top = name.split(".", 1)[0] if "." in name else ""
    return FrameClass("unknown", top, top, "unknown", name)


FRAME_CLASS_SCHEMA = {"language": pl.Utf8, "package": pl.Utf8, "module": pl.Utf8, "kind": pl.Utf8, "function": pl.Utf8}


def classify_frames(frames: pl.DataFrame) -> pl.DataFrame:
    """``frames`` (with ``name`` and ``file``) plus the :class:`FrameClass` columns
    ``language, package, module, kind, function`` (one classification per distinct pair)."""
    pairs = frames.select(pl.col("name").fill_null(""), pl.col("file").fill_null("")).unique()
    rows = [classify_frame(n, f) for n, f in pairs.iter_rows()]
    cls = pl.DataFrame(
        {k: [getattr(r, k) for r in rows] for k in FRAME_CLASS_SCHEMA}, schema=FRAME_CLASS_SCHEMA
    )
    table = pl.concat([pairs, cls], how="horizontal")
    return frames.with_columns(pl.col("name").fill_null(""), pl.col("file").fill_null("")).join(
        table, on=["name", "file"], how="left", maintain_order="left"
    )
