/** Time ranges: relative (`now-1h`) or absolute (epoch ms), shown in the browser's zone. */

export const PRESETS: Array<[string, string]> = [
  ["now-5m", "Last 5 minutes"],
  ["now-15m", "Last 15 minutes"],
  ["now-1h", "Last hour"],
  ["now-3h", "Last 3 hours"],
  ["now-6h", "Last 6 hours"],
  ["now-24h", "Last 24 hours"],
  ["now-7d", "Last 7 days"],
];

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Epoch ms of `now`, `now-<n><s|m|h|d>` or an epoch-ms string; NaN when malformed. */
export function resolveTime(t: string, now = Date.now()): number {
  if (t === "now") return now;
  const m = /^now-(\d+)([smhd])$/.exec(t);
  if (m) return now - Number(m[1]) * UNIT_MS[m[2]];
  return /^\d+$/.test(t) ? Number(t) : NaN;
}

export function presetLabel(from: string, until: string): string | null {
  if (until !== "now") return null;
  const p = PRESETS.find(([v]) => v === from);
  return p ? p[1] : null;
}

/** `2026-12-04 21:18:27` in the browser's time zone. */
export function formatLocal(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The value of an `<input type="datetime-local">` for epoch ms (browser's zone). */
export function toLocalInput(ms: number): string {
  return formatLocal(ms).replace(" ", "T");
}

export function fromLocalInput(v: string): number {
  return new Date(v).getTime();
}

export function rangeLabel(from: string, until: string): string {
  const preset = presetLabel(from, until);
  if (preset) return preset.toLowerCase().replace(/^last /, "the last ");
  return `${formatLocal(resolveTime(from))} – ${formatLocal(resolveTime(until))}`;
}

export function timeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "local";
}
