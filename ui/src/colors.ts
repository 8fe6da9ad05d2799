/** Flame-graph colours: by package (Pyroscope's PackageBased idea, per-language package
 * extraction, re-implemented), by value (self share), and the diff scale. */

// Light, distinguishable fills that keep dark text readable in both themes.
const PALETTE = [
  "#f4a582", "#92c5de", "#b8e186", "#fdb863", "#c2a5cf", "#80cdc1", "#f1b6da", "#d9ef8b",
  "#fee08b", "#a6dba0", "#9ecae1", "#fdae6b", "#bcbddc", "#c7e9c0", "#fcbba1", "#e6c9a8",
];

type Rule = [RegExp, (m: RegExpMatchArray) => string];

/** Package of a frame name, by the language its shape reveals:
 * Go `github.com/x/y.(*T).M` → `github.com/x/y`; Java `com.acme.Foo.bar` or `com/acme/Foo.bar`
 * → `com.acme`; Python/Ruby/PHP/JS file paths → the directory; Node `node_modules/pkg/…` →
 * `pkg`; Rust/C++ `a::b::c` → `a`; .NET `Ns.Type.Method(...)` → `Ns`; else the whole name. */
const RULES: Rule[] = [
  [/^(?:\.\/)?node_modules\/(@[^/]+\/[^/]+|[^/]+)\//, (m) => m[1]],
  [/^(.*\/)[^/]+\.(?:py|rb|php|js|mjs|ts|tsx|jsx)\b/, (m) => m[1]],
  [/^([A-Za-z0-9_]+)::/, (m) => m[1]],
  [/^(.+)\.[A-Za-z0-9_]+\.[A-Za-z0-9_<>$]+\(.*\)$/, (m) => m[1]],
  [/^((?:[a-z][a-z0-9_]*[./])+)[A-Z][A-Za-z0-9_$]*[.$]/, (m) => m[1].replace(/\//g, ".").replace(/\.$/, "")],
  [/^(.*?\/[^.(]*?)\./, (m) => m[1]],
  [/^([a-z][a-z0-9_]*)\./, (m) => m[1]],
];

export function packageOf(name: string): string {
  if (!name) return name;
  for (const [re, pick] of RULES) {
    const m = name.match(re);
    if (m) return pick(m);
  }
  return name;
}

/** FNV-1a 32-bit hash of a string. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const pkgCache = new Map<string, string>();

export function packageColor(name: string): string {
  let c = pkgCache.get(name);
  if (c === undefined) {
    c = PALETTE[hash(packageOf(name)) % PALETTE.length];
    pkgCache.set(name, c);
  }
  return c;
}

/** Colour of a share in [0, 1]: pale yellow (cold) to red (hot). */
export function valueColor(share: number): string {
  const t = Math.max(0, Math.min(1, share));
  const r = 250;
  const g = Math.round(230 - 170 * t);
  const b = Math.round(160 - 120 * t);
  return `rgb(${r},${g},${b})`;
}

export const GREY = "#c8c8c8";
export const MATCH = "#48ce73";

/** Relative change (right vs left share of their totals) in percent, clamped to ±100. */
export function diffPercent(leftShare: number, rightShare: number): number {
  if (leftShare === rightShare) return 0;
  if (leftShare === 0) return 100;
  return Math.max(-100, Math.min(100, ((rightShare - leftShare) / leftShare) * 100));
}

/** Diff fill: grey at 0, red (grew) or green (shrank); the colour-blind palette uses
 * orange (grew) and blue (shrank). */
export function diffColor(p: number, palette: "rg" | "cb"): string {
  const v = Math.round(200 - 1.4 * Math.abs(p));
  if (p === 0) return "rgb(205,205,205)";
  if (palette === "cb") return p > 0 ? `rgb(235,${Math.round(v * 0.85)},${Math.round(v * 0.4)})` : `rgb(${v * 0.5},${v},235)`;
  return p > 0 ? `rgb(225,${v},${v})` : `rgb(${v},215,${v})`;
}

export const LEGEND: Record<"rg" | "cb", [string, string]> = {
  rg: [diffColor(-100, "rg"), diffColor(100, "rg")],
  cb: [diffColor(-100, "cb"), diffColor(100, "cb")],
};

// Saturated enough to read as a bar against the panel, in both themes.
const SERVICE_PALETTE = [
  "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#d4a6c8", "#9c755f",
  "#af7aa1", "#86bcb6", "#bab0ac", "#8cd17d",
];

/** A stable colour per service name (the waterfall's bars and the trace's legend). */
export function serviceColor(service: string): string {
  return SERVICE_PALETTE[hash(service) % SERVICE_PALETTE.length];
}
