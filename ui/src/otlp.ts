/** Traces as the query API returns them (Tempo's `{"batches": [...]}` or OTLP JSON's
 * `{"resourceSpans": [...]}`), decoded into flat spans with times relative to the trace. */

export type AnyValue = {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  bytesValue?: string;
  arrayValue?: { values?: AnyValue[] };
  kvlistValue?: { values?: KeyValue[] };
};
export interface KeyValue { key: string; value?: AnyValue }

interface RawEvent { timeUnixNano?: string | number; name?: string; attributes?: KeyValue[] }
interface RawLink { traceId?: string; spanId?: string; attributes?: KeyValue[] }
interface RawSpan {
  traceId?: string; spanId?: string; parentSpanId?: string; name?: string; kind?: string | number;
  startTimeUnixNano?: string | number; endTimeUnixNano?: string | number;
  attributes?: KeyValue[]; events?: RawEvent[]; links?: RawLink[];
  status?: { code?: string | number; message?: string };
}
interface RawScopeSpans { scope?: { name?: string; version?: string }; instrumentationLibrary?: { name?: string; version?: string }; spans?: RawSpan[] }
interface RawBatch { resource?: { attributes?: KeyValue[] }; scopeSpans?: RawScopeSpans[]; instrumentationLibrarySpans?: RawScopeSpans[] }
export interface TraceDoc { batches?: RawBatch[]; resourceSpans?: RawBatch[] }

export type Attr = [string, string];

export interface SpanEvent { offsetNs: number; name: string; attributes: Attr[] }
export interface SpanLink { traceId: string; spanId: string; attributes: Attr[] }

export interface Span {
  spanId: string;
  parentId: string;
  traceId: string;
  name: string;
  service: string;
  kind: string;
  /** Start and duration in nanoseconds, the start relative to the trace's first span. */
  offsetNs: number;
  durationNs: number;
  startUnixMs: number;
  attributes: Attr[];
  resource: Attr[];
  scope: string;
  events: SpanEvent[];
  links: SpanLink[];
  statusCode: "UNSET" | "OK" | "ERROR";
  statusMessage: string;
}

export interface Trace {
  traceId: string;
  startUnixNs: bigint;
  durationNs: number;
  spans: Span[];
  services: string[];
}

const KINDS = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"];
const CODES = ["UNSET", "OK", "ERROR"] as const;

/** A trace or span id as lowercase hex: OTLP JSON sends hex, Tempo's protobuf JSON base64. */
export function hexId(id: string | undefined, bytes: number): string {
  if (!id) return "";
  if (id.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(id)) return id.toLowerCase();
  try {
    const raw = atob(id);
    if (raw.length === bytes) return [...raw].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");
  } catch {
    /* not base64 */
  }
  return id.toLowerCase();
}

function ns(v: string | number | undefined): bigint {
  if (v === undefined || v === null || v === "") return 0n;
  try {
    return BigInt(typeof v === "number" ? Math.round(v) : v);
  } catch {
    return 0n;
  }
}

/** An attribute value as display text (arrays and maps as JSON). */
export function valueText(v: AnyValue | undefined): string {
  if (!v) return "";
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return String(v.boolValue);
  if (v.intValue !== undefined) return String(v.intValue);
  if (v.doubleValue !== undefined) return String(v.doubleValue);
  if (v.bytesValue !== undefined) return v.bytesValue;
  if (v.arrayValue) return JSON.stringify((v.arrayValue.values ?? []).map(valueText));
  if (v.kvlistValue) return JSON.stringify(Object.fromEntries((v.kvlistValue.values ?? []).map((kv) => [kv.key, valueText(kv.value)])));
  return "";
}

function attrs(kvs: KeyValue[] | undefined): Attr[] {
  return (kvs ?? []).map((kv) => [String(kv.key), valueText(kv.value)]);
}

function kindName(k: string | number | undefined): string {
  if (typeof k === "number") return KINDS[k] ?? "UNSPECIFIED";
  if (!k) return "UNSPECIFIED";
  return /^\d+$/.test(k) ? KINDS[Number(k)] ?? "UNSPECIFIED" : k.replace(/^SPAN_KIND_/, "");
}

function statusName(c: string | number | undefined): Span["statusCode"] {
  if (typeof c === "number" || (typeof c === "string" && /^\d+$/.test(c))) return CODES[Number(c)] ?? "UNSET";
  const s = String(c ?? "").replace(/^STATUS_CODE_/, "");
  return s === "OK" || s === "ERROR" ? s : "UNSET";
}

/** Flat spans of a trace document, sorted by start time. */
export function decodeTrace(doc: TraceDoc, traceId = ""): Trace {
  const raw: Array<{ s: RawSpan; start: bigint; end: bigint; resource: Attr[]; service: string; scope: string }> = [];
  for (const b of doc.batches ?? doc.resourceSpans ?? []) {
    const resource = attrs(b.resource?.attributes);
    const service = resource.find(([k]) => k === "service.name")?.[1] ?? "unknown_service";
    for (const ss of b.scopeSpans ?? b.instrumentationLibrarySpans ?? []) {
      const sc = ss.scope ?? ss.instrumentationLibrary;
      const scope = sc?.name ? `${sc.name}${sc.version ? ` ${sc.version}` : ""}` : "";
      for (const s of ss.spans ?? []) {
        const start = ns(s.startTimeUnixNano);
        const end = ns(s.endTimeUnixNano);
        raw.push({ s, start, end: end < start ? start : end, resource, service, scope });
      }
    }
  }
  if (!raw.length) return { traceId, startUnixNs: 0n, durationNs: 0, spans: [], services: [] };
  let t0 = raw[0].start;
  let t1 = raw[0].end;
  for (const r of raw) { if (r.start < t0) t0 = r.start; if (r.end > t1) t1 = r.end; }
  const spans = raw.map(({ s, start, end, resource, service, scope }): Span => ({
    spanId: hexId(s.spanId, 8),
    parentId: hexId(s.parentSpanId, 8),
    traceId: hexId(s.traceId, 16) || traceId,
    name: String(s.name ?? ""),
    service,
    kind: kindName(s.kind),
    offsetNs: Number(start - t0),
    durationNs: Number(end - start),
    startUnixMs: Number(start / 1_000_000n),
    attributes: attrs(s.attributes),
    resource,
    scope,
    events: (s.events ?? []).map((e) => ({ offsetNs: Number(ns(e.timeUnixNano) - start), name: String(e.name ?? ""), attributes: attrs(e.attributes) })),
    links: (s.links ?? []).map((l) => ({ traceId: hexId(l.traceId, 16), spanId: hexId(l.spanId, 8), attributes: attrs(l.attributes) })),
    statusCode: statusName(s.status?.code),
    statusMessage: String(s.status?.message ?? ""),
  }));
  spans.sort((a, b) => a.offsetNs - b.offsetNs || a.spanId.localeCompare(b.spanId));
  const services = [...new Set(spans.map((s) => s.service))];
  return { traceId: traceId || spans[0].traceId, startUnixNs: t0, durationNs: Number(t1 - t0), spans, services };
}

/** Duration in ns as text: µs below 1 ms, ms below 1 s, else seconds. */
export function durationText(nsv: number): string {
  const a = Math.abs(nsv);
  if (a < 1_000) return `${nsv} ns`;
  if (a < 1_000_000) return `${(nsv / 1_000).toFixed(a < 10_000 ? 2 : 1)} µs`;
  if (a < 1_000_000_000) return `${(nsv / 1_000_000).toFixed(a < 10_000_000 ? 2 : 1)} ms`;
  return `${(nsv / 1_000_000_000).toFixed(2)} s`;
}

export const PROFILE_ID_ATTR = "pyroscope.profile.id";

/** The span id whose profile samples hold this span's work: the span's own
 * ``pyroscope.profile.id`` (pyroscope-otel sets it on local root spans), else that of its
 * nearest ancestor in the same service that has one; "" when none. */
export function profileSpanOf(spans: Map<string, Span>, s: Span): string {
  for (let cur: Span | undefined = s; cur; cur = spans.get(cur.parentId)) {
    if (cur.service !== s.service) return "";
    const id = cur.attributes.find(([k]) => k === PROFILE_ID_ATTR)?.[1];
    if (id) return id;
  }
  return "";
}
