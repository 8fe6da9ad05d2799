"""Shared ingest plumbing: limits, profile → :class:`IngestItem` split, error mapping."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import polars as pl

from fleetprof.distributor.timeparse import TimeParseError, parse_time_ms
from fleetprof.formats.errors import Limits, ProfileFormatError
from fleetprof.model.merge import select_type
from fleetprof.model.profile import Profile, ValueType
from fleetprof.server.errors import ApiError
from fleetprof.server.limits import InflateBudget, validate_labels

DEFAULT_SERVICE = "unspecified"
"""``service_name`` of a series sent without one (Pyroscope's choice)."""
NAME_LABEL = "__name__"
T = TypeVar("T")


@dataclass(frozen=True)
class IngestConfig:
    """The limits a parser enforces (from :class:`fleetprof.server.settings.Settings`).

    ``max_decompressed_bytes`` bounds everything one request decompresses (all gzip layers
    together), ``max_compression_ratio`` each gzip stream past 1 MiB, ``max_samples_per_request``
    the stacks (folded/lines: lines) of all its profiles, ``max_frames_per_request`` their
    stack frames (call-tree nodes once built; what a request's memory grows with);
    timestamps must lie in ``[0, now + max_future_ms]``."""

    max_decompressed_bytes: int = 16 * 1024 * 1024
    max_compression_ratio: float = 100.0
    max_series_per_request: int = 1000
    max_samples_per_request: int = 250_000
    max_frames_per_request: int = 2_000_000
    max_labels_per_series: int = 64
    max_label_name_length: int = 1024
    max_label_value_length: int = 2048
    max_stack_depth: int = 1024
    max_future_ms: int = 86_400_000

    @classmethod
    def from_settings(cls, s: Any) -> IngestConfig:
        return cls(
            max_decompressed_bytes=s.max_decompressed_bytes,
            max_compression_ratio=s.max_compression_ratio,
            max_series_per_request=s.max_series_per_request,
            max_samples_per_request=s.max_samples_per_request,
            max_frames_per_request=s.max_frames_per_request,
            max_labels_per_series=s.max_labels_per_series,
            max_label_name_length=s.max_label_name_length,
            max_label_value_length=s.max_label_value_length,
            max_stack_depth=s.max_stack_depth,
            max_future_ms=int(s.ingest_max_future_s * 1000),
        )

    def decoder_limits(self) -> Limits:
        return Limits(
            max_decompressed_bytes=self.max_decompressed_bytes,
            max_stack_depth=self.max_stack_depth,
            max_samples=self.max_samples_per_request,
        )

    def budget(self, ungated: int | None = None) -> InflateBudget:
        """A fresh decompression budget for one request (see :class:`InflateBudget`)."""
        return InflateBudget(self.max_decompressed_bytes, self.max_compression_ratio, ungated=ungated)


def check_time_ms(t: int, now_ms: int, cfg: IngestConfig, what: str) -> int:
    """``t`` if ``0 <= t <= now_ms + cfg.max_future_ms``, else 400 naming ``what``."""
    if t < 0 or t > now_ms + cfg.max_future_ms:
        shown = str(t) if t.bit_length() <= 64 else "beyond int64"
        raise ApiError(400, f"{what} {shown} ms is out of range: use a time between 1970 and "
                            f"{cfg.max_future_ms // 3_600_000} h from now")
    return t


def ingest_time_ms(text: str | None, default_ms: int, now_ms: int, cfg: IngestConfig, what: str) -> int:
    """A time parameter (:func:`~fleetprof.distributor.timeparse.parse_time_ms` syntax) in
    ms, checked by :func:`check_time_ms`; 400 for bad syntax or range."""
    try:
        t = parse_time_ms(text, default_ms=default_ms, now=now_ms)
    except (TimeParseError, ValueError, OverflowError) as e:
        raise ApiError(400, f"bad {what!r} time: {e}") from None
    return check_time_ms(t, now_ms, cfg, f"{what!r} time")


def check_sample_count(n: int, cfg: IngestConfig) -> None:
    """400 when a request holds more stacks than ``cfg.max_samples_per_request``."""
    if n > cfg.max_samples_per_request:
        raise ApiError(400, f"request has {n} samples, more than the limit of {cfg.max_samples_per_request}")


DEFAULT_CONFIG = IngestConfig()


def format_error(e: ProfileFormatError) -> ApiError:
    """400 for bad input; 413 when a decoder hit a size limit."""
    text = str(e)
    if "exceeds" in text and ("limit" in text or "decompressed" in text):
        return ApiError(413, text)
    return ApiError(400, text)


def decoding(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a decoder, mapping its :class:`ProfileFormatError` to :class:`ApiError`."""
    try:
        return fn(*args, **kwargs)
    except ProfileFormatError as e:
        raise format_error(e) from None
    except ApiError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, UnicodeDecodeError) as e:
        raise ApiError(400, f"cannot decode profile: {type(e).__name__}: {e}") from None


def check_labels(labels: Mapping[str, str], cfg: IngestConfig) -> None:
    validate_labels(labels, max_labels=cfg.max_labels_per_series, max_name=cfg.max_label_name_length, max_value=cfg.max_label_value_length)
    for k, v in labels.items():
        if "\ufffd" in k or "\ufffd" in v:
            raise ApiError(400, f"label {k[:64]!r} is not valid UTF-8")


def check_profile(profile: Profile, cfg: IngestConfig) -> None:
    """400 for stacks deeper than the limit (the decoder marked them truncated) or a call
    tree of more nodes than ``cfg.max_frames_per_request``."""
    if profile.truncated_stacks:
        raise ApiError(400, f"profile has {profile.truncated_stacks} stacks deeper than the limit of {cfg.max_stack_depth} frames")
    check_frame_count(profile.nodes.height, cfg)


def check_frame_count(n: int, cfg: IngestConfig) -> None:
    """400 when a request holds more stack frames than ``cfg.max_frames_per_request``."""
    if n > cfg.max_frames_per_request:
        raise ApiError(400, f"request has {n} stack frames, more than the limit of {cfg.max_frames_per_request}")


def profile_type_id(name: str, st: ValueType, period: ValueType | None) -> str:
    """Pyroscope id ``name:type:unit:period_type:period_unit`` (empty period parts when the
    profile has no period type, as :mod:`fleetprof.formats.profile_types` does)."""
    pt, pu = (period.type, period.unit) if period else ("", "")
    return f"{name}:{st.type}:{st.unit}:{pt}:{pu}"


def time_ms_of(profile: Profile, fallback_ms: int | None = None) -> int:
    """The profile's own time in ms (``time_nanos``; negative stays negative for the range
    check), else ``fallback_ms`` (default: now)."""
    if profile.time_nanos != 0:
        return profile.time_nanos // 1_000_000
    return fallback_ms if fallback_ms is not None else time.time_ns() // 1_000_000


def split_items(
    labels: Mapping[str, str],
    profile: Profile,
    *,
    names: Iterable[tuple[int, str]] | None = None,
    name: str | None = None,
    time_ms: int,
) -> list[Any]:
    """One ``IngestItem`` per sample type (``names``: ``(type index, profile type id)``
    pairs, or all types under the profile ``name``); empty ones are skipped. Span labels
    (``span_id``, ``span_name``, ``trace_id``: :mod:`fleetprof.model.spans`) never become
    series labels: a valid span moves onto the profile's unlabelled samples."""
    from fleetprof.model.spans import span_row, split_span_labels, with_span
    from fleetprof.segment.writer import IngestItem

    labels, span_labels = split_span_labels(labels)
    span = span_row(span_labels)
    if span is not None:
        profile = with_span(profile, span)

    if names is None:
        names = [(i, profile_type_id(name or "unknown", st, profile.period_type)) for i, st in enumerate(profile.sample_types)]
    out = []
    lab = dict(labels)
    lab.setdefault("service_name", DEFAULT_SERVICE)
    for i, ptype in names:
        one = select_type(profile, i) if len(profile.sample_types) > 1 or i != 0 else profile
        if one.samples.height == 0:
            continue
        out.append(IngestItem(labels=lab, profile_type=ptype, time_ms=time_ms, profile=one))
    return out


def scale_values(profile: Profile, factor_num: int, factor_den: int, new_type: ValueType) -> Profile:
    """Multiply column ``v0`` by ``num/den`` (rounded, vectorized) and relabel its type."""
    if factor_num == factor_den:
        samples = profile.samples
    elif factor_num % factor_den == 0:
        samples = profile.samples.with_columns(pl.col("v0") * (factor_num // factor_den))
    else:
        samples = profile.samples.with_columns((pl.col("v0").cast(pl.Float64) * factor_num / factor_den).round(0).cast(pl.Int64))
    return replace(profile, samples=samples, sample_types=(new_type,), default_sample_type=new_type.type)
