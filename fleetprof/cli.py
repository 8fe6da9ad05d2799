"""The ``fleetprof`` command line (typer + rich): ``convert``, ``flamegraph``, ``top``,
``diff`` and ``regress`` here; other commands are registered by their own modules.

Conventions for every command:

* Inputs are paths or ``-`` (stdin); the format is auto-detected from the bytes
  (:func:`fleetprof.formats.detect.decode`), ``--format``/``--input-format`` overrides it.
  Several inputs are merged (:func:`fleetprof.model.merge`) after selecting one sample type
  when their types differ. ``-o -`` writes to stdout. Reading inputs over
  :data:`PROGRESS_MIN_BYTES` shows a rich progress bar on stderr (terminals only).
* Bad input is one line on stderr, ``error: <message>``, and exit status 2 — never a
  traceback (:func:`cli_errors`). ``regress`` exits 1 when it finds a regression.

Registering more commands (``serve``, ``push``, ``compact``, ``analyze``, ``backfill`` …):
put a module ``fleetprof/<package>/cli.py`` (or top-level ``workers/cli.py``) that defines
``register(app: typer.Typer) -> None`` and adds its commands with ``@app.command()``. The
CLI discovers those modules by file name at start-up (:func:`register_plugins`) — no edit
of this file is needed. Keep their module-level imports light (import fastapi, ray, boto3
… inside the command functions), since every ``fleetprof`` invocation imports them; wrap
command bodies in ``with cli_errors():`` for the one-line error convention. A plugin that
fails to import is reported as a one-line warning on stderr and skipped.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from fleetprof.model.profile import Profile

PROGRESS_MIN_BYTES = 4 * 1024 * 1024
"""Inputs at least this large get a progress bar while being read."""

PLUGIN_EXTRA_MODULES = ("workers.cli",)
"""Plugin modules outside ``fleetprof/*/cli.py`` (see the module docstring)."""

_CONSOLES: dict[str, Console] = {}


def console(name: str) -> Console:
    """The shared rich console ``"err"`` (stderr) or ``"out"`` (stdout), created on first
    use (importing rich costs every invocation that prints nothing through it)."""
    if name not in _CONSOLES:
        from rich.console import Console

        _CONSOLES[name] = Console(stderr=name == "err", highlight=False, emoji=False)
    return _CONSOLES[name]


def __getattr__(name: str) -> Any:
    """``err_console`` / ``out_console``: :func:`console` ``"err"`` / ``"out"`` (PEP 562)."""
    if name in ("err_console", "out_console"):
        return console(name[:3])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _defer_typer_coercion() -> None:
    """Let typer build its pydantic validators only for values that need one.

    typer coerces every parameter of the command being run through a pydantic
    ``TypeAdapter``, built on first use — importing pydantic (tens of milliseconds) even when
    all values are plain strings or unset. Here a parameter's coercion starts as a
    :class:`_DeferredCoercion`: unset values and ``str`` / ``list[str]`` parameters given
    strings (which typer's adapters return unchanged) are passed through; any other value
    gets typer's own coercion, built then, with typer's checks and error messages. Does
    nothing when typer's internals are not the expected ones."""
    try:
        from typer import _coercion, core
    except ImportError:
        return
    param_cls = getattr(core, "_TyperParameter", None)
    base = getattr(_coercion, "RuntimeParam", None)
    build = getattr(_coercion, "build_runtime_param", None)
    if param_cls is None or base is None or build is None or not hasattr(param_cls, "get_runtime_param"):
        return
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class _DeferredCoercion(base):  # type: ignore[misc, valid-type]
        descriptor: Any

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            info = self.parameter_info
            plain = getattr(info, "parser", None) is None and getattr(info, "click_type", None) is None
            if plain and self.annotation is str and type(value) is str:
                return value
            if plain and self.annotation == list[str] and isinstance(value, (list, tuple)) and all(type(v) is str for v in value):
                return list(value)
            real = build(self.descriptor)
            param._runtime_param = real
            return real._coerce_value(value, param=param, ctx=ctx)

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            d = self.type_descriptor
            if getattr(d, "file_annotation", None) is not None:
                self._runtime_param = build(d)
            else:
                self._runtime_param = _DeferredCoercion(parameter_info=d.parameter_info, annotation=d.annotation, descriptor=d)
        return self._runtime_param

    param_cls.get_runtime_param = get_runtime_param


_defer_typer_coercion()

app = typer.Typer(
    name="fleetprof",
    help="fleetprof: continuous profiling — convert, render, compare and gate profiles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class CliError(Exception):
    """A user-facing error: printed as ``error: <message>``, exit status 2."""


def fail(message: str) -> NoReturn:
    raise CliError(message)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn bad-input exceptions into one stderr line and exit status 2."""
    from fleetprof.formats.errors import ProfileFormatError

    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except BrokenPipeError:
        raise typer.Exit(0) from None
    except CliError as e:
        _die(str(e))
    except ProfileFormatError as e:
        _die(str(e))
    except KeyError as e:
        _die(str(e.args[0]) if e.args else "missing key")
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _die(f"{where}{e.strerror or e}")
    except (ValueError, MemoryError) as e:
        _die(str(e) or type(e).__name__)


def _die(message: str) -> NoReturn:
    one_line = " ".join(message.split())
    console("err").print(f"error: {one_line}", markup=False, soft_wrap=True)
    raise typer.Exit(2)


# ---------------------------------------------------------------------------- inputs


def read_input(path: str) -> bytes:
    """Bytes of ``path`` (``-`` = stdin), with a progress bar for large files."""
    if path == "-":
        return sys.stdin.buffer.read()
    p = Path(path)
    size = p.stat().st_size
    if size < PROGRESS_MIN_BYTES or not _stderr_terminal():
        return p.read_bytes()
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    buf = bytearray()
    with (
        Progress(TextColumn("reading {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console("err"), transient=True) as progress,
        p.open("rb") as f,
    ):
        task = progress.add_task(p.name, total=size)
        while chunk := f.read(1 << 20):
            buf += chunk
            progress.advance(task, len(chunk))
    return bytes(buf)


def _stderr_terminal() -> bool:
    """Whether rich would treat stderr as a terminal (asked only when it may be one)."""
    forced = any(os.environ.get(v) for v in ("FORCE_COLOR", "FORCE_TERMINAL", "TTY_COMPATIBLE"))
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stderr, or a closed one
        tty = False
    return (forced or tty) and console("err").is_terminal


def decode_input(path: str, fmt: str | None = None, *, keep_lines: bool = False) -> Profile:
    """Decode one input (auto-detected unless ``fmt``)."""
    from fleetprof.formats.detect import decode
    from fleetprof.formats.errors import DEFAULT_LIMITS

    data = read_input(path)
    return decode(data, fmt, limits=DEFAULT_LIMITS, keep_lines=keep_lines)


def decode_bytes(data: bytes, fmt: str | None = None) -> Profile:
    """Decode one input already read (auto-detected unless ``fmt``)."""
    from fleetprof.formats.detect import decode
    from fleetprof.formats.errors import DEFAULT_LIMITS

    return decode(data, fmt, limits=DEFAULT_LIMITS)


def load_profiles(paths: Sequence[str], fmt: str | None, sample_type: str | None, *, keep_lines: bool = False) -> tuple[Profile, int]:
    """Decode and merge ``paths``; return the profile and the index of the chosen type.

    With one input (or identical sample types) every type is kept; otherwise each input
    is reduced to ``sample_type`` (default: the first input's default type) before merging."""
    from fleetprof.model import merge, select_type

    if sum(1 for p in paths if p == "-") > 1:
        fail("stdin ('-') can be given only once")
    profiles = [decode_input(p, fmt, keep_lines=keep_lines) for p in paths]
    first = profiles[0]
    if all(p.sample_types == first.sample_types for p in profiles):
        merged = merge(profiles) if len(profiles) > 1 else first
        return merged, merged.type_index(sample_type)
    want = sample_type or str(first.sample_types[first.type_index()])
    return merge([select_type(p, p.type_index(want)) for p in profiles]), 0


def cand_type(base: Profile, base_index: int, cand: Profile, sample_type: str | None) -> int:
    """Index in ``cand`` of the type compared with ``base``'s ``base_index``."""
    return cand.type_index(sample_type or str(base.sample_types[base_index]))


def write_output(path: str, data: bytes | str) -> None:
    """Write ``data`` to ``path`` (``-`` = stdout)."""
    raw = data.encode() if isinstance(data, str) else data
    if path == "-":
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
    else:
        Path(path).write_bytes(raw)


def _suffix_format(path: str, table: dict[str, str], default: str | None) -> str | None:
    name = path.lower()
    for suffix, fmt in table.items():
        if name.endswith(suffix):
            return fmt
    return default


# ---------------------------------------------------------------------------- options

InputFormat = Annotated[
    str | None,
    typer.Option("--format", "--input-format", "-f", help="Input format (default: auto-detect): pprof, folded, speedscope, …"),
]
SampleType = Annotated[
    str | None,
    typer.Option("--sample-type", "-t", help="Sample type of multi-type inputs, e.g. 'cpu', 'alloc_space' or 'cpu:nanoseconds' (default: the profile's default)."),
]
Inputs = Annotated[list[str], typer.Argument(help="Profile files ('-' = stdin); several are merged.", metavar="IN...")]

CONVERT_TARGETS = ("pprof", "folded", "speedscope", "flamebearer", "tree")
CONVERT_SUFFIXES = {
    ".pb.gz": "pprof", ".pb": "pprof", ".pprof": "pprof", ".folded": "folded", ".collapsed": "folded",
    ".txt": "folded", ".speedscope.json": "speedscope", ".flamebearer.json": "flamebearer", ".tree.json": "tree",
}


@app.command(
    epilog=(
        "Examples:\n\n"
        "  fleetprof convert cpu.pb.gz -o cpu.folded\n\n"
        "  fleetprof convert pyspy.txt -o app.pb.gz --to pprof\n\n"
        "  cat cpu.pb.gz | fleetprof convert - -o - --to speedscope > cpu.speedscope.json"
    )
)
def convert(
    src: Annotated[str, typer.Argument(help="Input profile ('-' = stdin).", metavar="IN")],
    output: Annotated[str, typer.Option("--output", "-o", help="Output file ('-' = stdout).")],
    to: Annotated[str | None, typer.Option("--to", help=f"Output format: {', '.join(CONVERT_TARGETS)} (default: from the output suffix, else pprof).")] = None,
    fmt: InputFormat = None,
    sample_type: SampleType = None,
    max_nodes: Annotated[int | None, typer.Option("--max-nodes", help="Node limit for flamebearer/tree output.")] = None,
) -> None:
    """Convert a profile between formats."""
    with cli_errors():
        target = to or _suffix_format(output, CONVERT_SUFFIXES, "pprof")
        if target not in CONVERT_TARGETS:
            fail(f"unknown output format {target!r} (expected one of {', '.join(CONVERT_TARGETS)})")
        profile, ti = load_profiles([src], fmt, sample_type)
        write_output(output, encode_profile(profile, target, ti if sample_type else None, max_nodes))


def encode_profile(profile: Profile, target: str, type_index: int | None, max_nodes: int | None) -> bytes:
    """Encode ``profile`` as ``target`` (one of :data:`CONVERT_TARGETS`)."""
    if target == "pprof":
        from fleetprof.formats.pprof_encode import encode_pprof
        from fleetprof.model import select_type

        return encode_pprof(select_type(profile, type_index) if type_index is not None else profile)
    if target == "folded":
        from fleetprof.formats.folded import encode_folded

        return encode_folded(profile, profile.type_index() if type_index is None else type_index)
    if target == "speedscope":
        from fleetprof.formats.speedscope import encode_speedscope

        return encode_speedscope(profile, type_index)
    ti = profile.type_index() if type_index is None else type_index
    if target == "flamebearer":
        from fleetprof.render.flamebearer import to_flamebearer

        return json.dumps(to_flamebearer(profile, ti, max_nodes=max_nodes), separators=(",", ":")).encode()
    from fleetprof.render.tree_json import to_tree

    return json.dumps(to_tree(profile, ti, max_nodes=max_nodes), separators=(",", ":")).encode()


FLAME_SUFFIXES = {".svg": "svg", ".html": "html", ".htm": "html", ".json": "flamebearer"}


@app.command(
    epilog=(
        "Examples:\n\n"
        "  fleetprof flamegraph cpu.pb.gz -o cpu.svg --title 'api CPU'\n\n"
        "  fleetprof flamegraph a.folded b.folded -o merged.html\n\n"
        "  fleetprof flamegraph heap.pb.gz -t inuse_space --focus 'json' --icicle -o heap.svg\n\n"
        "  fleetprof flamegraph cpu.pb.gz -o cpu.json   # Pyroscope flamebearer JSON"
    )
)
def flamegraph(
    inputs: Inputs,
    output: Annotated[str, typer.Option("--output", "-o", help="Output .svg, .html or .json (flamebearer); '-' = stdout (SVG unless --to).")],
    title: Annotated[str | None, typer.Option("--title", help="Title (default: the input names, the kind of values and the recorded time range).")] = None,
    icicle: Annotated[bool, typer.Option("--icicle", help="Draw roots at the top (icicle graph), in SVG and HTML alike.")] = False,
    sample_type: SampleType = None,
    focus: Annotated[str | None, typer.Option("--focus", help="Keep only stacks through a frame matching this regex.")] = None,
    ignore: Annotated[str | None, typer.Option("--ignore", help="Drop stacks containing a frame matching this regex.")] = None,
    max_nodes: Annotated[int | None, typer.Option("--max-nodes", help="Keep the heaviest N nodes; the rest is folded into 'other'.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Output kind: svg, html or flamebearer (default: from the suffix).")] = None,
    fmt: InputFormat = None,
) -> None:
    """Render a flame graph (SVG, HTML or flamebearer JSON) of one or more merged profiles."""
    with cli_errors():
        kind = to or _suffix_format(output, FLAME_SUFFIXES, "svg" if output == "-" else None)
        if kind not in ("svg", "html", "flamebearer"):
            fail(f"cannot tell the output kind of {output!r}: use .svg, .html or .json, or --to")
        if kind == "svg" and len(inputs) == 1 and fmt in (None, "folded") and not (sample_type or focus or ignore or max_nodes):
            data = read_input(inputs[0])
            if _direct_folded_svg(data, inputs, output, title, icicle):
                return
            profile = decode_bytes(data, fmt)
            ti = profile.type_index()
        else:
            profile, ti = load_profiles(inputs, fmt, sample_type)
        profile = apply_filters(profile, focus, ignore)
        name = title or _default_title(inputs, profile, ti)
        if kind == "flamebearer":
            from fleetprof.render.flamebearer import to_flamebearer

            write_output(output, json.dumps(to_flamebearer(profile, ti, max_nodes=max_nodes), separators=(",", ":")))
            return
        if max_nodes is not None and kind == "svg":
            from fleetprof.model.prune import prune

            profile = prune(profile, ti, max_nodes=max_nodes)
        if kind == "svg":
            from fleetprof.render.svg import render_svg

            write_output(output, render_svg(profile, ti, title=name, icicle=icicle))
        else:
            from fleetprof.render.html import render_html

            html_nodes = {} if max_nodes is None else {"max_nodes": max_nodes}
            write_output(output, render_html(profile, ti, title=name, icicle=icicle, **html_nodes))


def _direct_folded_svg(data: bytes, inputs: Sequence[str], output: str, title: str | None, icicle: bool) -> bool:
    """Write the SVG of a plain (or gzip'd) folded file without building the profile model
    (:mod:`fleetprof.flame.folded_tree`: same drawing, a fraction of the start-up and
    decoding time; neither polars nor numba is imported); False when ``data`` needs the
    general decoder."""
    from types import SimpleNamespace

    from fleetprof.flame.folded_tree import SAMPLES, folded_call_tree
    from fleetprof.formats.detect import detect_format
    from fleetprof.render.svg import min_ticks_of, render_tree_svg

    if detect_format(data) != "folded":
        return False
    tree = folded_call_tree(data, min_total=min_ticks_of(1200, 0.1))
    if tree is None:
        return False
    name = title or _default_title(inputs, SimpleNamespace(sample_types=(SAMPLES,)), 0)  # type: ignore[arg-type]
    write_output(output, render_tree_svg(tree, SAMPLES, title=name, icicle=icicle))
    return True


def _default_title(inputs: Sequence[str], profile: Profile, ti: int) -> str:
    """The input names, what the values are, and when the profile was recorded."""
    from fleetprof.render.titles import profile_title

    return profile_title(", ".join(Path(p).name if p != "-" else "stdin" for p in inputs), profile, ti)


def apply_filters(profile: Profile, focus: str | None, ignore: str | None) -> Profile:
    """Apply ``--focus`` / ``--ignore`` regexes (bad regexes are user errors)."""
    import re

    from fleetprof.model import filter as flt

    try:
        if focus:
            profile = flt.focus(profile, focus)
        if ignore:
            profile = flt.ignore(profile, ignore)
    except re.error as e:
        fail(f"bad regex: {e}")
    return profile


TOP_KEYS = ("function", "frame", "line", "file")
NO_LINES_ADVICE = (
    "this profile has no line numbers (folded stacks and profiles recorded without lines carry none): "
    "use --by frame (function and file) or --by function, or record a pprof or py-spy profile with line numbers"
)


@app.command(
    epilog=(
        "Examples:\n\n"
        "  fleetprof top cpu.pb.gz\n\n"
        "  fleetprof top -n 50 --by line cpu.pb.gz\n\n"
        "  fleetprof top --json a.folded b.folded | jq '.[0]'"
    )
)
def top(
    inputs: Inputs,
    n: Annotated[int, typer.Option("-n", "--nodes", help="Number of rows.")] = 20,
    by: Annotated[str, typer.Option("--by", help="Group by function (name), frame (name+file), line or file.")] = "function",
    sample_type: SampleType = None,
    focus: Annotated[str | None, typer.Option("--focus", help="Keep only stacks through a frame matching this regex.")] = None,
    ignore: Annotated[str | None, typer.Option("--ignore", help="Drop stacks containing a frame matching this regex.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows instead of a table.")] = False,
    fmt: InputFormat = None,
) -> None:
    """Top functions by self value, with total (cumulative) value and percentages."""
    with cli_errors():
        if by not in TOP_KEYS:
            fail(f"unknown --by {by!r} (expected one of {', '.join(TOP_KEYS)})")
        from fleetprof.model.top import top as top_table

        profile, ti = load_profiles(inputs, fmt, sample_type, keep_lines=by == "line")
        if by == "line" and profile.frames.height and not (profile.frames["line"] != 0).any():
            fail(NO_LINES_ADVICE)
        profile = apply_filters(profile, focus, ignore)
        table = top_table(profile, ti, n=n, by=by)
        if as_json:
            write_output("-", json.dumps(table.drop("frame_id").to_dicts(), indent=1) + "\n")
            return
        _print_top(table, profile, ti, by)


def _print_top(table, profile: Profile, ti: int, by: str) -> None:  # noqa: ANN001
    from rich.table import Table
    from rich.text import Text

    from fleetprof.render.units import format_value

    st = profile.sample_types[ti]
    total = profile.totals()[ti]
    t = Table(title=Text(f"top {table.height} by self — {st} — total {format_value(total, st.unit)}"), title_justify="left")
    for col in ("self", "self %", "total", "total %"):
        t.add_column(col, justify="right")
    t.add_column("file" if by == "file" else "function")
    if by in ("frame", "line"):
        t.add_column("location")
    for r in table.iter_rows(named=True):
        cells = [
            format_value(r["self"], st.unit), f"{r['self_pct']:.2f}%",
            format_value(r["total"], st.unit), f"{r['total_pct']:.2f}%",
            r["name"],
        ]
        if by in ("frame", "line"):
            cells.append(r["file"] + (f":{r['line']}" if r["line"] else ""))
        t.add_row(*(Text(c) for c in cells))
    console("out").print(t)


DIFF_SUFFIXES = {".svg": "svg", ".json": "flamebearer", ".csv": "csv"}


@app.command(
    epilog=(
        "Examples:\n\n"
        "  fleetprof diff before.pb.gz after.pb.gz -o diff.svg   # red grew, blue shrank\n\n"
        "  fleetprof diff before.folded after.folded -o diff.json   # flamebearer diff (double)\n\n"
        "  fleetprof diff before.pb.gz after.pb.gz -o nodes.csv   # per-node table"
    )
)
def diff(
    base: Annotated[str, typer.Argument(help="Base profile.", metavar="BASE")],
    cand: Annotated[str, typer.Argument(help="Candidate profile.", metavar="CAND")],
    output: Annotated[str, typer.Option("--output", "-o", help="Output .svg (diff flame graph), .json (flamebearer diff) or .csv (per-node table); '-' = stdout.")],
    to: Annotated[str | None, typer.Option("--to", help="Output kind: svg, flamebearer or csv (default: from the suffix).")] = None,
    title: Annotated[str | None, typer.Option("--title", help="Title of the SVG.")] = None,
    sample_type: SampleType = None,
    max_nodes: Annotated[int | None, typer.Option("--max-nodes", help="Node limit for flamebearer output.")] = None,
    fmt: InputFormat = None,
) -> None:
    """Compare two profiles node by node (normalised by their totals)."""
    with cli_errors():
        kind = to or _suffix_format(output, DIFF_SUFFIXES, "svg" if output == "-" else None)
        if kind not in ("svg", "flamebearer", "csv"):
            fail(f"cannot tell the output kind of {output!r}: use .svg, .json or .csv, or --to")
        b, bi = load_profiles([base], fmt, sample_type)
        c, _ = load_profiles([cand], fmt, sample_type)
        ci = cand_type(b, bi, c, sample_type)
        b, c = _same_type(b, bi, c, ci)
        write_output(output, render_diff(b, c, kind, title or f"{_label(base)} → {_label(cand)}", max_nodes))


def _label(path: str) -> str:
    return "stdin" if path == "-" else Path(path).name


def _same_type(b: Profile, bi: int, c: Profile, ci: int) -> tuple[Profile, Profile]:
    """Both profiles reduced to the compared type (index 0 of each)."""
    from fleetprof.model import select_type

    return select_type(b, bi), select_type(c, ci)


def render_diff(b: Profile, c: Profile, kind: str, title: str, max_nodes: int | None = None) -> str:
    """Render the diff of single-type profiles ``b`` and ``c`` as ``kind``."""
    if kind == "svg":
        from fleetprof.render.svg import render_diff_svg

        return render_diff_svg(b, c, 0, title=title)
    if kind == "flamebearer":
        from fleetprof.render.flamebearer import diff_flamebearer

        return json.dumps(diff_flamebearer(b, c, 0, max_nodes=max_nodes), separators=(",", ":"))
    from fleetprof.model.diff import diff as diff_table

    return diff_table(b, c, 0).write_csv()


@app.command(
    epilog=(
        "Exit status: 0 no regression, 1 regression found, 2 bad input.\n\n"
        "Examples:\n\n"
        "  fleetprof regress main.pb.gz pr.pb.gz\n\n"
        "  fleetprof regress base.txt cand.txt --threshold 2 --min-share 1 --diff-svg diff.svg\n\n"
        "  fleetprof regress base.pb.gz cand.pb.gz --format json > report.json"
    )
)
def regress(
    base: Annotated[str, typer.Argument(help="Base profile (e.g. from the main branch).", metavar="BASE")],
    cand: Annotated[str, typer.Argument(help="Candidate profile (e.g. from the pull request).", metavar="CAND")],
    threshold: Annotated[float, typer.Option("--threshold", help="Flag a function whose self or total share grew by more than this many percentage points.")] = 1.0,
    min_share: Annotated[float, typer.Option("--min-share", help="Noise floor: ignore functions whose candidate share (%) is below this.")] = 0.5,
    report_format: Annotated[str, typer.Option("--format", help="Report format: md (markdown, for a CI comment) or json.")] = "md",
    diff_svg: Annotated[str | None, typer.Option("--diff-svg", help="Also write a diff flame graph SVG here.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows per section of the markdown report.")] = 10,
    sample_type: SampleType = None,
    fmt: Annotated[str | None, typer.Option("--input-format", help="Input format (default: auto-detect).")] = None,
) -> None:
    """Regression gate: compare each function's self and total share; exit 1 on a regression."""
    with cli_errors():
        if report_format not in ("md", "json"):
            fail(f"unknown --format {report_format!r} (expected md or json)")
        from fleetprof.compare.regress import regress as run_regress

        b, bi = load_profiles([base], fmt, sample_type)
        c, _ = load_profiles([cand], fmt, sample_type)
        ci = cand_type(b, bi, c, sample_type)
        report = run_regress(b, c, bi, threshold_pp=threshold, min_share_pct=min_share, cand_type_index=ci)
        if diff_svg:
            bs, cs = _same_type(b, bi, c, ci)
            write_output(diff_svg, render_diff(bs, cs, "svg", f"{_label(base)} → {_label(cand)}"))
        write_output("-", report.to_json() + "\n" if report_format == "json" else report.to_markdown(limit))
    if report.failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- plugins


def plugin_modules() -> list[str]:
    """Module names of the CLI plugins present (see the module docstring)."""
    import importlib.util

    import fleetprof

    root = Path(fleetprof.__file__).parent
    names = [f"fleetprof.{d.name}.cli" for d in sorted(root.iterdir()) if (d / "cli.py").is_file() and (d / "__init__.py").is_file()]
    for extra in PLUGIN_EXTRA_MODULES:
        top_pkg = extra.split(".")[0]
        try:
            spec = importlib.util.find_spec(top_pkg)
        except (ImportError, ValueError):
            spec = None
        if spec and spec.submodule_search_locations and any(Path(loc, "cli.py").is_file() for loc in spec.submodule_search_locations):
            names.append(extra)
    return names


def register_plugins(target: typer.Typer) -> None:
    """Import every plugin module and call its ``register(app)``."""
    for name in plugin_modules():
        try:
            module = importlib.import_module(name)
            register = getattr(module, "register", None)
            if callable(register):
                register(target)
        except Exception as e:  # noqa: BLE001 - a broken plugin must not break the core commands
            console("err").print(f"warning: CLI plugin {name} not loaded: {e}", markup=False, soft_wrap=True)


register_plugins(app)


LOCAL_COMMANDS = ("convert", "flamegraph", "top", "diff", "regress")
"""Commands that read and write files in this process only and do no linear algebra."""


def _keep_freed_memory() -> None:
    """Ask glibc's allocator to keep freed memory for reuse (no mmap per large block, no
    trimming of the heap): a short-lived command that builds many large numpy temporaries
    otherwise pays page faults for every one of them. Nothing happens on other C libraries."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_max = -1, -4
    mallopt(m_trim_threshold, 1 << 30)
    mallopt(m_mmap_max, 0)


def main() -> None:
    """Console-script entry point. For :data:`LOCAL_COMMANDS`, OpenBLAS (loaded with numpy)
    starts no thread pool unless ``OPENBLAS_NUM_THREADS`` says otherwise (starting one
    thread per core costs every invocation CPU time and these commands never use it), and
    freed memory is kept for reuse (:func:`_keep_freed_memory`)."""
    if len(sys.argv) > 1 and sys.argv[1] in LOCAL_COMMANDS:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        _keep_freed_memory()
    try:
        app()
    except CliError as e:  # raised outside a cli_errors block
        console("err").print(f"error: {e}", markup=False, soft_wrap=True)
        sys.exit(2)
