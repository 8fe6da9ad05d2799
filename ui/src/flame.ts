/** Canvas flame graph: click to focus, hover tooltips, search highlight, colour modes and
 * the diff scale. Test hooks: the canvas carries data-* attributes describing what it drew. */

import { diffColor, diffPercent, GREY, MATCH, packageColor, valueColor } from "./colors";
import { h } from "./dom";
import { formatValue, pct } from "./format";
import { FlameData, levels, matchedShare, matcher, pathOf } from "./tree";

const ROW = 18;

export interface FlameOptions {
  inverted?: boolean;
  label: string;
  onFocus?: (node: number) => void;
  onContext?: (node: number, e: MouseEvent) => void;
}

export class FlameGraph {
  readonly el: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  private tip: HTMLElement;
  private data: FlameData | null = null;
  private focus = 0;
  private search = "";
  private colorMode: "package" | "value" = "package";
  private palette: "rg" | "cb" = "rg";
  private width = 0;
  private hover = -1;

  constructor(private opts: FlameOptions) {
    this.canvas = h("canvas", { class: "flame-canvas", role: "img", "aria-label": opts.label, tabindex: 0 });
    this.tip = h("div", { class: "tooltip", role: "tooltip", "data-testid": "flame-tooltip", hidden: true });
    this.el = h("div", { class: "flame" }, this.canvas, this.tip);
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    this.canvas.addEventListener("mouseleave", () => { this.tip.hidden = true; this.hover = -1; });
    this.canvas.addEventListener("click", (e) => {
      const i = this.hit(e.offsetX, e.offsetY);
      if (i >= 0) this.opts.onFocus?.(i);
    });
    this.canvas.addEventListener("contextmenu", (e) => {
      const i = this.hit(e.offsetX, e.offsetY);
      if (i > 0 && this.opts.onContext) { e.preventDefault(); this.opts.onContext(i, e); }
    });
  }

  setData(d: FlameData | null, focus = 0): void {
    this.data = d;
    this.focus = d && focus < d.n ? focus : 0;
  }

  setFocus(i: number): void { this.focus = i; }
  setSearch(term: string): void { this.search = term; }
  setColorMode(m: "package" | "value"): void { this.colorMode = m; }
  setPalette(p: "rg" | "cb"): void { this.palette = p; }
  get focused(): number { return this.focus; }

  /** Draw; returns the milliseconds spent (for the benchmark). */
  render(): number {
    const t0 = performance.now();
    const d = this.data;
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    this.width = Math.max(200, this.el.clientWidth || c.parentElement?.clientWidth || 800);
    const rows = d ? levels(d) : 0;
    const height = Math.max(ROW, rows * ROW);
    c.width = Math.round(this.width * dpr);
    c.height = Math.round(height * dpr);
    c.style.width = `${this.width}px`;
    c.style.height = `${height}px`;
    const ctx = c.getContext("2d");
    if (!ctx || !d || d.n === 0) return performance.now() - t0;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    const charW = ctx.measureText("abcdefghij").width / 10;
    const f = this.focus;
    const x0 = d.x[f];
    const span = d.total[f] || 1;
    const scale = this.width / span;
    const hit = this.search ? d.names.map(matcher(this.search)) : null;
    const selfShare = d.maxSelf || 1;
    let drawn = 0;
    for (let i = 0; i < d.n; i++) {
      const a = Math.max(d.x[i], x0);
      const b = Math.min(d.x[i] + d.total[i], x0 + span);
      if (b <= a) continue;
      const w = (b - a) * scale;
      if (w < 0.6) continue;
      const px = (a - x0) * scale;
      const py = this.opts.inverted ? (rows - 1 - d.depth[i]) * ROW : d.depth[i] * ROW;
      const above = d.depth[i] < d.depth[f];
      ctx.globalAlpha = above ? 0.45 : 1;
      ctx.fillStyle = this.fill(d, i, hit, selfShare);
      ctx.fillRect(px, py, Math.max(w - 0.5, 0.5), ROW - 1);
      drawn++;
      if (w > 30) {
        const max = Math.floor((w - 6) / charW);
        const name = d.names[d.name[i]];
        const label = name.length > max ? name.slice(0, Math.max(0, max - 1)) + "…" : name;
        ctx.fillStyle = "#111";
        ctx.fillText(label, px + 3, py + ROW / 2);
      }
    }
    ctx.globalAlpha = 1;
    this.publish(d, drawn);
    return performance.now() - t0;
  }

  private fill(d: FlameData, i: number, hit: boolean[] | null, maxSelf: number): string {
    if (hit) return hit[d.name[i]] ? MATCH : GREY;
    if (d.diff) {
      const s = d.diff;
      return diffColor(diffPercent(s.lt[i] / (s.leftTicks || 1), s.rt[i] / (s.rightTicks || 1)), this.palette);
    }
    if (this.colorMode === "value") return valueColor(d.self[i] / maxSelf);
    return i === 0 ? "#bdbdbd" : packageColor(d.names[d.name[i]]);
  }

  /** What the canvas shows, as attributes (tests and assistive tech read them). */
  private publish(d: FlameData, drawn: number): void {
    const c = this.canvas;
    const f = this.focus;
    c.dataset.nodes = String(d.n);
    c.dataset.drawn = String(drawn);
    c.dataset.focus = f === 0 ? "" : d.names[d.name[f]];
    c.dataset.focusPath = f === 0 ? "" : pathOf(d, f);
    c.dataset.total = String(d.total[0]);
    c.dataset.matched = this.search ? (matchedShare(d, this.search) * 100).toFixed(2) : "";
    const summary = f === 0 ? "whole profile" : `focused on ${d.names[d.name[f]]}`;
    c.setAttribute("aria-label", `${this.opts.label}: ${d.n} nodes, ${summary}`);
  }

  /** Node under canvas point (x, y) in CSS pixels, or -1. */
  hit(x: number, y: number): number {
    const d = this.data;
    if (!d) return -1;
    const rows = levels(d);
    let depth = Math.floor(y / ROW);
    if (this.opts.inverted) depth = rows - 1 - depth;
    if (depth < 0 || depth >= rows) return -1;
    const f = this.focus;
    const tick = d.x[f] + (x / this.width) * (d.total[f] || 1);
    let lo = d.levelStart[depth];
    let hi = d.levelStart[depth + 1] - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (d.x[mid] + d.total[mid] <= tick) lo = mid + 1;
      else if (d.x[mid] > tick) hi = mid - 1;
      else return mid;
    }
    return -1;
  }

  /** Centre of node ``i`` in CSS pixels (for tests and keyboard users), or null when hidden. */
  centre(i: number): { x: number; y: number } | null {
    const d = this.data;
    if (!d) return null;
    const f = this.focus;
    const span = d.total[f] || 1;
    const a = Math.max(d.x[i], d.x[f]);
    const b = Math.min(d.x[i] + d.total[i], d.x[f] + span);
    if (b <= a) return null;
    const rows = levels(d);
    const row = this.opts.inverted ? rows - 1 - d.depth[i] : d.depth[i];
    return { x: (((a + b) / 2 - d.x[f]) / span) * this.width, y: row * ROW + ROW / 2 };
  }

  /** First node named ``name`` (breadth first), or -1. */
  find(name: string): number {
    const d = this.data;
    if (!d) return -1;
    for (let i = 1; i < d.n; i++) if (d.names[d.name[i]] === name) return i;
    return -1;
  }

  private onMove(e: MouseEvent): void {
    const d = this.data;
    const i = this.hit(e.offsetX, e.offsetY);
    if (!d || i < 0) { this.tip.hidden = true; this.hover = -1; return; }
    if (i !== this.hover) {
      this.hover = i;
      this.tip.replaceChildren(...this.tipLines(d, i).map((l) => h("div", {}, l)));
    }
    this.tip.hidden = false;
    const r = this.el.getBoundingClientRect();
    const left = Math.min(e.clientX - r.left + 14, r.width - 260);
    this.tip.style.left = `${Math.max(0, left)}px`;
    this.tip.style.top = `${e.clientY - r.top + 14}px`;
  }

  private tipLines(d: FlameData, i: number): string[] {
    const fmt = (v: number) => formatValue(v, d.units, d.sampleRate);
    const name = d.names[d.name[i]];
    const root = d.total[0] || 1;
    if (d.diff) {
      const s = d.diff;
      const l = s.lt[i] / (s.leftTicks || 1);
      const r = s.rt[i] / (s.rightTicks || 1);
      return [name, `left: ${fmt(s.lt[i])} (${pct(l)}) · right: ${fmt(s.rt[i])} (${pct(r)})`,
        `change: ${diffPercent(l, r) >= 0 ? "+" : ""}${diffPercent(l, r).toFixed(1)}%`];
    }
    return [name, `self: ${fmt(d.self[i])} (${pct(d.self[i] / root)})`, `total: ${fmt(d.total[i])} (${pct(d.total[i] / root)})`];
  }
}
