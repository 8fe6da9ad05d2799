/** Span flame graphs in the explorer's flame-graph component, from the span-profile route
 * (samples the pyroscope-otel span processor tagged with a span's id): the flame graph of
 * one span, or of all spans a trace search matches. The profile selector names no service:
 * the agent's application name need not be the span's ``service.name``. */

import { getJSON } from "./api";
import { errorText } from "./context";
import { h, notice } from "./dom";
import { FlameGraph } from "./flame";
import { formatValue } from "./format";
import { FlameData, Flamebearer, fromFlamebearer, nodeAt, pathOf } from "./tree";

export const SPAN_PROFILE_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
/** Profiles are stamped with the start of their upload interval and may arrive a little
 * late: the query covers the span padded by this much on either side. */
export const PROFILE_PAD_MS = 60_000;
/** Most matching spans one search's flame graph merges (the route's ``limit``). */
export const SEARCH_SPAN_LIMIT = 1000;

/** One span's flame graph. */
export interface SpanProfileRequest {
  service: string;
  spanId: string;
  spanName: string;
  startMs: number;
  endMs: number;
}

/** The flame graph of the spans a trace search matches: ``search`` holds the route's
 * trace-search parameters (service, name, minDuration, maxDuration, status, tags); the
 * spans are searched in ``[startMs, endMs]``. */
export interface SearchProfileRequest {
  search: Record<string, string>;
  startMs: number;
  endMs: number;
}

/** The span-profile route's answer: a flamebearer document plus the span counts. */
interface SpanProfileDoc extends Flamebearer {
  spans?: number;
  profiledSpans?: number;
  truncated?: boolean;
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

export class SpanProfilePanel {
  readonly el: HTMLElement;
  private title = h("h3", {});
  private info = h("div", { class: "muted", "data-testid": "span-profile-info" });
  private message = h("div", {});
  private flame: FlameGraph;
  private data: FlameData | null = null;
  private key = "";
  private focusPath = "";

  constructor(onFocus: (path: string) => void, onClose: () => void, testid = "span-profile") {
    this.flame = new FlameGraph({ label: "span flame graph", onFocus: (i) => this.data && onFocus(i === 0 ? "" : pathOf(this.data, i)) });
    const close = h("button", { type: "button", "data-testid": `${testid}-close`, title: "Close the flame graph" }, "×");
    close.addEventListener("click", onClose);
    this.el = h("section", { class: "span-profile", "data-testid": testid, "aria-label": "span profile" },
      h("div", { class: "toolbar" }, this.title, h("span", { class: "spacer" }), close), this.info, this.message, this.flame.el);
    window.addEventListener("resize", () => { if (this.el.isConnected) this.draw(); });
  }

  /** Show the profile of one span (fetched once per span and range), focused on ``focus``. */
  show(req: SpanProfileRequest, focus: string): void {
    this.title.replaceChildren("Profile of span ", h("code", {}, req.spanName), ` (${req.service})`);
    this.el.dataset.spanId = req.spanId;
    this.open(JSON.stringify(req), focus, { spanId: req.spanId }, req.startMs, req.endMs, (_doc, total) => total
      ? `${total} of CPU in samples tagged with this span`
      : "No profile samples carry this span's id (yet): the agent uploads every few seconds.");
  }

  /** Show the merged profile of the spans ``req`` matches, focused on ``focus``. */
  showSearch(req: SearchProfileRequest, focus: string): void {
    this.title.replaceChildren("Flame graph of matching spans");
    delete this.el.dataset.spanId;
    const start = Math.floor(req.startMs / 1000);
    const end = Math.ceil(req.endMs / 1000);
    const params = { ...req.search, start: String(start), end: String(end), limit: String(SEARCH_SPAN_LIMIT) };
    this.open(JSON.stringify(params), focus, params, req.startMs, req.endMs, (doc, total) => {
      const spans = doc.spans ?? 0;
      const profiled = doc.profiledSpans ?? 0;
      this.el.dataset.spans = String(spans);
      this.el.dataset.profiledSpans = String(profiled);
      this.el.dataset.truncated = String(Boolean(doc.truncated));
      const first = doc.truncated ? ` (the first ${plural(spans, "matching span")} of more)` : "";
      if (!spans) return "No spans match this search in the time range.";
      const roots = profiled < spans ? " pyroscope-otel tags the samples of local root spans only: the others' work is in their local root's samples." : "";
      return total
        ? `${total} of CPU in the samples of ${profiled} of ${plural(spans, "matching span")}${first}.${roots}`
        : `None of the ${plural(spans, "matching span")}${first} has profile samples (yet).${roots}`;
    });
  }

  private open(key: string, focus: string, params: Record<string, string>, startMs: number, endMs: number,
    describe: (doc: SpanProfileDoc, total: string) => string): void {
    this.focusPath = focus;
    if (key === this.key) { this.draw(); return; }
    this.key = key;
    this.data = null;
    delete this.el.dataset.loaded;
    this.info.textContent = "";
    this.message.replaceChildren();
    this.draw();
    void this.load(key, params, startMs, endMs, describe);
  }

  private async load(key: string, params: Record<string, string>, startMs: number, endMs: number,
    describe: (doc: SpanProfileDoc, total: string) => string): Promise<void> {
    try {
      const doc = await getJSON<SpanProfileDoc>("/api/v1/span-profile", {
        ...params, query: SPAN_PROFILE_TYPE,
        from: String(Math.floor(startMs - PROFILE_PAD_MS)), until: String(Math.ceil(endMs + PROFILE_PAD_MS)),
      });
      if (key !== this.key) return;
      this.data = fromFlamebearer(doc);
      const total = this.data.total[0];
      const text = describe(doc, total ? formatValue(total, this.data.units, this.data.sampleRate) : "");
      if (total) this.info.textContent = text;
      else this.message.replaceChildren(notice("empty", text, "span-profile-empty"));
    } catch (e) {
      if (key !== this.key) return;
      this.message.replaceChildren(notice("error", `Span profile: ${errorText(e)}`, "span-profile-error"));
    }
    this.el.dataset.loaded = "true";
    this.draw();
  }

  private draw(): void {
    const d = this.data;
    this.flame.el.hidden = !d || d.total[0] === 0;
    if (!d) return;
    this.flame.setData(d, nodeAt(d, this.focusPath));
    this.flame.render();
  }
}
