/** Exports of the current view: the server's formats, flamebearer JSON and a PNG of the canvas. */

import { getBlob } from "./api";
import { h } from "./dom";

export const FORMATS: Array<[string, string, string]> = [
  ["pprof", "pprof", "pb.gz"],
  ["folded", "folded", "folded.txt"],
  ["speedscope", "speedscope", "speedscope.json"],
  ["flamebearer", "flamebearer JSON", "flamebearer.json"],
  ["svg", "SVG", "svg"],
  ["html", "HTML", "html"],
  ["png", "PNG", "png"],
];

function save(blob: Blob, filename: string): void {
  const href = URL.createObjectURL(blob);
  const a = h("a", { href, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

/** A row of export buttons; ``params`` gives the query of the current view on click. */
export function exportBar(params: () => { query: string; from: string; until: string; name: string }, canvas: () => HTMLCanvasElement | null, onError: (e: unknown) => void): HTMLElement {
  const bar = h("span", { class: "exports", role: "group", "aria-label": "export" }, "Export:");
  for (const [fmt, label, ext] of FORMATS) {
    const b = h("button", { type: "button", "data-testid": `export-${fmt}`, title: `Download as ${label}` }, label);
    b.addEventListener("click", async () => {
      const p = params();
      const file = `${p.name.replace(/[^A-Za-z0-9_.-]+/g, "_")}.${ext}`;
      try {
        if (fmt === "png") {
          const c = canvas();
          if (!c) return;
          c.toBlob((blob) => blob && save(blob, file), "image/png");
        } else if (fmt === "flamebearer") {
          save(await getBlob("/pyroscope/render", { query: p.query, from: p.from, until: p.until, format: "json" }), file);
        } else {
          save(await getBlob("/api/v1/export", { query: p.query, from: p.from, until: p.until, format: fmt, title: p.name }), file);
        }
      } catch (e) {
        onError(e);
      }
    });
    bar.append(b);
  }
  return bar;
}
