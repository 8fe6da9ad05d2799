/** Flame-graph data: Pyroscope flamebearer documents decoded into flat node arrays (level
 * order, left to right), plus the derived views (top table, search, sandwich). */

export interface Flamebearer {
  version?: number;
  flamebearer: { names: string[]; levels: number[][]; numTicks: number; maxSelf: number };
  metadata: { format: "single" | "double"; units: string; sampleRate: number; name: string };
  leftTicks?: number;
  rightTicks?: number;
  timeline?: { startTime: number; samples: number[]; durationDelta: number };
}

export interface DiffSides {
  lt: Float64Array;
  ls: Float64Array;
  rt: Float64Array;
  rs: Float64Array;
  leftTicks: number;
  rightTicks: number;
}

export interface FlameData {
  names: string[];
  n: number;
  depth: Int32Array;
  x: Float64Array;
  total: Float64Array;
  self: Float64Array;
  name: Int32Array;
  parent: Int32Array;
  levelStart: Int32Array;
  maxSelf: number;
  units: string;
  sampleRate: number;
  diff?: DiffSides;
}

function alloc(n: number, levels: number, names: string[], units: string, sampleRate: number): FlameData {
  return {
    names, n, units, sampleRate, maxSelf: 0,
    depth: new Int32Array(n), x: new Float64Array(n), total: new Float64Array(n), self: new Float64Array(n),
    name: new Int32Array(n), parent: new Int32Array(n).fill(-1), levelStart: new Int32Array(levels + 1),
  };
}

/** Decode a flamebearer (single or diff) document. */
export function fromFlamebearer(doc: Flamebearer): FlameData {
  const fb = doc.flamebearer;
  const diff = doc.metadata.format === "double";
  const g = diff ? 7 : 4;
  const n = fb.levels.reduce((a, l) => a + l.length / g, 0);
  const d = alloc(n, fb.levels.length, fb.names, doc.metadata.units, doc.metadata.sampleRate || 100);
  const sides: DiffSides | undefined = diff
    ? { lt: new Float64Array(n), ls: new Float64Array(n), rt: new Float64Array(n), rs: new Float64Array(n), leftTicks: doc.leftTicks ?? 0, rightTicks: doc.rightTicks ?? 0 }
    : undefined;
  let i = 0;
  fb.levels.forEach((level, depth) => {
    d.levelStart[depth] = i;
    let endL = 0;
    let endR = 0;
    for (let j = 0; j < level.length; j += g, i++) {
      d.depth[i] = depth;
      if (sides) {
        const xl = endL + level[j];
        const xr = endR + level[j + 3];
        endL = xl + level[j + 1];
        endR = xr + level[j + 4];
        sides.lt[i] = level[j + 1]; sides.ls[i] = level[j + 2]; sides.rt[i] = level[j + 4]; sides.rs[i] = level[j + 5];
        d.x[i] = xl + xr;
        d.total[i] = level[j + 1] + level[j + 4];
        d.self[i] = level[j + 2] + level[j + 5];
        d.name[i] = level[j + 6];
      } else {
        d.x[i] = endL + level[j];
        d.total[i] = level[j + 1];
        d.self[i] = level[j + 2];
        d.name[i] = level[j + 3];
        endL = d.x[i] + d.total[i];
      }
      if (d.self[i] > d.maxSelf) d.maxSelf = d.self[i];
    }
  });
  d.levelStart[fb.levels.length] = i;
  d.diff = sides;
  linkParents(d);
  return d;
}

/** parent[i] for every node: the node one level up whose span contains the node's start. */
function linkParents(d: FlameData): void {
  const levels = d.levelStart.length - 1;
  for (let l = 1; l < levels; l++) {
    let p = d.levelStart[l - 1];
    const pEnd = d.levelStart[l];
    for (let i = d.levelStart[l]; i < d.levelStart[l + 1]; i++) {
      while (p < pEnd - 1 && d.x[p] + d.total[p] <= d.x[i] && !(d.total[i] === 0 && d.x[p] + d.total[p] === d.x[i])) p++;
      d.parent[i] = p;
    }
  }
}

export function levels(d: FlameData): number {
  return d.levelStart.length - 1;
}

/** Node path from the root's child to ``i``, names joined by ';' (the focus in the URL). */
export function pathOf(d: FlameData, i: number): string {
  const parts: string[] = [];
  for (let v = i; v > 0; v = d.parent[v]) parts.push(d.names[d.name[v]]);
  return parts.reverse().join(";");
}

/** The node at ``path`` (see :func:`pathOf`), or 0 (the root) when none matches. */
export function nodeAt(d: FlameData, path: string): number {
  if (!path) return 0;
  const parts = path.split(";");
  let cur = 0;
  for (let depth = 1; depth <= parts.length; depth++) {
    if (depth >= levels(d)) return 0;
    let next = -1;
    for (let i = d.levelStart[depth]; i < d.levelStart[depth + 1]; i++) {
      if (d.parent[i] === cur && d.names[d.name[i]] === parts[depth - 1]) { next = i; break; }
    }
    if (next < 0) return 0;
    cur = next;
  }
  return cur;
}

/** Whether node i has an ancestor of the same name (its total is then already counted). */
function nested(d: FlameData, i: number): boolean {
  const nm = d.name[i];
  for (let p = d.parent[i]; p > 0; p = d.parent[p]) if (d.name[p] === nm) return true;
  return false;
}

export interface TopRow {
  name: string;
  nameIndex: number;
  self: number;
  total: number;
  // diff only: the two sides' self and total
  lself?: number;
  rself?: number;
  ltotal?: number;
  rtotal?: number;
}

/** Per function: self (summed) and total (counted once per stack, recursion aside). */
export function topTable(d: FlameData): TopRow[] {
  const rows = new Map<number, TopRow>();
  for (let i = 1; i < d.n; i++) {
    const k = d.name[i];
    let r = rows.get(k);
    if (!r) {
      r = { name: d.names[k], nameIndex: k, self: 0, total: 0 };
      if (d.diff) { r.lself = 0; r.rself = 0; r.ltotal = 0; r.rtotal = 0; }
      rows.set(k, r);
    }
    r.self += d.self[i];
    if (d.diff) { r.lself! += d.diff.ls[i]; r.rself! += d.diff.rs[i]; }
    if (!nested(d, i)) {
      r.total += d.total[i];
      if (d.diff) { r.ltotal! += d.diff.lt[i]; r.rtotal! += d.diff.rt[i]; }
    }
  }
  return [...rows.values()];
}

/** Search: a node matches when its name contains ``term`` (case-insensitive). */
export function matcher(term: string): (name: string) => boolean {
  const t = term.toLowerCase();
  return (name) => t !== "" && name.toLowerCase().includes(t);
}

/** Share of the root's total under matching nodes (outermost matches counted once). */
export function matchedShare(d: FlameData, term: string): number {
  if (!term || d.n === 0 || d.total[0] === 0) return 0;
  const m = matcher(term);
  const hit = d.names.map(m);
  let sum = 0;
  for (let i = 1; i < d.n; i++) {
    if (!hit[d.name[i]]) continue;
    let outer = true;
    for (let p = d.parent[i]; p > 0; p = d.parent[p]) if (hit[d.name[p]]) { outer = false; break; }
    if (outer) sum += d.total[i];
  }
  return sum / d.total[0];
}

interface Nested {
  name: string;
  self: number;
  total: number;
  children: Map<string, Nested>;
}

function nestedNode(name: string): Nested {
  return { name, self: 0, total: 0, children: new Map() };
}

function child(n: Nested, name: string): Nested {
  let c = n.children.get(name);
  if (!c) { c = nestedNode(name); n.children.set(name, c); }
  return c;
}

/** Flat node arrays of a nested tree (children sorted by name, laid out from the parent's start). */
function fromNested(root: Nested, units: string, sampleRate: number): FlameData {
  const order: Array<[Nested, number, number]> = [[root, -1, 0]];
  const lvStart: number[] = [0];
  for (let i = 0; i < order.length; i++) {
    const [node, , depth] = order[i];
    if (i > 0 && order[i - 1][2] !== depth) lvStart.push(i);
    const kids = [...node.children.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const k of kids) order.push([k, i, depth + 1]);
  }
  // order is breadth first, so levels are contiguous and each level is left to right
  const names: string[] = [];
  const index = new Map<string, number>();
  const d = alloc(order.length, lvStart.length, names, units, sampleRate);
  const nextX = new Float64Array(order.length);
  order.forEach(([node, parent, depth], i) => {
    let k = index.get(node.name);
    if (k === undefined) { k = names.length; names.push(node.name); index.set(node.name, k); }
    d.name[i] = k; d.depth[i] = depth; d.parent[i] = parent; d.total[i] = node.total; d.self[i] = node.self;
    d.x[i] = parent < 0 ? 0 : nextX[parent];
    if (parent >= 0) nextX[parent] += node.total;
    nextX[i] = d.x[i];
    if (node.self > d.maxSelf) d.maxSelf = node.self;
  });
  lvStart.forEach((s, l) => (d.levelStart[l] = s));
  d.levelStart[lvStart.length] = order.length;
  return d;
}

function childIndex(d: FlameData): number[][] {
  const kids: number[][] = Array.from({ length: d.n }, () => []);
  for (let i = 1; i < d.n; i++) if (d.parent[i] >= 0) kids[d.parent[i]].push(i);
  return kids;
}

function mergeInto(d: FlameData, kids: number[][], i: number, into: Nested): void {
  into.self += d.self[i];
  into.total += d.total[i];
  for (const c of kids[i]) mergeInto(d, kids, c, child(into, d.names[d.name[c]]));
}

/** Sandwich of function ``fn``: callers (inverted: ``fn`` at the root, its callers above)
 * and callees (every outermost call of ``fn`` merged). */
export function sandwich(d: FlameData, fn: string): { callers: FlameData; callees: FlameData } {
  const kids = childIndex(d);
  const callers = nestedNode(fn);
  const callees = nestedNode(fn);
  for (let i = 1; i < d.n; i++) {
    if (d.names[d.name[i]] !== fn || nested(d, i)) continue;
    mergeInto(d, kids, i, callees);
    let cur = callers;
    cur.total += d.total[i];
    for (let p = d.parent[i]; p > 0; p = d.parent[p]) {
      cur = child(cur, d.names[d.name[p]]);
      cur.total += d.total[i];
    }
    cur.self += d.total[i];
  }
  return { callers: fromNested(callers, d.units, d.sampleRate), callees: fromNested(callees, d.units, d.sampleRate) };
}
