/** Single view: timeline (brush, group-by), flame graph, top table, sandwich, exports. */

import { getJSON } from "./api";
import { Ctx, errorText, mainQuery, range } from "./context";
import { h, notice, option } from "./dom";
import { ExemplarsPanel } from "./exemplars";
import { exportBar } from "./exports";
import { FlameGraph } from "./flame";
import { formatValue, pct } from "./format";
import { showMenu } from "./menu";
import { TopTable, singleColumns } from "./table";
import { Series, Timeline } from "./timeline";
import { FlameData, Flamebearer, fromFlamebearer, matchedShare, nodeAt, pathOf, sandwich, topTable } from "./tree";
import { rangeLabel } from "./time";
import { Layout, State } from "./state";

export interface Grouped {
  step_ms: number;
  label: string;
  groups: Array<{ value: string; times_ms: number[]; values: number[]; total: number }>;
}

export const MAX_NODES = 16384;

export class SingleView {
  readonly el: HTMLElement;
  private timeline: Timeline;
  private groupSel = h("select", { "aria-label": "group timeline by", "data-testid": "group-by" });
  private layoutBar = h("span", { class: "seg", role: "group", "aria-label": "layout" });
  private colorSel = h("select", { "aria-label": "colour by", "data-testid": "color" }, option("package", "Colour: package"), option("value", "Colour: value"));
  private searchIn = h("input", { type: "search", placeholder: "Search functions (/)", "aria-label": "search", "data-testid": "search" });
  private matched = h("span", { class: "matched", "data-testid": "matched" });
  private crumbs = h("nav", { class: "crumbs", "aria-label": "focus path", "data-testid": "breadcrumb" });
  private body = h("div", { class: "body" });
  private message = h("div", { class: "message" });
  private flame: FlameGraph;
  private callers: FlameGraph;
  private callees: FlameGraph;
  private table: TopTable;
  private exemplars: ExemplarsPanel;
  private data: FlameData | null = null;
  private loadedKey = "";
  private tlKey = "";
  private ctx: Ctx;
  private abort: AbortController | null = null;
  firstPaint = true;

  constructor(ctx: Ctx) {
    this.ctx = ctx;
    this.timeline = new Timeline("timeline of the selection", (a, b) => this.ctx.update({ from: String(a), until: String(b), focus: "" }));
    const focus = (i: number) => this.data && this.ctx.update({ focus: pathOf(this.data, i) }, true);
    const sandwichOf = (i: number) => this.data && this.ctx.update({ fn: this.data.names[this.data.name[i]], layout: "sandwich" });
    this.flame = new FlameGraph({ label: "flame graph", onFocus: focus, onContext: (i, e) => this.nodeMenu(i, e, focus, sandwichOf) });
    this.exemplars = new ExemplarsPanel(ctx);
    this.callers = new FlameGraph({ label: "callers", inverted: true, onContext: (i) => this.pickFn(this.callers, i) });
    this.callees = new FlameGraph({ label: "callees", onContext: (i) => this.pickFn(this.callees, i) });
    this.table = new TopTable("top-table", (sort) => this.ctx.update({ sort }, true), (row) => {
      if (!this.data) return;
      const node = this.largest(row.nameIndex);
      this.ctx.update({ fn: row.name, focus: node > 0 ? pathOf(this.data, node) : "" }, true);
    });
    for (const [l, label] of [["flame", "Flame graph"], ["table", "Table"], ["both", "Both"], ["sandwich", "Sandwich"]] as const) {
      const b = h("button", { type: "button", "data-layout": l, "data-testid": `layout-${l}` }, label);
      b.addEventListener("click", () => this.ctx.update({ layout: l as Layout }, true));
      this.layoutBar.append(b);
    }
    this.colorSel.addEventListener("change", () => this.ctx.update({ color: this.colorSel.value as "package" | "value" }, true));
    this.searchIn.addEventListener("input", () => this.ctx.update({ search: this.searchIn.value }, true));
    this.groupSel.addEventListener("change", () => this.ctx.update({ groupBy: this.groupSel.value }));
    const reset = h("button", { type: "button", "data-testid": "reset", title: "Reset focus (Esc)" }, "Reset");
    reset.addEventListener("click", () => this.ctx.update({ focus: "" }, true));
    const exp = exportBar(() => ({ query: mainQuery(this.ctx.state), from: this.ctx.state.from, until: this.ctx.state.until, name: `${this.ctx.state.service}-${this.ctx.state.type.split(":")[0]}` }),
      () => this.flame.canvas, (e) => this.message.replaceChildren(notice("error", `Export failed: ${errorText(e)}`)));
    this.el = h("section", { class: "single", "aria-label": "single view" },
      h("div", { class: "toolbar" }, h("strong", {}, "Timeline"), h("label", {}, "Group by ", this.groupSel), h("span", { class: "hint" }, "drag across the timeline to narrow the range")),
      this.timeline.el,
      h("div", { class: "toolbar" }, this.layoutBar, this.colorSel, this.searchIn, this.matched, reset, this.crumbs),
      h("div", { class: "toolbar" }, exp),
      this.message, this.exemplars.el, this.body);
    window.addEventListener("resize", () => this.draw());
  }

  /** The flame graph's node menu: focus, sandwich, the traces that spent time in the node. */
  private nodeMenu(i: number, e: MouseEvent, focus: (i: number) => void, sandwichOf: (i: number) => void): void {
    const d = this.data;
    if (!d) return;
    showMenu(e.clientX, e.clientY, d.names[d.name[i]], [
      { label: "Focus on this node", testid: "menu-focus", run: () => focus(i) },
      { label: "Sandwich view of this function", testid: "menu-sandwich", run: () => sandwichOf(i) },
      { label: "Traces that spent time here", testid: "menu-traces", run: () => this.ctx.update({ exemplars: pathOf(d, i) }) },
    ]);
  }

  private pickFn(g: FlameGraph, i: number): void {
    const d = (g as unknown as { data: FlameData | null }).data;
    if (d && i > 0) this.ctx.update({ fn: d.names[d.name[i]] });
  }

  private largest(nameIndex: number): number {
    const d = this.data!;
    let best = -1;
    for (let i = 1; i < d.n; i++) if (d.name[i] === nameIndex && (best < 0 || d.total[i] > d.total[best])) best = i;
    return best;
  }

  update(ctx: Ctx, force: boolean): void {
    const s = ctx.state;
    this.searchIn.value !== s.search && (this.searchIn.value = s.search);
    this.colorSel.value = s.color;
    for (const b of this.layoutBar.querySelectorAll<HTMLElement>("button")) b.setAttribute("aria-pressed", String(b.dataset.layout === s.layout));
    const key = JSON.stringify([mainQuery(s), s.from, s.until, s.maxNodes]);
    if (!s.type) { this.message.replaceChildren(notice("empty", "No profile types yet.")); return; }
    if (force || key !== this.loadedKey) { this.loadedKey = key; void this.load(s); }
    const units = s.type.split(":")[2] ?? "";
    this.exemplars.show(mainQuery(s), s.from, s.until, s.exemplars, units, 100);
    const tlKey = JSON.stringify([key, s.groupBy]);
    if (force || tlKey !== this.tlKey) { this.tlKey = tlKey; if (s.groupBy) void this.loadGroups(s); }
    this.draw();
  }

  private async load(s: State): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    performance.mark("fleetprof:query-start");
    void this.loadLabelNames(s);
    if (!s.groupBy) void this.loadTimeline(s, abort.signal);
    try {
      const doc = await getJSON<Flamebearer>("/api/v1/explorer/flamebearer", { query: mainQuery(s), from: s.from, until: s.until, maxNodes: s.maxNodes || MAX_NODES }, abort.signal);
      if (abort.signal.aborted) return;
      this.data = fromFlamebearer(doc);
      this.message.replaceChildren();
      if (this.data.total[0] === 0) {
        this.message.replaceChildren(notice("empty", `No data for this service in ${rangeLabel(s.from, s.until)}.`, "empty"));
      }
    } catch (e) {
      if (abort.signal.aborted) return;
      this.data = null;
      if (!this.ctx.selectorError(e)) this.message.replaceChildren(notice("error", errorText(e)));
      else this.message.replaceChildren(notice("error", "Fix the label selector above.", "query-error"));
    }
    this.draw();
    performance.mark("fleetprof:flame-painted");
    performance.measure("fleetprof:query-to-paint", "fleetprof:query-start", "fleetprof:flame-painted");
    if (this.firstPaint) { this.firstPaint = false; performance.mark("fleetprof:first-useful-paint"); }
  }

  private async loadTimeline(s: State, signal: AbortSignal): Promise<void> {
    this.timeline.format = (v) => formatValue(v, s.type.split(":")[2] ?? "", 100);
    try {
      const t = await getJSON<{ times_ms: number[]; values: number[] }>("/api/v1/timeline", { query: mainQuery(s), from: s.from, until: s.until }, signal);
      const [a, b] = range(s.from, s.until);
      this.timeline.set([{ label: s.service || "all", times: t.times_ms, values: t.values }], a, b);
    } catch {
      /* the flame graph's request reports the error */
    }
  }

  private async loadLabelNames(s: State): Promise<void> {
    try {
      const names = await getJSON<string[]>("/api/v1/labels", { query: `{service_name=${JSON.stringify(s.service)}}`, from: s.from, until: s.until });
      const keep = names.filter((n) => !n.startsWith("__") && n !== "service_name");
      this.groupSel.replaceChildren(option("", "—"), ...keep.map((n) => option(n)));
      if (s.groupBy && !keep.includes(s.groupBy)) this.groupSel.append(option(s.groupBy));
      this.groupSel.value = s.groupBy;
    } catch {
      /* the picker stays as it was */
    }
  }

  private async loadGroups(s: State): Promise<void> {
    try {
      const g = await getJSON<Grouped>("/api/v1/explorer/timelines", { query: mainQuery(s), from: s.from, until: s.until, groupBy: s.groupBy });
      const series: Series[] = g.groups.map((x) => ({ label: `${g.label}=${x.value}`, times: x.times_ms, values: x.values }));
      const [a, b] = range(s.from, s.until);
      this.timeline.set(series, a, b);
    } catch (e) {
      this.message.replaceChildren(notice("error", `Group-by failed: ${errorText(e)}`));
    }
  }

  /** Draw the current layout from the loaded data (no query). */
  draw(): number {
    const s = this.ctx.state;
    const d = this.data;
    if (!d) { this.body.replaceChildren(); this.crumbs.replaceChildren(); this.matched.textContent = ""; return 0; }
    const focus = nodeAt(d, s.focus);
    this.renderCrumbs(d, focus);
    this.matched.textContent = s.search ? `${pct(matchedShare(d, s.search))} of total matches` : "";
    this.matched.dataset.share = s.search ? (matchedShare(d, s.search) * 100).toFixed(2) : "";
    const parts: HTMLElement[] = [];
    if (s.layout === "table" || s.layout === "both") {
      this.table.set(topTable(d), singleColumns(d.total[0], d.units, d.sampleRate), s.sort, s.search);
      parts.push(this.table.el);
    }
    if (s.layout === "flame" || s.layout === "both") parts.push(this.flame.el);
    if (s.layout === "sandwich") parts.push(this.sandwichPanel(d, s));
    this.body.className = `body layout-${s.layout}`;
    if (parts.some((p, i) => this.body.children[i] !== p) || this.body.children.length !== parts.length) this.body.replaceChildren(...parts);
    let ms = 0;
    if (s.layout === "flame" || s.layout === "both") {
      this.flame.setData(d, focus);
      this.flame.setSearch(s.search);
      this.flame.setColorMode(s.color);
      ms = this.flame.render();
    }
    return ms;
  }

  private sandwichPanel(d: FlameData, s: State): HTMLElement {
    if (!s.fn) return notice("empty", "Pick a function for the sandwich view: click a table row or right-click a flame graph node.", "sandwich-empty");
    const sw = sandwich(d, s.fn);
    const panel = h("div", { class: "sandwich", "data-testid": "sandwich", "data-fn": s.fn },
      h("h3", {}, "Callers of ", h("code", {}, s.fn)), this.callers.el,
      h("h3", {}, "Callees of ", h("code", {}, s.fn)), this.callees.el);
    requestAnimationFrame(() => {
      for (const [g, data] of [[this.callers, sw.callers], [this.callees, sw.callees]] as const) {
        g.setData(data);
        g.setSearch(s.search);
        g.setColorMode(s.color);
        g.render();
      }
    });
    return panel;
  }

  private renderCrumbs(d: FlameData, focus: number): void {
    const chain: number[] = [];
    for (let v = focus; v >= 0; v = d.parent[v]) { chain.push(v); if (v === 0) break; }
    chain.reverse();
    this.crumbs.replaceChildren(...chain.map((i, k) => {
      const b = h("button", { type: "button", class: "crumb", "aria-current": k === chain.length - 1 ? "true" : undefined }, i === 0 ? "total" : d.names[d.name[i]]);
      b.addEventListener("click", () => this.ctx.update({ focus: i === 0 ? "" : pathOf(d, i) }, true));
      return b;
    }));
  }

  onKey(e: KeyboardEvent): boolean {
    const layouts: Record<string, Layout> = { "1": "flame", "2": "table", "3": "both", "4": "sandwich" };
    if (e.key === "/") { this.searchIn.focus(); return true; }
    if (e.key === "Escape") { this.ctx.update({ focus: "", search: "" }, true); return true; }
    if (layouts[e.key]) { this.ctx.update({ layout: layouts[e.key] }, true); return true; }
    return false;
  }

  /** For the benchmark: redraw the flame graph ``n`` times; milliseconds per frame. */
  benchRedraw(n: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(this.flame.render());
    return out;
  }
}
