/** Comparison and diff: two selections (labels and/or ranges) side by side, each with its
 * own timeline and brush, then the diff flame graph (legend, colour-blind palette) and a
 * diff table. The baseline is the query bar's selection; the comparison has its own. */

import { getJSON } from "./api";
import { LEGEND } from "./colors";
import { Ctx, errorText, mainQuery, range, rightQuery } from "./context";
import { h, notice, option } from "./dom";
import { FlameGraph } from "./flame";
import { LabelBuilder } from "./labels";
import { MAX_NODES } from "./single";
import { State, matcherText } from "./state";
import { TopTable, diffColumns } from "./table";
import { Timeline } from "./timeline";
import { PRESETS, rangeLabel } from "./time";
import { FlameData, Flamebearer, fromFlamebearer, nodeAt, pathOf, topTable } from "./tree";

interface TimelineDoc {
  times_ms: number[];
  values: number[];
}

export class CompareView {
  readonly el: HTMLElement;
  private leftTl: Timeline;
  private rightTl: Timeline;
  private leftInfo = h("div", { class: "pane-info", "data-testid": "left-info" });
  private rightInfo = h("div", { class: "pane-info", "data-testid": "right-info" });
  private rightLabels: LabelBuilder;
  private rightRange = h("select", { "aria-label": "comparison time range", "data-testid": "right-range" });
  private paletteSel = h("select", { "aria-label": "diff palette", "data-testid": "palette" }, option("rg", "Red / green"), option("cb", "Colour-blind (orange / blue)"));
  private searchIn = h("input", { type: "search", placeholder: "Search functions", "aria-label": "search diff", "data-testid": "diff-search" });
  private legend = h("div", { class: "legend", "data-testid": "legend" });
  private message = h("div", { class: "message" });
  private flame: FlameGraph;
  private table: TopTable;
  private data: FlameData | null = null;
  private loadedKey = "";

  constructor(private ctx: Ctx) {
    this.leftTl = new Timeline("baseline timeline", (a, b) => this.ctx.update({ from: String(a), until: String(b), focus: "" }), 100);
    this.rightTl = new Timeline("comparison timeline", (a, b) => this.ctx.update({ rfrom: String(a), runtil: String(b), focus: "" }), 100);
    this.leftTl.el.dataset.testid = "left-timeline";
    this.rightTl.el.dataset.testid = "right-timeline";
    this.rightLabels = new LabelBuilder("rlabels", (m) => this.ctx.update({ rmatchers: m, focus: "" }));
    this.rightRange.append(option("", "Same as baseline"), ...PRESETS.map(([v, l]) => option(v, l)), option("custom", "Brushed range"));
    this.rightRange.addEventListener("change", () => {
      const v = this.rightRange.value;
      if (v !== "custom") this.ctx.update({ rfrom: v, runtil: v ? "now" : "" });
    });
    this.flame = new FlameGraph({ label: "diff flame graph", onFocus: (i) => this.data && this.ctx.update({ focus: pathOf(this.data, i) }, true) });
    this.table = new TopTable("diff-table", (sort) => this.ctx.update({ sort }, true), (row) => this.ctx.update({ search: row.name }, true));
    this.paletteSel.addEventListener("change", () => this.ctx.update({ palette: this.paletteSel.value as "rg" | "cb" }, true));
    this.searchIn.addEventListener("input", () => this.ctx.update({ search: this.searchIn.value }, true));
    const copy = h("button", { type: "button", "data-testid": "copy-left", title: "Start the comparison from the baseline's selection" }, "Copy baseline labels");
    copy.addEventListener("click", () => this.ctx.update({ rmatchers: [...this.ctx.state.matchers] }));
    const reset = h("button", { type: "button", "data-testid": "diff-reset" }, "Reset focus");
    reset.addEventListener("click", () => this.ctx.update({ focus: "" }, true));
    this.el = h("section", { class: "compare", "aria-label": "comparison" },
      h("div", { class: "panes" },
        h("div", { class: "pane", "data-testid": "left-pane" }, h("h3", {}, "Baseline"), this.leftInfo, this.leftTl.el),
        h("div", { class: "pane", "data-testid": "right-pane" }, h("h3", {}, "Comparison"), this.rightLabels.el,
          h("label", {}, "Range ", this.rightRange), copy, this.rightInfo, this.rightTl.el)),
      h("div", { class: "toolbar" }, h("strong", {}, "Diff"), this.legend, this.paletteSel, this.searchIn, reset),
      this.message,
      h("div", { class: "body layout-both" }, this.table.el, this.flame.el));
  }

  private rightRangeOf(s: State): [string, string] {
    return s.rfrom ? [s.rfrom, s.runtil || "now"] : [s.from, s.until];
  }

  update(ctx: Ctx, force: boolean): void {
    const s = ctx.state;
    const [rf, ru] = this.rightRangeOf(s);
    this.paletteSel.value = s.palette;
    if (this.searchIn.value !== s.search) this.searchIn.value = s.search;
    this.rightRange.value = !s.rfrom ? "" : ru === "now" && PRESETS.some(([v]) => v === rf) ? rf : "custom";
    this.rightLabels.set(s.rmatchers, { query: `{service_name=${JSON.stringify(s.service)}}`, from: rf, until: ru });
    this.leftInfo.textContent = `{${s.matchers.map(matcherText).join(", ") || "all"}} · ${rangeLabel(s.from, s.until)}`;
    this.rightInfo.textContent = `{${s.rmatchers.map(matcherText).join(", ") || "all"}} · ${rangeLabel(rf, ru)}`;
    const [lo, hi] = LEGEND[s.palette];
    this.legend.replaceChildren(
      h("span", { class: "swatch", "data-color": lo }), "shrank", h("span", { class: "swatch", "data-color": "rgb(205,205,205)" }), "unchanged",
      h("span", { class: "swatch", "data-color": hi }), "grew");
    for (const sw of this.legend.querySelectorAll<HTMLElement>(".swatch")) sw.style.background = sw.dataset.color ?? "";
    const key = JSON.stringify([mainQuery(s), rightQuery(s), s.from, s.until, rf, ru]);
    if (s.type && (force || key !== this.loadedKey)) { this.loadedKey = key; void this.load(s, rf, ru); }
    this.draw();
  }

  private async load(s: State, rf: string, ru: string): Promise<void> {
    const [la, lb] = range(s.from, s.until);
    const [ra, rb] = range(rf, ru);
    const tl = async (query: string, from: string, until: string, t: Timeline, a: number, b: number) => {
      const doc = await getJSON<TimelineDoc>("/api/v1/timeline", { query, from, until });
      t.set([{ label: "value", times: doc.times_ms, values: doc.values }], a, b);
    };
    try {
      const [doc] = await Promise.all([
        getJSON<Flamebearer>("/pyroscope/render-diff", {
          leftQuery: mainQuery(s), leftFrom: s.from, leftUntil: s.until,
          rightQuery: rightQuery(s), rightFrom: rf, rightUntil: ru, maxNodes: s.maxNodes || MAX_NODES,
        }),
        tl(mainQuery(s), s.from, s.until, this.leftTl, la, lb),
        tl(rightQuery(s), rf, ru, this.rightTl, ra, rb),
      ]);
      this.data = fromFlamebearer(doc);
      const d = this.data.diff!;
      this.message.replaceChildren();
      if (d.leftTicks === 0 || d.rightTicks === 0) {
        this.message.replaceChildren(notice("empty", `No data on the ${d.leftTicks === 0 ? "baseline" : "comparison"} side: pick another range or labels.`, "diff-empty"));
      }
      this.el.dataset.leftTicks = String(d.leftTicks);
      this.el.dataset.rightTicks = String(d.rightTicks);
    } catch (e) {
      this.data = null;
      if (!this.ctx.selectorError(e)) this.message.replaceChildren(notice("error", errorText(e)));
    }
    this.draw();
  }

  private draw(): void {
    const s = this.ctx.state;
    const d = this.data;
    if (!d) return;
    const sides = d.diff!;
    this.table.set(topTable(d), diffColumns(sides.leftTicks, sides.rightTicks), s.sort === "self" ? "change" : s.sort, s.search);
    this.flame.setData(d, nodeAt(d, s.focus));
    this.flame.setPalette(s.palette);
    this.flame.setSearch(s.search);
    this.flame.render();
  }
}
