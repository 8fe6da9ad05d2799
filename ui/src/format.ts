/** Value formatting by the profile's unit. */

const SI = ["", "K", "M", "G", "T", "P"];
const BYTES = ["B", "KiB", "MiB", "GiB", "TiB"];

function scaled(v: number, base: number, suffixes: string[], sep = ""): string {
  let i = 0;
  let x = Math.abs(v);
  while (x >= base && i < suffixes.length - 1) { x /= base; i++; }
  const s = x >= 100 || i === 0 ? x.toFixed(i === 0 && Number.isInteger(x) ? 0 : 1) : x.toFixed(2);
  return `${v < 0 ? "-" : ""}${s}${sep}${suffixes[i]}`;
}

function seconds(s: number): string {
  const a = Math.abs(s);
  if (a === 0) return "0 s";
  if (a < 1e-3) return `${(s * 1e6).toFixed(0)} µs`;
  if (a < 1) return `${(s * 1e3).toFixed(1)} ms`;
  if (a < 120) return `${s.toFixed(2)} s`;
  if (a < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** ``v`` (raw flame-graph ticks) as text in the profile's unit. */
export function formatValue(v: number, units: string, sampleRate: number): string {
  switch (units) {
    case "samples":
      return seconds(v / (sampleRate || 100));
    case "nanoseconds":
      return seconds(v / 1e9);
    case "microseconds":
      return seconds(v / 1e6);
    case "milliseconds":
      return seconds(v / 1e3);
    case "seconds":
      return seconds(v);
    case "bytes":
      return scaled(v, 1024, BYTES, " ");
    default:
      return scaled(v, 1000, SI);
  }
}

export function pct(x: number, digits = 2): string {
  return `${(x * 100).toFixed(digits)}%`;
}
