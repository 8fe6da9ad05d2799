/** Top table: one row per function, sortable by any column, filtered by the search. */

import { h } from "./dom";
import { formatValue, pct } from "./format";
import { TopRow, matcher } from "./tree";

export interface Column {
  key: string;
  label: string;
  value: (r: TopRow) => number | string;
  text: (r: TopRow) => string;
}

export class TopTable {
  readonly el: HTMLElement;
  private body = h("tbody", {});
  private head = h("tr", {});
  private rows: TopRow[] = [];

  constructor(
    testid: string,
    private onSort: (key: string) => void,
    private onPick: (row: TopRow) => void,
    private limit = 300,
  ) {
    this.el = h("div", { class: "table-wrap" },
      h("table", { class: "top", "data-testid": testid }, h("thead", {}, this.head), this.body));
  }

  set(rows: TopRow[], columns: Column[], sort: string, search: string): void {
    this.rows = rows;
    const col = columns.find((c) => c.key === sort.replace(/^-/, "")) ?? columns[1];
    const asc = sort.startsWith("-") !== (col.key === "name");
    this.head.replaceChildren(...columns.map((c) => {
      const th = h("th", { scope: "col", "data-key": c.key, "aria-sort": c === col ? (asc ? "ascending" : "descending") : "none", tabindex: 0 }, c.label);
      const go = () => this.onSort(c === col && !sort.startsWith("-") ? `-${c.key}` : c.key);
      th.addEventListener("click", go);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
      return th;
    }));
    const m = matcher(search);
    const shown = (search ? this.rows.filter((r) => m(r.name)) : this.rows.slice())
      .sort((a, b) => {
        const x = col.value(a);
        const y = col.value(b);
        const c = typeof x === "string" ? String(x).localeCompare(String(y)) : (x as number) - (y as number);
        return asc ? c : -c;
      })
      .slice(0, this.limit);
    this.body.replaceChildren(...shown.map((r) => {
      const tr = h("tr", { "data-name": r.name, tabindex: 0 }, ...columns.map((c) => h("td", { class: c.key === "name" ? "fn" : "num" }, c.text(r))));
      tr.addEventListener("click", () => this.onPick(r));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") this.onPick(r); });
      return tr;
    }));
    this.el.dataset.rows = String(shown.length);
  }
}

export function singleColumns(total: number, units: string, rate: number): Column[] {
  const v = (x: number) => `${formatValue(x, units, rate)} · ${pct(x / (total || 1))}`;
  return [
    { key: "name", label: "Function", value: (r) => r.name, text: (r) => r.name },
    { key: "self", label: "Self", value: (r) => r.self, text: (r) => v(r.self) },
    { key: "total", label: "Total", value: (r) => r.total, text: (r) => v(r.total) },
  ];
}

export function diffColumns(leftTicks: number, rightTicks: number): Column[] {
  const l = (r: TopRow) => (r.lself ?? 0) / (leftTicks || 1);
  const rr = (r: TopRow) => (r.rself ?? 0) / (rightTicks || 1);
  return [
    { key: "name", label: "Function", value: (r) => r.name, text: (r) => r.name },
    { key: "left", label: "Baseline self", value: l, text: (r) => pct(l(r)) },
    { key: "right", label: "Comparison self", value: rr, text: (r) => pct(rr(r)) },
    { key: "change", label: "Change", value: (r) => rr(r) - l(r), text: (r) => `${rr(r) - l(r) >= 0 ? "+" : ""}${((rr(r) - l(r)) * 100).toFixed(2)} pp` },
  ];
}
