// Exports two traces with the official OpenTelemetry JavaScript SDK through its OTLP/HTTP
// JSON exporter (@opentelemetry/exporter-trace-otlp-http) and prints, as one JSON document
// on stdout, what it created: trace and span ids, exact times, and the request bodies the
// exporter sent (serialized by the exporter's own JsonTraceSerializer).
//
// Usage: node export.mjs --url http://127.0.0.1:4040/v1/traces --service NAME
//          [--header Name=Value]... [--gzip] [--overflow]
//
// --gzip      the exporter's `compression: 'gzip'`
// --overflow  adds an integer attribute of 2**63 (a JS number beyond int64)
//
// Exit status: 0 when every export succeeded, 1 when one failed (the output then carries
// the error's message, HTTP code and response body), 2 for bad arguments.

import { context, createTraceState, diag, DiagLogLevel, SpanKind, SpanStatusCode, trace, TraceFlags } from "@opentelemetry/api";
import { randomBytes } from "node:crypto";

import { ExportResultCode } from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";

function parseArgs(argv) {
  const opts = { url: "", service: "", headers: {}, gzip: false, overflow: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--gzip") opts.gzip = true;
    else if (a === "--overflow") opts.overflow = true;
    else if (a === "--url" || a === "--service" || a === "--header") {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      if (a === "--header") {
        const eq = v.indexOf("=");
        if (eq <= 0) throw new Error(`--header needs Name=Value, got ${JSON.stringify(v)}`);
        opts.headers[v.slice(0, eq)] = v.slice(eq + 1);
      } else opts[a.slice(2)] = v;
    } else throw new Error(`unknown argument ${JSON.stringify(a)}`);
  }
  if (!opts.url || !opts.service) throw new Error("--url and --service are required");
  return opts;
}

/** A SpanExporter that records each request body (the exporter's own serializer) and result. */
class RecordingExporter {
  constructor(inner) {
    this.inner = inner;
    this.bodies = [];
    this.failures = [];
  }
  export(spans, done) {
    this.bodies.push(JSON.parse(new TextDecoder().decode(JsonTraceSerializer.serializeRequest(spans))));
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) {
        const e = result.error ?? {};
        this.failures.push({ message: String(e.message ?? e), code: e.code ?? null, data: e.data ?? null });
      }
      done(result);
    });
  }
  shutdown() { return this.inner.shutdown(); }
  forceFlush() { return this.inner.forceFlush(); }
}

/** An HrTime `ns` nanoseconds after `base` (an HrTime). */
function at(base, ns) {
  const total = BigInt(base[0]) * 1_000_000_000n + BigInt(base[1]) + BigInt(ns);
  return [Number(total / 1_000_000_000n), Number(total % 1_000_000_000n)];
}

function nanos(hr) {
  return (BigInt(hr[0]) * 1_000_000_000n + BigInt(hr[1])).toString();
}

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`export.mjs: ${e.message}\n`);
    process.exit(2);
  }
  const logs = [];
  const record = (level) => (msg, ...rest) => logs.push({ level, message: [msg, ...rest.map((r) => String(r?.message ?? r))].join(" ") });
  diag.setLogger({ error: record("error"), warn: record("warn"), info: () => {}, debug: () => {}, verbose: () => {} }, DiagLogLevel.WARN);

  const exporter = new RecordingExporter(new OTLPTraceExporter({
    url: opts.url, headers: opts.headers, timeoutMillis: 30000, ...(opts.gzip ? { compression: "gzip" } : {}),
  }));
  const resource = defaultResource().merge(resourceFromAttributes({
    "service.name": opts.service, "service.version": "1.2.3", "deployment.environment": "js-test",
    "host.cpus": 8, "host.load": 0.75, "host.virtual": true, "process.command_args": ["node", "export.mjs"],
  }, { schemaUrl: "https://opentelemetry.io/schemas/1.26.0" }));
  const provider = new BasicTracerProvider({
    resource, spanProcessors: [new BatchSpanProcessor(exporter)],
    spanLimits: { attributeCountLimit: 32, eventCountLimit: 4, linkCountLimit: 2 },
  });
  const web = provider.getTracer("fleetprof.tests.web", "2.3.4", { schemaUrl: "https://opentelemetry.io/schemas/1.24.0" });
  const db = provider.getTracer("fleetprof.tests.db", "0.9.0");

  const nowMs = Date.now();
  const base = [Math.floor(nowMs / 1000) - 5, 123_456_789];
  const t = (ns) => at(base, ns);
  const attrs = {
    "http.route": "/checkout", "http.status_code": 200, "app.ratio": 0.25, "app.cached": false,
    "app.tags": ["a", "b", "ü"], "app.ints": [1, -2, 3], "app.doubles": [1.5, 2.25], "app.numbers": [1.5, 2],
    "app.bools": [true, false], "app.empty": [], "app.sparse": ["x", null, "y"],
    "app.int.big": 2 ** 60 + 1024, "app.int.max_safe": Number.MAX_SAFE_INTEGER, "app.int.negative": -(2 ** 62),
    "app.whole_double": 2.0, "app.unicode": "héllo ✓ 日本", "app.empty_string": "", "weird=key": "a=b",
    ...(opts.overflow ? { "app.int.overflow": 2 ** 63 } : {}),
  };

  const root = web.startSpan("GET /checkout", { kind: SpanKind.SERVER, startTime: t(0), attributes: attrs });
  root.setStatus({ code: SpanStatusCode.OK });
  const rootCtx = trace.setSpan(context.active(), root);
  const query = db.startSpan("SELECT orders", { kind: SpanKind.CLIENT, startTime: t(1_000_001), attributes: { "db.system": "postgresql", "db.rows": 3 } }, rootCtx);
  query.addEvent("query.sent", { "db.statement.bytes": 42, "db.retry": false }, t(1_500_003));
  query.recordException({ name: "TimeoutError", message: "deadline exceeded", stack: "TimeoutError: deadline exceeded\n    at query (db.js:1:1)" }, t(2_000_007));
  query.setStatus({ code: SpanStatusCode.ERROR, message: "deadline exceeded" });
  // past the provider's limits (dropped counts); NaN and Infinity (JSON null in the body)
  const many = { "app.nan": NaN, "app.inf": Infinity };
  for (let i = 0; i < 38; i++) many[`app.n${i}`] = i;
  const parse = web.startSpan("parse rows", {
    kind: SpanKind.INTERNAL, startTime: t(2_100_000), attributes: many,
    links: [0, 1, 2].map((i) => ({ context: { traceId: randomBytes(16).toString("hex"), spanId: randomBytes(8).toString("hex"), traceFlags: TraceFlags.NONE }, attributes: { "link.i": i } })),
  }, trace.setSpan(context.active(), query));
  for (let i = 0; i < 6; i++) parse.addEvent(`row ${i}`, { "row.i": i }, t(2_100_000 + i * 1000));
  parse.end(t(2_200_011));
  query.end(t(3_000_013));

  // a second trace, continued from a remote parent (trace state, remote flag), linked both ways
  const remote = { traceId: randomBytes(16).toString("hex"), spanId: randomBytes(8).toString("hex"), traceFlags: TraceFlags.SAMPLED,
    isRemote: true, traceState: createTraceState("vendor=abc,other=1") };
  const publish = web.startSpan("publish order", { kind: SpanKind.PRODUCER, startTime: t(3_100_000) }, rootCtx);
  const consume = db.startSpan("consume order", {
    kind: SpanKind.CONSUMER, startTime: t(3_200_000),
    links: [{ context: publish.spanContext(), attributes: { "link.reason": "follows", "link.n": 1 } }],
  }, trace.setSpanContext(context.active(), remote));
  publish.addLink({ context: consume.spanContext(), attributes: { "messaging.system": "sqs" } });
  consume.end(t(3_900_000));
  publish.end(t(3_950_000));
  root.end(t(4_000_017));

  try {
    await provider.forceFlush();
  } catch (e) {
    if (!exporter.failures.length) exporter.failures.push({ message: String(e?.message ?? e), code: e?.code ?? null, data: e?.data ?? null });
  }
  await provider.shutdown().catch(() => {});

  const spans = {};
  for (const [s, parent] of [[root, ""], [query, root], [parse, query], [publish, root], [consume, null]]) {
    const ctx = s.spanContext();
    spans[s.name] = {
      traceId: ctx.traceId, spanId: ctx.spanId, parentSpanId: parent === null ? remote.spanId : parent ? parent.spanContext().spanId : "",
      startNs: nanos(s.startTime), endNs: nanos(s.endTime),
    };
  }
  const out = { service: opts.service, traceId: root.spanContext().traceId, remote: { traceId: remote.traceId, spanId: remote.spanId },
    baseNs: nanos(base), spans, bodies: exporter.bodies, failures: exporter.failures, logs };
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(exporter.failures.length ? 1 : 0);
}

main().catch((e) => {
  process.stderr.write(`export.mjs: ${e.stack ?? e}\n`);
  process.exit(1);
});
