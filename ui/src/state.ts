/** The explorer's whole view state, kept in the page URL's query string so a view can be
 * shared and restored. */

export type View = "single" | "compare" | "tags" | "fleet" | "traces" | "trace";
export const VIEWS: View[] = ["single", "compare", "tags", "fleet", "traces", "trace"];
export type Layout = "flame" | "table" | "both" | "sandwich";
export type Op = "=" | "!=" | "=~" | "!~";

export interface Matcher {
  name: string;
  op: Op;
  value: string;
}

export interface State {
  view: View;
  service: string;
  type: string;
  matchers: Matcher[];
  from: string;
  until: string;
  groupBy: string;
  layout: Layout;
  color: "package" | "value";
  search: string;
  focus: string;
  fn: string;
  // comparison: the right side's own selection and range (the left uses the fields above)
  rmatchers: Matcher[];
  rfrom: string;
  runtil: string;
  palette: "rg" | "cb";
  sort: string;
  maxNodes: string;
  tenant: string;
  // single view: the flame-graph node (path) whose traces are listed
  exemplars: string;
  // trace search: service, span name, durations (Tempo syntax: 100ms, 1.5s), status, tags
  tservice: string;
  tname: string;
  tmin: string;
  tmax: string;
  tstatus: string;
  ttags: Matcher[];
  tlimit: string;
  // trace search: "1" while the flame graph of the matching spans is shown
  tprofile: string;
  // trace view: the trace, the selected span, collapsed spans (comma-separated ids), the
  // span whose profile is shown and the focused node (path) of that flame graph
  trace: string;
  span: string;
  collapsed: string;
  profile: string;
  pfocus: string;
}

export const DEFAULTS: State = {
  view: "single",
  service: "",
  type: "",
  matchers: [],
  from: "now-1h",
  until: "now",
  groupBy: "",
  layout: "both",
  color: "package",
  search: "",
  focus: "",
  fn: "",
  rmatchers: [],
  rfrom: "",
  runtil: "",
  palette: "rg",
  sort: "self",
  maxNodes: "16384",
  tenant: "",
  exemplars: "",
  tservice: "",
  tname: "",
  tmin: "",
  tmax: "",
  tstatus: "",
  ttags: [],
  tlimit: "20",
  tprofile: "",
  trace: "",
  span: "",
  collapsed: "",
  profile: "",
  pfocus: "",
};

const LISTS = ["matchers", "rmatchers", "ttags"] as const;
const LIST_PARAM: Record<(typeof LISTS)[number], string> = { matchers: "m", rmatchers: "rm", ttags: "tt" };

const OPS: Op[] = ["=~", "!~", "!=", "="];

/** `name<op>value` (value as a JSON string) of one matcher. */
export function matcherText(m: Matcher): string {
  return `${m.name}${m.op}${JSON.stringify(m.value)}`;
}

function parseMatcher(s: string): Matcher | null {
  const m = /^([A-Za-z_][A-Za-z0-9_.]*)(=~|!~|!=|=)(.*)$/.exec(s);
  if (!m) return null;
  let value = m[3];
  try {
    value = JSON.parse(value) as string;
  } catch {
    /* a bare value */
  }
  return OPS.includes(m[2] as Op) ? { name: m[1], op: m[2] as Op, value: String(value) } : null;
}

/** `type{service_name="svc",name op "value",...}` — the query the server routes take. */
export function queryText(type: string, service: string, matchers: Matcher[]): string {
  const all = service ? [{ name: "service_name", op: "=" as Op, value: service }, ...matchers] : matchers;
  return `${type}{${all.map(matcherText).join(",")}}`;
}

export function parseState(search: string): State {
  const q = new URLSearchParams(search);
  const s: State = { ...DEFAULTS, matchers: [], rmatchers: [], ttags: [] };
  const str = (k: keyof State) => {
    const v = q.get(k);
    if (v !== null) (s as unknown as Record<string, unknown>)[k] = v;
  };
  (["service", "type", "from", "until", "groupBy", "search", "focus", "fn", "rfrom", "runtil", "tenant", "sort", "maxNodes",
    "exemplars", "tservice", "tname", "tmin", "tmax", "tstatus", "tlimit", "tprofile", "trace", "span", "collapsed", "profile", "pfocus"] as const).forEach(str);
  const view = q.get("view");
  if (VIEWS.includes(view as View)) s.view = view as View;
  const layout = q.get("layout");
  if (layout === "flame" || layout === "table" || layout === "both" || layout === "sandwich") s.layout = layout;
  if (q.get("color") === "value") s.color = "value";
  if (q.get("palette") === "cb") s.palette = "cb";
  s.matchers = q.getAll("m").map(parseMatcher).filter((m): m is Matcher => m !== null);
  s.rmatchers = q.getAll("rm").map(parseMatcher).filter((m): m is Matcher => m !== null);
  s.ttags = q.getAll("tt").map(parseMatcher).filter((m): m is Matcher => m !== null);
  return s;
}

export function stateSearch(s: State): string {
  const q = new URLSearchParams();
  for (const k of Object.keys(DEFAULTS) as Array<keyof State>) {
    if ((LISTS as readonly string[]).includes(k)) continue;
    const v = s[k] as string;
    if (v !== DEFAULTS[k]) q.set(k, v);
  }
  for (const k of LISTS) for (const m of s[k]) q.append(LIST_PARAM[k], matcherText(m));
  return q.toString();
}
