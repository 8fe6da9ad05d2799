/** Timelines (uPlot): one or more series over the query range; dragging across the plot
 * selects a sub-range (the brush), reported through ``onBrush`` in epoch ms. */

import uPlot from "uplot";
import { h } from "./dom";

export interface Series {
  label: string;
  times: number[]; // epoch ms
  values: number[];
}

const COLOURS = ["#e4572e", "#2e86ab", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#4e79a7"];

export function seriesColour(i: number): string {
  return COLOURS[i % COLOURS.length];
}

export class Timeline {
  readonly el: HTMLElement;
  private plot: uPlot | null = null;
  private ro: ResizeObserver;

  constructor(label: string, private onBrush: (fromMs: number, untilMs: number) => void, private height = 130, public format: (v: number) => string = short) {
    this.el = h("div", { class: "timeline", role: "img", "aria-label": label, "data-testid": "timeline" });
    this.ro = new ResizeObserver(() => {
      if (this.plot && this.el.clientWidth) this.plot.setSize({ width: this.el.clientWidth, height: this.height });
    });
    this.ro.observe(this.el);
    document.addEventListener("fleetprof:theme", () => this.plot?.redraw(false, true));
  }

  /** Replace the plot with ``series`` (sharing one time axis: the union of their times). */
  set(series: Series[], fromMs: number, untilMs: number): void {
    this.plot?.destroy();
    const xs = [...new Set(series.flatMap((s) => s.times))].sort((a, b) => a - b);
    const pos = new Map(xs.map((t, i) => [t, i]));
    const data: uPlot.AlignedData = [
      xs.map((t) => t / 1000),
      ...series.map((s) => {
        const ys: (number | null)[] = new Array(xs.length).fill(null);
        s.times.forEach((t, i) => (ys[pos.get(t)!] = s.values[i]));
        return ys;
      }),
    ];
    const opts: uPlot.Options = {
      width: this.el.clientWidth || 800,
      height: this.height,
      legend: { show: series.length > 1 },
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales: { x: { time: true, min: fromMs / 1000, max: untilMs / 1000 } },
      axes: [{ stroke: () => getComputedStyle(this.el).color, grid: { stroke: "rgba(128,128,128,0.2)" } },
        { stroke: () => getComputedStyle(this.el).color, grid: { stroke: "rgba(128,128,128,0.2)" }, size: 60, values: (_u, vals) => vals.map((v) => this.format(v)) }],
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: seriesColour(i), fill: series.length === 1 ? "rgba(228,87,46,0.15)" : undefined, width: 1.5, spanGaps: false }))],
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 3) return;
          const a = u.posToVal(u.select.left, "x") * 1000;
          const b = u.posToVal(u.select.left + u.select.width, "x") * 1000;
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          this.onBrush(Math.round(a), Math.round(b));
        }],
      },
    };
    this.plot = new uPlot(opts, data, this.el);
    this.el.dataset.series = series.map((s) => s.label).join("|");
    this.el.dataset.points = String(xs.length);
    this.el.dataset.sum = String(series.reduce((a, s) => a + s.values.reduce((x, y) => x + y, 0), 0));
    this.el.dataset.from = String(fromMs);
    this.el.dataset.until = String(untilMs);
  }
}

function short(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e12) return `${(v / 1e12).toFixed(1)}T`;
  if (a >= 1e9) return `${(v / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${(v / 1e3).toFixed(1)}K`;
  return String(v);
}
