/** Fleet view: the latest fleet analysis (cost per service and function, recommendations,
 * regressions, leak suspects, contention), each row linked to its flame graph. */

import { getJSON } from "./api";
import { Ctx, errorText } from "./context";
import { h, notice } from "./dom";
import { State } from "./state";

type Row = Record<string, string | number | null>;

interface FleetDoc {
  window: string | null;
  windows: string[];
  summary: Record<string, unknown>;
  tables: Record<string, Row[]>;
}

interface Section {
  table: string;
  title: string;
  columns: string[];
  link?: (r: Row) => Partial<State> | null;
}

const CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

function str(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 1 ? 4 : 2);
  return String(v);
}

const fnLink = (r: Row): Partial<State> => ({
  view: "single", service: str(r.service), type: str(r.profile_type) || CPU, search: str(r.function), matchers: [], focus: "", layout: "both",
});

const SECTIONS: Section[] = [
  { table: "cost_services", title: "Cost per service", columns: ["service", "cpu_seconds", "avg_vcpus", "usd_month"], link: (r) => ({ view: "single", service: str(r.service), type: CPU, matchers: [], search: "", focus: "" }) },
  { table: "cost_functions", title: "Cost per function", columns: ["service", "function", "cpu_seconds", "usd_month", "share"], link: (r) => ({ ...fnLink(r), type: CPU }) },
  { table: "recommendations", title: "Recommendations", columns: ["service", "category", "share", "advice", "top_functions"], link: (r) => ({ view: "single", service: str(r.service), type: str(r.profile_type) || CPU, matchers: [], search: "", focus: "" }) },
  {
    table: "regressions", title: "Regressions", columns: ["kind", "service", "function", "base", "candidate", "delta_share", "ratio"],
    link: (r) => r.kind === "version"
      ? { view: "compare", service: str(r.service), type: str(r.profile_type) || CPU, matchers: [{ name: "version", op: "=", value: str(r.base) }], rmatchers: [{ name: "version", op: "=", value: str(r.candidate) }], search: str(r.function), focus: "" }
      : fnLink(r),
  },
  { table: "leaks", title: "Leak suspects", columns: ["service", "function", "growth", "slope_per_hour", "r2", "end_share"], link: fnLink },
  { table: "contention", title: "Contention", columns: ["service", "function", "value", "share", "hotspot"], link: fnLink },
];

export class FleetView {
  readonly el: HTMLElement;
  private body = h("div", { class: "fleet-body" });
  private loaded = false;

  constructor(private ctx: Ctx) {
    this.el = h("section", { class: "fleet", "aria-label": "fleet analysis" }, this.body);
  }

  update(_ctx: Ctx, force: boolean): void {
    if (force || !this.loaded) { this.loaded = true; void this.load(); }
  }

  private async load(): Promise<void> {
    try {
      const doc = await getJSON<FleetDoc>("/api/v1/explorer/fleet");
      if (!doc.window) {
        this.body.replaceChildren(notice("empty", "No fleet analysis yet. The Ray workers write one per window (fleetprof analyze); it appears here when its summary is complete.", "fleet-empty"));
        return;
      }
      // served by the analysis route under the sandbox CSP (its scripts cannot reach this origin)
      const report = h("a", { href: `/api/v1/analysis/${encodeURIComponent(doc.window)}/report.html`, target: "_blank", rel: "noopener", "data-testid": "fleet-report" }, "full report (HTML)");
      this.body.replaceChildren(h("p", { "data-testid": "fleet-window" }, `Analysis window ${doc.window} · `, report),
        ...SECTIONS.map((sec) => this.section(sec, doc.tables[sec.table] ?? [])));
    } catch (e) {
      this.body.replaceChildren(notice("error", errorText(e)));
    }
  }

  private section(sec: Section, rows: Row[]): HTMLElement {
    const table = rows.length
      ? h("table", { class: "top", "data-testid": `fleet-${sec.table}` },
        h("thead", {}, h("tr", {}, ...sec.columns.map((c) => h("th", { scope: "col" }, c.replace(/_/g, " "))), h("th", {}))),
        h("tbody", {}, ...rows.map((r) => {
          const target = sec.link?.(r);
          const cell = target ? h("a", { href: "#", class: "open" }, "flame graph") : "";
          if (target && cell instanceof HTMLElement) cell.addEventListener("click", (e) => { e.preventDefault(); this.ctx.update(target); });
          return h("tr", {}, ...sec.columns.map((c) => h("td", { class: typeof r[c] === "number" ? "num" : "fn" }, str(r[c]))), h("td", {}, cell));
        })))
      : h("p", { class: "muted" }, "none in this window");
    return h("div", { class: "fleet-section" }, h("h3", {}, sec.title), table);
  }
}
