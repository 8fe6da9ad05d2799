/** Tag explorer: a profile type grouped by one label: per-value timelines, a share chart
 * and a table (total, average, share); each value opens its flame graph. */

import { getJSON } from "./api";
import { Ctx, errorText, mainQuery, range } from "./context";
import { h, notice, option } from "./dom";
import { formatValue, pct } from "./format";
import { Grouped } from "./single";
import { Timeline, seriesColour } from "./timeline";
import { rangeLabel } from "./time";

export class TagsView {
  readonly el: HTMLElement;
  private labelSel = h("select", { "aria-label": "group by label", "data-testid": "tag-label" });
  private timeline: Timeline;
  private shares = h("div", { class: "shares", "data-testid": "tag-shares", role: "list" });
  private tbody = h("tbody", {});
  private message = h("div", { class: "message" });
  private loadedKey = "";

  constructor(private ctx: Ctx) {
    this.timeline = new Timeline("per-value timelines", (a, b) => this.ctx.update({ from: String(a), until: String(b) }), 180);
    this.labelSel.addEventListener("change", () => this.ctx.update({ groupBy: this.labelSel.value }));
    this.el = h("section", { class: "tags", "aria-label": "tag explorer" },
      h("div", { class: "toolbar" }, h("label", {}, "Group by ", this.labelSel)),
      this.message, this.timeline.el,
      h("div", { class: "tag-body" }, this.shares,
        h("div", { class: "table-wrap" }, h("table", { class: "top", "data-testid": "tag-table" },
          h("thead", {}, h("tr", {}, ...["Value", "Total", "Average per step", "Share", ""].map((t) => h("th", { scope: "col" }, t)))), this.tbody))));
  }

  update(ctx: Ctx, force: boolean): void {
    const s = ctx.state;
    const key = JSON.stringify([mainQuery(s), s.from, s.until, s.groupBy]);
    if (s.type && (force || key !== this.loadedKey)) { this.loadedKey = key; void this.load(); }
  }

  private async load(): Promise<void> {
    const s = this.ctx.state;
    try {
      const names = await getJSON<string[]>("/api/v1/labels", { query: `{service_name=${JSON.stringify(s.service)}}`, from: s.from, until: s.until });
      const keep = names.filter((n) => !n.startsWith("__") && n !== "service_name");
      this.labelSel.replaceChildren(option("", "— pick a label —"), ...keep.map((n) => option(n)));
      this.labelSel.value = s.groupBy;
      if (!s.groupBy) {
        this.message.replaceChildren(notice("empty", keep.length ? "Pick a label to group by." : `No labels besides service_name for this service in ${rangeLabel(s.from, s.until)}.`, "tags-empty"));
        this.tbody.replaceChildren();
        this.shares.replaceChildren();
        return;
      }
      const g = await getJSON<Grouped>("/api/v1/explorer/timelines", { query: mainQuery(s), from: s.from, until: s.until, groupBy: s.groupBy });
      this.message.replaceChildren();
      this.render(g);
    } catch (e) {
      if (!this.ctx.selectorError(e)) this.message.replaceChildren(notice("error", errorText(e)));
    }
  }

  private render(g: Grouped): void {
    const s = this.ctx.state;
    const [a, b] = range(s.from, s.until);
    const all = g.groups.reduce((acc, x) => acc + x.total, 0) || 1;
    const steps = Math.max(1, Math.round((b - a) / g.step_ms));
    const unit = s.type.split(":")[2] ?? "";
    const fmt = (v: number) => formatValue(v, unit, 100);
    this.timeline.format = fmt;
    this.timeline.set(g.groups.map((x) => ({ label: x.value, times: x.times_ms, values: x.values })), a, b);
    if (!g.groups.length) this.message.replaceChildren(notice("empty", `No values of ${g.label} in ${rangeLabel(s.from, s.until)}.`, "tags-empty"));
    this.shares.replaceChildren(...g.groups.map((x, i) => {
      const bar = h("span", { class: "bar" });
      bar.style.width = pct(x.total / all, 1);
      bar.style.background = seriesColour(i);
      return h("div", { class: "share", role: "listitem", "data-value": x.value }, h("span", { class: "share-label" }, x.value), h("span", { class: "bar-track" }, bar), h("span", { class: "num" }, pct(x.total / all, 1)));
    }));
    this.tbody.replaceChildren(...g.groups.map((x) => {
      const open = h("button", { type: "button", "data-testid": "open-flame" }, "Flame graph");
      open.addEventListener("click", () => this.ctx.update({
        view: "single", groupBy: "", focus: "",
        matchers: [...s.matchers.filter((m) => m.name !== g.label), { name: g.label, op: "=", value: x.value }],
      }));
      return h("tr", { "data-value": x.value }, h("td", { class: "fn" }, x.value), h("td", { class: "num" }, fmt(x.total)),
        h("td", { class: "num" }, fmt(x.total / steps)), h("td", { class: "num" }, pct(x.total / all)), h("td", {}, open));
    }));
  }
}
