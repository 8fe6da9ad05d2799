"""Frame classification per language, on names as real agents write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetprof.analysis.frames import classify_frame, classify_frames
from fleetprof.formats.detect import decode

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"

CASES = [
    # python: pyroscope-io full paths, py-spy shortened paths, frozen modules, C modules
    (("dumps", "/usr/lib/python3.11/json/__init__.py"), ("python", "json", "json", "stdlib", "dumps")),
    (("JSONEncoder.iterencode", "json/encoder.py"), ("python", "json", "json.encoder", "stdlib", "JSONEncoder.iterencode")),
    (("compile", "re/_compiler.py"), ("python", "re", "re._compiler", "stdlib", "compile")),
    (("get", "/srv/.venv/lib/python3.12/site-packages/requests/api.py"), ("python", "requests", "requests.api", "third-party", "get")),
    (("execute", "sqlalchemy/engine/base.py"), ("python", "sqlalchemy", "sqlalchemy.engine.base", "third-party", "execute")),
    (("work", "prog.py"), ("python", "prog", "prog", "app", "work")),
    (("_find_and_load", "<frozen importlib._bootstrap>"), ("python", "importlib", "importlib._bootstrap", "stdlib", "_find_and_load")),
    (("zlib_compress_impl", "zlibmodule.c"), ("python", "zlib", "zlibmodule", "stdlib", "zlib_compress_impl")),
    (("_PyEval_EvalFrameDefault", "ceval.c"), ("python", "cpython", "ceval", "runtime", "_PyEval_EvalFrameDefault")),
    # native: symbolized, unsymbolized (grouped by binary), kernel
    (("SHA256_Update", "libcrypto.so.3"), ("native", "libcrypto", "libcrypto.so.3", "native", "SHA256_Update")),
    (("0x7f1b88e0c848", "libz.so.1.2.13"), ("native", "libz", "libz.so.1.2.13", "native", "libz.so.1.2.13")),
    (("libz.so.1 0x1a2b", "/usr/lib/libz.so.1"), ("native", "libz", "libz.so.1", "native", "libz.so.1")),
    (("libfoo.so+0x1a2b", ""), ("native", "libfoo", "libfoo.so", "native", "libfoo.so")),
    (("0x7f1b8919bd62", "?"), ("native", "", "?", "native", "[unknown]")),
    (("do_sys_open_[k]", ""), ("kernel", "kernel", "kernel", "kernel", "do_sys_open")),
    (("entry_SYSCALL_64_after_hwframe", "[kernel.kallsyms]"), ("kernel", "kernel", "kernel", "kernel", "entry_SYSCALL_64_after_hwframe")),
    # go: import paths (std, runtime, modules, gopkg.in versions, main)
    (("encoding/json.(*decodeState).object", "/usr/local/go/src/encoding/json/decode.go"), ("go", "encoding/json", "encoding/json", "stdlib", None)),
    (("runtime.mallocgc", ""), ("go", "runtime", "runtime", "runtime", None)),
    (("github.com/klauspost/compress/zstd.(*Encoder).EncodeAll", "/go/pkg/mod/github.com/klauspost/compress@v1.17.0/zstd/enc.go"),
     ("go", "github.com/klauspost/compress/zstd", "github.com/klauspost/compress/zstd", "third-party", None)),
    (("gopkg.in/yaml.v2.(*decoder).unmarshal", "/go/pkg/mod/gopkg.in/yaml.v2@v2.4.0/decode.go"), ("go", "gopkg.in/yaml.v2", "gopkg.in/yaml.v2", "third-party", None)),
    (("main.handler", "/src/app/main.go"), ("go", "main", "main", "app", None)),
    # jvm: JFR slash names, dotted names, libjvm frames, hidden classes
    (("java/util/regex/Pattern.compile", ""), ("jvm", "java.util.regex", "java.util.regex.Pattern", "stdlib", None)),
    (("com.fasterxml.jackson.databind.ObjectMapper.writeValueAsString", ""),
     ("jvm", "com.fasterxml.jackson.databind", "com.fasterxml.jackson.databind.ObjectMapper", "third-party", None)),
    (("kafka/server/KafkaApis.handle", ""), ("jvm", "kafka.server", "kafka.server.KafkaApis", "app", None)),
    (("libjvm.so.G1ParScanThreadState::trim_queue", ""), ("jvm", "jvm", "libjvm.so", "runtime", "G1ParScanThreadState::trim_queue")),
    (("java/lang/invoke/LambdaForm$MH.0x0000000801466800.invoke", ""), ("jvm", "java.lang.invoke", "java.lang.invoke.LambdaForm$MH", "runtime", None)),
    # node, .NET, ruby
    (("logger", "/app/node_modules/morgan/index.js"), ("node", "morgan", "morgan", "third-party", None)),
    (("parse", "/app/node_modules/@babel/parser/lib/index.js"), ("node", "@babel/parser", "@babel/parser", "third-party", None)),
    (("finish", "node:internal/streams/writable"), ("node", "node:internal", "node:internal/streams/writable", "runtime", None)),
    (("(garbage collector)", ""), ("node", "v8", "v8", "runtime", None)),
    (("System.Text.Json!JsonSerializer.Serialize", "System.Text.Json"), ("dotnet", "System.Text.Json", "System.Text.Json.JsonSerializer", "stdlib", None)),
    (("generate", "/usr/lib/ruby/gems/3.2.0/gems/json-2.6.3/lib/json/common.rb"), ("ruby", "json", "json", "third-party", None)),
    (("<unknown>", ""), ("unknown", "", "", "unknown", None)),
]


@pytest.mark.parametrize(("frame", "expected"), CASES, ids=[c[0][0][:40] for c in CASES])
def test_classify(frame: tuple[str, str], expected: tuple) -> None:
    c = classify_frame(*frame)
    lang, pkg, mod, kind, fn = expected
    assert (c.language, c.package, c.module, c.kind) == (lang, pkg, mod, kind)
    assert c.function == (fn if fn is not None else frame[0])


def test_bare_python_names_are_not_go() -> None:
    """A Python method name without a file stays unknown rather than guessed as Go or Java."""
    assert classify_frame("JSONEncoder.iterencode", "").language == "unknown"


@pytest.mark.parametrize(("rel", "language", "share"), [
    ("pprof/pyroscope/cpu_go_truncated_1.pb.gz", "go", 0.95),
    ("jfr/cortex-dev-01__kafka-0__cpu__0.jfr.gz", "jvm", 0.80),
    ("pprof/pyroscope/cpu-js.pb.gz", "node", 0.80),
    ("pprof/pyroscope/dotnet-pprof-3.pb.gz", "dotnet", 0.80),
])
def test_real_profiles_classify_to_their_language(rel: str, language: str, share: float) -> None:
    frames = classify_frames(decode((FIXTURES / rel).read_bytes()).frames)
    assert {"language", "package", "module", "kind", "function"} <= set(frames.columns)
    assert (frames["language"] == language).mean() >= share
