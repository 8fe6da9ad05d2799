/** Trace waterfall: one row per span in tree order (children under their parent, by start
 * time), indented by depth, collapsible, with a bar placed at the span's offset and sized by
 * its duration against the whole trace. Bars carry their numbers as data-* attributes. */

import { serviceColor } from "./colors";
import { h } from "./dom";

/** Inline styles through the CSSOM (the page's CSP refuses style attributes). */
function styled<T extends HTMLElement>(el: T, props: Partial<Record<"left" | "right" | "width" | "background" | "paddingLeft" | "borderLeftColor", string>>): T {
  Object.assign(el.style, props);
  return el;
}
import { Span, Trace, durationText } from "./otlp";

export interface Row {
  span: Span;
  depth: number;
  children: number;
}

/** Spans in display order: roots (no parent in the trace) by start, then each span's
 * children by start, depth first; descendants of ``collapsed`` spans are left out. */
export function treeRows(t: Trace, collapsed: ReadonlySet<string>): Row[] {
  const ids = new Set(t.spans.map((s) => s.spanId));
  const kids = new Map<string, Span[]>();
  const roots: Span[] = [];
  for (const s of t.spans) {
    if (s.parentId && ids.has(s.parentId) && s.parentId !== s.spanId) {
      const list = kids.get(s.parentId);
      if (list) list.push(s);
      else kids.set(s.parentId, [s]);
    } else roots.push(s);
  }
  const out: Row[] = [];
  const seen = new Set<string>();
  const visit = (s: Span, depth: number) => {
    if (seen.has(s.spanId)) return; // a parent cycle in bad data
    seen.add(s.spanId);
    const children = kids.get(s.spanId) ?? [];
    out.push({ span: s, depth, children: children.length });
    if (!collapsed.has(s.spanId)) for (const c of children) visit(c, depth + 1);
  };
  for (const r of roots) visit(r, 0);
  return out;
}

/** Bar geometry in percent of the trace's duration: [left, width]. */
export function barGeometry(t: Trace, s: Span): [number, number] {
  const total = t.durationNs || 1;
  return [(s.offsetNs / total) * 100, (s.durationNs / total) * 100];
}

export interface WaterfallOptions {
  onSelect: (spanId: string) => void;
  onToggle: (spanId: string) => void;
}

const INDENT_PX = 14;
const TICKS = 5;

export class Waterfall {
  readonly el: HTMLElement;

  constructor(private opts: WaterfallOptions) {
    this.el = h("div", { class: "waterfall", role: "tree", "aria-label": "trace waterfall", "data-testid": "waterfall" });
  }

  /** Draw ``t``; ``details`` (the selected span's panel) goes right under its row. */
  render(t: Trace, selected: string, collapsed: ReadonlySet<string>, profiled: ReadonlySet<string>, details: HTMLElement | null): void {
    const axis = h("div", { class: "wf-track wf-axis" });
    for (let i = 0; i <= TICKS; i++) {
      const tick = styled(h("span", { class: "wf-tick" }, durationText(Math.round((t.durationNs * i) / TICKS))), { left: `${(i / TICKS) * 100}%` });
      axis.append(tick);
    }
    const head = h("div", { class: "wf-row wf-head" }, h("div", { class: "wf-name" }, "Service & operation"), axis);
    const rows = treeRows(t, collapsed).map((r) => this.row(t, r, r.span.spanId === selected, collapsed.has(r.span.spanId), profiled.has(r.span.spanId)));
    const body: HTMLElement[] = [];
    for (const row of rows) {
      body.push(row);
      if (details && row.dataset.spanId === selected) body.push(details);
    }
    this.el.dataset.spans = String(t.spans.length);
    this.el.dataset.rows = String(rows.length);
    this.el.dataset.durationNs = String(t.durationNs);
    this.el.replaceChildren(head, ...body);
  }

  private row(t: Trace, r: Row, selected: boolean, collapsed: boolean, profiled: boolean): HTMLElement {
    const s = r.span;
    const [left, width] = barGeometry(t, s);
    const error = s.statusCode === "ERROR";
    const toggle = r.children
      ? h("button", { type: "button", class: "wf-toggle", "data-testid": "span-toggle", "aria-label": `${collapsed ? "expand" : "collapse"} ${s.name}`, "aria-expanded": String(!collapsed) }, collapsed ? "▸" : "▾")
      : h("span", { class: "wf-toggle wf-leaf" });
    toggle.addEventListener("click", (e) => { e.stopPropagation(); if (r.children) this.opts.onToggle(s.spanId); });
    const color = serviceColor(s.service);
    const name = styled(h("div", { class: "wf-name", title: `${s.service}: ${s.name}` },
      toggle,
      styled(h("span", { class: "wf-svc" }, s.service), { borderLeftColor: color }),
      h("span", { class: "wf-op", "data-testid": "span-name" }, s.name),
      error ? h("span", { class: "wf-error", title: "status ERROR", "aria-label": "error" }, "!") : null,
      profiled ? h("span", { class: "wf-prof", title: "has profile data", "data-testid": "has-profile" }, "◆") : null,
      collapsed ? h("span", { class: "muted" }, ` (${r.children})`) : null), { paddingLeft: `${r.depth * INDENT_PX}px` });
    const bar = styled(h("div", {
      class: `wf-bar${error ? " wf-bar-error" : ""}`, "data-testid": "span-bar", "data-offset-ns": s.offsetNs, "data-duration-ns": s.durationNs,
    }), { left: `${left}%`, width: `${width}%`, background: color });
    const end = left + width;
    const inside = end > 85 && left < 15;
    const label = styled(h("span", { class: inside ? "wf-dur wf-dur-in" : "wf-dur" }, durationText(s.durationNs)),
      end <= 85 ? { left: `calc(${end}% + 4px)` } : inside ? { right: `calc(${100 - end}% + 4px)` } : { right: `calc(${100 - left}% + 4px)` });
    const row = h("div", {
      class: "wf-row", role: "treeitem", tabindex: 0, "data-testid": "span-row", "data-span-id": s.spanId, "data-parent-id": s.parentId,
      "data-depth": r.depth, "data-service": s.service, "data-error": String(error), "aria-selected": String(selected), "aria-level": r.depth + 1,
      "aria-expanded": r.children ? String(!collapsed) : undefined,
    }, name, h("div", { class: "wf-track" }, bar, label));
    row.addEventListener("click", () => this.opts.onSelect(s.spanId));
    row.addEventListener("keydown", (e) => {
      if (e.key === "Enter") this.opts.onSelect(s.spanId);
      else if ((e.key === "ArrowLeft" && !collapsed) || (e.key === "ArrowRight" && collapsed)) { if (r.children) this.opts.onToggle(s.spanId); }
      else return;
      e.preventDefault();
    });
    return row;
  }
}
