/** Trace search (service, span name, duration range, status, tags, the explorer's time
 * range) and the trace view (waterfall, span details, the span's flame graph). Everything
 * the views show follows from the URL state; links are real URLs. */

import { ApiError, getJSON } from "./api";
import { serviceColor } from "./colors";
import { Ctx, errorText, range } from "./context";
import { h, notice, option } from "./dom";
import { Attr, PROFILE_ID_ATTR, Span, Trace, TraceDoc, decodeTrace, durationText, profileSpanOf } from "./otlp";
import { SpanProfilePanel } from "./spanprofile";
import { Matcher, State, matcherText, stateSearch } from "./state";
import { formatLocal } from "./time";
import { Waterfall } from "./waterfall";

export interface TraceHit {
  traceID: string;
  rootServiceName?: string;
  rootTraceName?: string;
  startTimeUnixNano?: string;
  durationMs?: number;
  spanCount?: number;
  spanSet?: { matched?: number };
}

/** Tempo duration text: a number with ns, us, µs, ms, s, m or h (e.g. ``150ms``, ``1.5s``). */
export const DURATION_RE = /^\d+(\.\d+)?(ns|us|µs|ms|s|m|h)$/;
const TRACE_ID_RE = /^[0-9a-fA-F]{1,32}$/;

/** Tempo's ``tags`` parameter: logfmt ``key="value"`` pairs separated by spaces. */
export function logfmt(tags: Matcher[]): string {
  return tags.map((t) => `${t.name}=${JSON.stringify(t.value)}`).join(" ");
}

/** A link to ``patch`` applied to the current state, followed through ``ctx.update`` (so
 * the page does not reload) unless opened elsewhere. */
export function stateLink(ctx: Ctx, patch: Partial<State>, text: string | Node, attrs: Record<string, string> = {}): HTMLAnchorElement {
  const a = h("a", { href: `?${stateSearch({ ...ctx.state, ...patch })}`, ...attrs }, text);
  a.addEventListener("click", (e) => {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    ctx.update(patch);
  });
  return a;
}

export const TRACE_PATCH = (trace: string, span = ""): Partial<State> => ({ view: "trace", trace, span, collapsed: "", profile: "", pfocus: "" });

function tagValues(doc: unknown): string[] {
  const d = doc as { tagValues?: Array<string | { value?: string }>; tagNames?: string[]; scopes?: Array<{ tags?: string[] }> };
  if (d.tagValues) return d.tagValues.map((v) => (typeof v === "string" ? v : String(v.value ?? "")));
  if (d.tagNames) return d.tagNames;
  if (d.scopes) return d.scopes.flatMap((s) => s.tags ?? []);
  return [];
}

/** The search conditions of the state as ``/api/search`` (and the span-profile route)
 * take them; unset conditions are empty strings. */
export function searchParams(s: State): Record<string, string> {
  return { service: s.tservice, name: s.tname, minDuration: s.tmin, maxDuration: s.tmax, status: s.tstatus, tags: logfmt(s.ttags) };
}

export class TraceSearchView {
  readonly el: HTMLElement;
  private service = h("input", { list: "trace-services", "aria-label": "trace service", "data-testid": "trace-service", placeholder: "any service", size: 14 });
  private name = h("input", { list: "trace-span-names", "aria-label": "span name", "data-testid": "trace-name", placeholder: "any span name", size: 16 });
  private min = h("input", { "aria-label": "minimum duration", "data-testid": "trace-min", placeholder: "e.g. 100ms", size: 8 });
  private max = h("input", { "aria-label": "maximum duration", "data-testid": "trace-max", placeholder: "e.g. 2s", size: 8 });
  private status = h("select", { "aria-label": "status", "data-testid": "trace-status" }, option("", "any status"), option("error", "error"), option("ok", "ok"), option("unset", "unset"));
  private limit = h("select", { "aria-label": "limit", "data-testid": "trace-limit" }, ...["20", "50", "100", "500"].map((v) => option(v, `${v} traces`)));
  private tagName = h("input", { list: "trace-tag-names", "aria-label": "tag name", "data-testid": "trace-tag-name", placeholder: "tag", size: 14 });
  private tagValue = h("input", { list: "trace-tag-values", "aria-label": "tag value", "data-testid": "trace-tag-value", placeholder: "value", size: 12 });
  private chips = h("span", { class: "chips", "data-testid": "trace-tags" });
  private lists = {
    services: h("datalist", { id: "trace-services" }), names: h("datalist", { id: "trace-span-names" }),
    tagNames: h("datalist", { id: "trace-tag-names" }), tagValues: h("datalist", { id: "trace-tag-values" }),
  };
  private error = h("div", { class: "field-error", role: "alert", "data-testid": "trace-form-error", hidden: true });
  private results = h("div", { class: "trace-results" });
  private profileAction = h("span", {});
  private profile: SpanProfilePanel;
  private loadedKey = "";
  private tags: Matcher[] = [];
  private abort: AbortController | null = null;

  constructor(private ctx: Ctx) {
    const search = h("button", { type: "button", "data-testid": "trace-search", class: "primary" }, "Search");
    search.addEventListener("click", () => this.submit());
    const addTag = h("button", { type: "button", "data-testid": "trace-tag-add", title: "Add this tag" }, "+");
    addTag.addEventListener("click", () => this.addTag());
    for (const i of [this.service, this.name, this.min, this.max]) i.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); this.submit(); } });
    for (const i of [this.tagName, this.tagValue]) i.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); this.addTag(); } });
    this.status.addEventListener("change", () => this.submit());
    this.limit.addEventListener("change", () => this.submit());
    this.tagName.addEventListener("focus", () => void this.suggest(this.lists.tagNames, "/api/search/tags"));
    this.tagName.addEventListener("change", () => this.tagName.value && void this.suggest(this.lists.tagValues, `/api/search/tag/${encodeURIComponent(this.tagName.value.trim())}/values`));
    this.tagValue.addEventListener("focus", () => this.tagName.value && void this.suggest(this.lists.tagValues, `/api/search/tag/${encodeURIComponent(this.tagName.value.trim())}/values`));
    this.service.addEventListener("focus", () => void this.suggest(this.lists.services, "/api/search/tag/service.name/values"));
    this.name.addEventListener("focus", () => void this.suggest(this.lists.names, "/api/search/tag/name/values"));
    const idIn = h("input", { "aria-label": "trace id", "data-testid": "trace-id-input", placeholder: "trace id", size: 34 });
    const go = h("button", { type: "button", "data-testid": "trace-id-go" }, "Open");
    const open = () => {
      const id = idIn.value.trim();
      if (!TRACE_ID_RE.test(id)) { this.showError("A trace id is 1 to 32 hexadecimal digits."); return; }
      this.ctx.update(TRACE_PATCH(id.toLowerCase()));
    };
    go.addEventListener("click", open);
    idIn.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); open(); } });
    const form = h("div", { class: "trace-form", role: "search", "aria-label": "trace search" },
      h("label", {}, "Service ", this.service), h("label", {}, "Span name ", this.name),
      h("label", {}, "Duration ", this.min, " – ", this.max), h("label", {}, "Status ", this.status),
      h("span", { class: "labels" }, h("span", { class: "muted" }, "Tags "), this.chips, this.tagName, "=", this.tagValue, addTag),
      this.limit, search, this.profileAction, h("span", { class: "spacer" }), idIn, go,
      ...Object.values(this.lists), this.error);
    this.profile = new SpanProfilePanel((path) => this.ctx.update({ pfocus: path }, true), () => this.ctx.update({ tprofile: "", pfocus: "" }), "search-profile");
    this.el = h("section", { class: "traces", "aria-label": "trace search" }, form, this.profile.el, this.results);
  }

  private showError(message: string | null): void {
    this.error.hidden = message === null;
    this.error.textContent = message ?? "";
  }

  private submit(): void {
    const min = this.min.value.trim();
    const max = this.max.value.trim();
    for (const [v, what] of [[min, "minimum"], [max, "maximum"]]) {
      if (v && !DURATION_RE.test(v)) { this.showError(`The ${what} duration '${v}' is not a duration like 150ms, 2s or 1m.`); return; }
    }
    this.showError(null);
    this.ctx.update({ tservice: this.service.value.trim(), tname: this.name.value.trim(), tmin: min, tmax: max, tstatus: this.status.value, tlimit: this.limit.value, ttags: this.tags });
  }

  private addTag(): void {
    const name = this.tagName.value.trim();
    if (!name) { this.tagName.focus(); return; }
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name)) { this.showError(`'${name}' is not a valid tag name`); return; }
    this.tags = [...this.tags, { name, op: "=", value: this.tagValue.value }];
    this.tagName.value = "";
    this.tagValue.value = "";
    this.submit();
  }

  private async suggest(list: HTMLDataListElement, path: string): Promise<void> {
    try {
      const s = this.ctx.state;
      const [a, b] = range(s.from, s.until);
      const values = tagValues(await getJSON<unknown>(path, { start: Math.floor(a / 1000), end: Math.ceil(b / 1000) }));
      list.replaceChildren(...values.slice(0, 500).map((v) => option(v)));
    } catch {
      /* suggestions are optional */
    }
  }

  update(ctx: Ctx, force: boolean): void {
    const s = ctx.state;
    this.service.value = s.tservice;
    this.name.value = s.tname;
    this.min.value = s.tmin;
    this.max.value = s.tmax;
    this.status.value = s.tstatus;
    if (![...this.limit.options].some((o) => o.value === s.tlimit)) this.limit.append(option(s.tlimit, `${s.tlimit} traces`));
    this.limit.value = s.tlimit;
    this.tags = s.ttags;
    this.chips.replaceChildren(...s.ttags.map((t, i) => {
      const rm = h("button", { type: "button", class: "chip-x", "aria-label": `remove ${matcherText(t)}` }, "×");
      rm.addEventListener("click", () => this.ctx.update({ ttags: this.tags.filter((_, j) => j !== i) }));
      return h("span", { class: "chip", "data-testid": "trace-tag" }, `${t.name}=${JSON.stringify(t.value)}`, rm);
    }));
    const key = JSON.stringify([s.tservice, s.tname, s.tmin, s.tmax, s.tstatus, s.ttags, s.tlimit, s.from, s.until, s.tenant]);
    if (force || key !== this.loadedKey) { this.loadedKey = key; void this.load(s); }
    this.updateProfile(ctx);
  }

  /** The "flame graph of matching spans" action and, while ``tprofile`` is set, that
   * flame graph (the span-profile route's trace search over the same conditions). */
  private updateProfile(ctx: Ctx): void {
    const s = ctx.state;
    const search = searchParams(s);
    const any = Object.values(search).some((v) => v !== "");
    this.profileAction.replaceChildren(any
      ? stateLink(ctx, { tprofile: "1", pfocus: "" }, "Flame graph of matching spans", {
        class: "button", "data-testid": "search-profile-open", title: "The CPU profile samples of the spans this search matches, merged" })
      : h("button", { type: "button", disabled: true, "data-testid": "search-profile-open", title: "Set a search condition first" }, "Flame graph of matching spans"));
    this.profile.el.hidden = !(s.tprofile && any);
    if (this.profile.el.hidden) return;
    const [a, b] = range(s.from, s.until);
    this.profile.showSearch({ search, startMs: a, endMs: b }, s.pfocus);
  }

  private async load(s: State): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    const [a, b] = range(s.from, s.until);
    this.results.dataset.loaded = "false";
    try {
      const doc = await getJSON<{ traces?: TraceHit[] }>("/api/search", {
        ...searchParams(s), limit: s.tlimit, start: Math.floor(a / 1000), end: Math.ceil(b / 1000),
      }, abort.signal);
      if (abort.signal.aborted) return;
      this.showResults(doc.traces ?? []);
    } catch (e) {
      if (abort.signal.aborted) return;
      this.results.replaceChildren(notice("error", errorText(e), "trace-search-error"));
    }
    this.results.dataset.loaded = "true";
  }

  private showResults(hits: TraceHit[]): void {
    if (!hits.length) {
      this.results.replaceChildren(notice("empty", "No traces match in this time range.", "trace-results-empty"));
      return;
    }
    const anyCount = hits.some((t) => t.spanCount !== undefined);
    const cols = ["Trace", "Root service", "Root span", "Start", "Duration", ...(anyCount ? ["Spans"] : [])];
    const rows = hits.map((t) => {
      const start = t.startTimeUnixNano ? Number(BigInt(t.startTimeUnixNano) / 1_000_000n) : NaN;
      const service = t.rootServiceName ?? "";
      const link = stateLink(this.ctx, TRACE_PATCH(t.traceID), t.traceID, { class: "trace-id" });
      const tr = h("tr", { "data-trace-id": t.traceID, "data-testid": "trace-result", tabindex: 0 },
        h("td", { class: "fn" }, link),
        h("td", {}, h("span", { class: "swatch-inline" }), service),
        h("td", { class: "fn" }, t.rootTraceName ?? ""),
        h("td", { class: "num" }, Number.isFinite(start) ? formatLocal(start) : ""),
        h("td", { class: "num" }, t.durationMs !== undefined ? durationText(Math.round(t.durationMs * 1e6)) : ""),
        anyCount ? h("td", { class: "num" }, String(t.spanCount ?? "")) : null);
      (tr.querySelector(".swatch-inline") as HTMLElement).style.background = serviceColor(service);
      tr.addEventListener("click", (e) => { if (!(e.target as HTMLElement).closest("a")) this.ctx.update(TRACE_PATCH(t.traceID)); });
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") this.ctx.update(TRACE_PATCH(t.traceID)); });
      return tr;
    });
    this.results.replaceChildren(
      h("p", { class: "muted" }, `${hits.length} trace${hits.length === 1 ? "" : "s"}`),
      h("div", { class: "table-wrap" }, h("table", { class: "top", "data-testid": "trace-results" },
        h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, ...rows))));
  }
}

function attrTable(rows: Attr[], testid: string, empty = "none"): HTMLElement {
  if (!rows.length) return h("p", { class: "muted", "data-testid": testid }, empty);
  return h("table", { class: "kv", "data-testid": testid }, h("tbody", {}, ...rows.map(([k, v]) =>
    h("tr", { "data-key": k }, h("th", { scope: "row" }, k), h("td", {}, v)))));
}

export class TraceView {
  readonly el: HTMLElement;
  private header = h("div", { class: "trace-header", "data-testid": "trace-header" });
  private message = h("div", {});
  private waterfall: Waterfall;
  private profile: SpanProfilePanel;
  private trace: Trace | null = null;
  private byId = new Map<string, Span>();
  private loaded = "";

  constructor(private ctx: Ctx) {
    this.waterfall = new Waterfall({
      onSelect: (id) => this.ctx.update({ span: this.ctx.state.span === id ? "" : id }, true),
      onToggle: (id) => {
        const set = new Set(this.ctx.state.collapsed.split(",").filter(Boolean));
        if (set.has(id)) set.delete(id); else set.add(id);
        this.ctx.update({ collapsed: [...set].join(",") }, true);
      },
    });
    this.profile = new SpanProfilePanel((path) => this.ctx.update({ pfocus: path }, true), () => this.ctx.update({ profile: "", pfocus: "" }));
    this.el = h("section", { class: "trace-view", "aria-label": "trace view" }, this.header, this.message, this.waterfall.el, this.profile.el);
  }

  update(ctx: Ctx, force: boolean): void {
    const s = ctx.state;
    if (!s.trace) {
      this.trace = null;
      this.loaded = "";
      this.header.replaceChildren(stateLink(ctx, { view: "traces" }, "← Trace search"));
      this.message.replaceChildren(notice("empty", "Pick a trace in the trace search.", "trace-none"));
      this.waterfall.el.replaceChildren();
      this.profile.el.hidden = true;
      return;
    }
    const key = JSON.stringify([s.trace, s.tenant]);
    if (force || key !== this.loaded) { this.loaded = key; void this.load(s.trace, key); return; }
    this.draw();
  }

  private async load(id: string, key: string): Promise<void> {
    this.trace = null;
    this.el.dataset.loaded = "false";
    this.message.replaceChildren();
    this.waterfall.el.replaceChildren();
    this.profile.el.hidden = true;
    this.header.replaceChildren(stateLink(this.ctx, { view: "traces" }, "← Trace search"), h("span", { class: "muted" }, ` loading trace ${id}…`));
    if (!TRACE_ID_RE.test(id)) {
      this.message.replaceChildren(notice("error", `'${id}' is not a trace id (1 to 32 hexadecimal digits).`, "trace-error"));
      this.el.dataset.loaded = "true";
      return;
    }
    try {
      const doc = await getJSON<TraceDoc>(`/api/traces/${encodeURIComponent(id)}`);
      if (key !== this.loaded) return;
      this.trace = decodeTrace(doc, id.toLowerCase());
      this.byId = new Map(this.trace.spans.map((sp) => [sp.spanId, sp]));
      if (!this.trace.spans.length) this.message.replaceChildren(notice("empty", `Trace ${id} has no spans.`, "trace-empty"));
    } catch (e) {
      if (key !== this.loaded) return;
      const text = e instanceof ApiError && e.status === 404 ? `Trace ${id} not found.` : errorText(e);
      this.message.replaceChildren(notice("error", text, "trace-error"));
    }
    this.el.dataset.loaded = "true";
    this.draw();
  }

  private draw(): void {
    const t = this.trace;
    const s = this.ctx.state;
    if (!t || !t.spans.length) return;
    const root = t.spans.find((sp) => !sp.parentId || !this.byId.has(sp.parentId)) ?? t.spans[0];
    const errors = t.spans.filter((sp) => sp.statusCode === "ERROR").length;
    this.header.replaceChildren(
      stateLink(this.ctx, { view: "traces" }, "← Trace search"),
      h("h2", { "data-testid": "trace-title" }, h("span", {}, root.service), ": ", h("span", {}, root.name)),
      h("div", { class: "trace-meta" },
        h("span", {}, "Trace ", h("code", { "data-testid": "trace-id" }, t.traceId)),
        h("span", {}, `Start ${formatLocal(Number(t.startUnixNs / 1_000_000n))}`),
        h("span", { "data-testid": "trace-duration" }, `Duration ${durationText(t.durationNs)}`),
        h("span", {}, `${t.spans.length} spans`),
        errors ? h("span", { class: "wf-error-text" }, `${errors} error${errors === 1 ? "" : "s"}`) : null,
        h("span", { class: "legend", "data-testid": "trace-services" }, ...t.services.map((svc) => {
          const sw = h("span", { class: "swatch" });
          sw.style.background = serviceColor(svc);
          return h("span", { class: "legend-item" }, sw, svc);
        }))));
    const profiled = new Set(t.spans.filter((sp) => sp.attributes.some(([k]) => k === PROFILE_ID_ATTR)).map((sp) => sp.spanId));
    const selected = this.byId.get(s.span);
    const collapsed = new Set(s.collapsed.split(",").filter(Boolean));
    this.waterfall.render(t, s.span, collapsed, profiled, selected ? this.details(selected) : null);
    this.profile.el.hidden = !s.profile;
    if (s.profile) {
      // pyroscope-otel's profile id is the local root span's id; the whole trace otherwise
      const sp = this.byId.get(s.profile);
      const t0 = Number(t.startUnixNs / 1_000_000n);
      this.profile.show({
        service: (sp ?? selected ?? root).service, spanId: s.profile, spanName: sp?.name ?? s.profile,
        startMs: sp ? sp.startUnixMs : t0, endMs: sp ? sp.startUnixMs + sp.durationNs / 1e6 : t0 + t.durationNs / 1e6,
      }, s.pfocus);
    }
  }

  private details(sp: Span): HTMLElement {
    const profileId = profileSpanOf(this.byId, sp);
    const via = profileId && profileId !== sp.spanId ? this.byId.get(profileId) : undefined;
    const actions = h("div", { class: "toolbar" });
    if (profileId) {
      const label = via ? `Profile (local root ${via.name})` : "Profile";
      actions.append(stateLink(this.ctx, { profile: profileId, pfocus: "" }, label, { class: "button", "data-testid": "span-profile-open", title: "Flame graph of the CPU samples taken while this span ran" }));
    } else {
      actions.append(h("span", { class: "muted", "data-testid": "span-no-profile" }, "No profile data linked to this span (pyroscope-otel tags local root spans)."));
    }
    const ids: Attr[] = [["span id", sp.spanId], ["parent span id", sp.parentId || "—"], ["trace id", sp.traceId], ["kind", sp.kind],
      ["status", sp.statusCode + (sp.statusMessage ? `: ${sp.statusMessage}` : "")], ["start", `${durationText(sp.offsetNs)} after the trace's start`],
      ["duration", durationText(sp.durationNs)], ["instrumentation scope", sp.scope || "—"]];
    const events = sp.events.length
      ? h("table", { class: "kv", "data-testid": "span-events" }, h("tbody", {}, ...sp.events.map((e) => h("tr", { "data-name": e.name },
        h("th", { scope: "row" }, `+${durationText(e.offsetNs)}`), h("td", {}, h("strong", {}, e.name), ...e.attributes.map(([k, v]) => h("div", { class: "muted" }, `${k} = ${v}`)))))))
      : h("p", { class: "muted", "data-testid": "span-events" }, "none");
    const links = sp.links.length
      ? h("ul", { "data-testid": "span-links" }, ...sp.links.map((l) => h("li", {}, stateLink(this.ctx, TRACE_PATCH(l.traceId, l.spanId), `${l.traceId} / ${l.spanId}`),
        ...l.attributes.map(([k, v]) => h("span", { class: "muted" }, ` ${k}=${v}`)))))
      : h("p", { class: "muted", "data-testid": "span-links" }, "none");
    const el = h("div", { class: "span-details", "data-testid": "span-details", "data-span-id": sp.spanId, role: "region", "aria-label": `span ${sp.name}` },
      h("h3", {}, sp.name, " ", h("span", { class: `span-status span-status-${sp.statusCode.toLowerCase()}`, "data-testid": "span-status" }, sp.statusCode)),
      actions,
      h("div", { class: "kv-grid" },
        h("div", {}, h("h4", {}, "Span"), attrTable(ids, "span-ids")),
        h("div", {}, h("h4", {}, "Attributes"), attrTable(sp.attributes, "span-attributes")),
        h("div", {}, h("h4", {}, "Resource"), attrTable(sp.resource, "span-resource")),
        h("div", {}, h("h4", {}, "Events"), events),
        h("div", {}, h("h4", {}, "Links"), links)));
    return el;
  }
}
