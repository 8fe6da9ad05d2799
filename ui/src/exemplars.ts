/** The traces behind a flame-graph node: the spans whose profile samples (tagged by the
 * pyroscope-otel span processor) spent time in the node, from the exemplars route; each
 * links to its trace when the trace store holds the span, and says "trace not stored"
 * otherwise (the samples outlive or precede their traces). */

import { getJSON } from "./api";
import { Ctx, errorText } from "./context";
import { h, notice } from "./dom";
import { formatValue } from "./format";
import { durationText } from "./otlp";
import { formatLocal } from "./time";
import { TRACE_PATCH, stateLink } from "./traces";

export interface Exemplar {
  traceId: string;
  spanId: string;
  spanName: string;
  service: string;
  value: number;
  timestampMs: number;
  durationNs: number | null;
  /** Whether the trace store holds the span (a trace link leads somewhere). */
  stored: boolean;
}

type Raw = Record<string, unknown>;

function pick(r: Raw, ...keys: string[]): unknown {
  for (const k of keys) if (r[k] !== undefined && r[k] !== null) return r[k];
  return undefined;
}

/** Rows of the exemplars route's answer (``{"exemplars": [{span_id, trace_id, span_name,
 * value, service, start_ms, duration_ms, stored}]}``; service and times are null, and
 * ``stored`` false, when the trace store lacks the span; the trace id may then be empty). */
export function parseExemplars(doc: unknown): Exemplar[] {
  const d = doc as Raw;
  const list = (Array.isArray(doc) ? doc : (pick(d, "exemplars", "spans", "traces") as unknown[]) ?? []) as Raw[];
  return list.map((r) => {
    const ts = Number(pick(r, "start_ms", "startMs", "timestampMs") ?? NaN);
    const tsNs = pick(r, "startTimeUnixNano");
    const durMs = pick(r, "duration_ms", "durationMs");
    return {
      traceId: String(pick(r, "traceId", "trace_id", "traceID") ?? ""),
      spanId: String(pick(r, "spanId", "span_id", "spanID") ?? ""),
      spanName: String(pick(r, "spanName", "span_name", "name") ?? ""),
      service: String(pick(r, "service", "serviceName", "service_name") ?? ""),
      value: Number(pick(r, "value", "total", "self") ?? 0),
      timestampMs: Number.isFinite(ts) ? ts : tsNs !== undefined ? Number(BigInt(String(tsNs)) / 1_000_000n) : NaN,
      durationNs: durMs === undefined ? null : Math.round(Number(durMs) * 1e6),
      stored: r.stored !== undefined ? r.stored === true : pick(r, "service", "start_ms", "duration_ms") !== undefined,
    };
  }).filter((e) => e.traceId !== "" || e.spanId !== "");
}

export class ExemplarsPanel {
  readonly el: HTMLElement;
  private title = h("h3", {});
  private body = h("div", {});
  private key = "";

  constructor(private ctx: Ctx) {
    const close = h("button", { type: "button", "data-testid": "exemplars-close", title: "Close the list" }, "×");
    close.addEventListener("click", () => this.ctx.update({ exemplars: "" }, true));
    this.el = h("section", { class: "exemplars", "data-testid": "exemplars", "aria-label": "traces that spent time in the node", hidden: true },
      h("div", { class: "toolbar" }, this.title, h("span", { class: "spacer" }), close), this.body);
  }

  /** List the traces behind node ``path`` (names joined by ';') of ``query``; hide on "". */
  show(query: string, from: string, until: string, path: string, units: string, sampleRate: number): void {
    this.el.hidden = !path;
    if (!path) { this.key = ""; return; }
    const key = JSON.stringify([query, from, until, path]);
    if (key === this.key) return;
    this.key = key;
    const fn = path.split(";").pop() ?? path;
    this.title.replaceChildren("Traces that spent time in ", h("code", {}, fn));
    this.el.dataset.node = path;
    this.el.dataset.loaded = "false";
    this.body.replaceChildren(h("p", { class: "muted" }, "loading…"));
    void this.load(query, from, until, path, units, sampleRate, key);
  }

  private async load(query: string, from: string, until: string, path: string, units: string, rate: number, key: string): Promise<void> {
    try {
      const rows = parseExemplars(await getJSON<unknown>("/api/v1/exemplars", { query, from, until, node: path }));
      if (key !== this.key) return;
      this.body.replaceChildren(rows.length ? this.table(rows, units, rate)
        : notice("empty", "No spans are linked to this node: span profiles need the pyroscope-otel span processor in the service.", "exemplars-empty"));
    } catch (e) {
      if (key !== this.key) return;
      this.body.replaceChildren(notice("error", errorText(e), "exemplars-error"));
    }
    this.el.dataset.loaded = "true";
  }

  private table(rows: Exemplar[], units: string, rate: number): HTMLElement {
    const hasDur = rows.some((r) => r.durationNs !== null);
    return h("div", { class: "table-wrap" }, h("table", { class: "top", "data-testid": "exemplar-table" },
      h("thead", {}, h("tr", {}, ...["Trace", "Span", "Service", "Time in node", "Start", ...(hasDur ? ["Span duration"] : [])].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, ...rows.map((r) => h("tr", { "data-trace-id": r.traceId, "data-span-id": r.spanId, "data-stored": String(r.stored), "data-testid": "exemplar" },
        h("td", { class: "fn" }, r.stored && r.traceId
          ? stateLink(this.ctx, TRACE_PATCH(r.traceId, r.spanId), r.traceId, { class: "trace-id", "data-testid": "exemplar-link" })
          : h("span", { "data-testid": "exemplar-not-stored", title: "The trace store holds no span with this id in the time range: the service may not export traces, or they were sampled out or expired." },
            r.traceId ? h("code", { class: "trace-id" }, r.traceId) : null, h("span", { class: "muted" }, `${r.traceId ? " · " : ""}trace not stored`))),
        h("td", { class: "fn" }, r.spanName),
        h("td", {}, r.service),
        h("td", { class: "num" }, formatValue(r.value, units, rate)),
        h("td", { class: "num" }, Number.isFinite(r.timestampMs) ? formatLocal(r.timestampMs) : ""),
        hasDur ? h("td", { class: "num" }, r.durationNs === null ? "" : durationText(r.durationNs)) : null)))));
  }
}
