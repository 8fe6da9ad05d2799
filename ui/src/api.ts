/** Fetches from this server's query API (same origin). Errors carry the server's message. */

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

const TOKEN_KEY = "fleetprof.token";
let inflight = 0;
const busyListeners: Array<(busy: boolean) => void> = [];

export function onBusy(fn: (busy: boolean) => void): void {
  busyListeners.push(fn);
}

function setBusy(delta: number): void {
  inflight += delta;
  for (const fn of busyListeners) fn(inflight > 0);
}

export function setToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

let tenant = "";
export function setTenant(t: string): void {
  tenant = t;
}

function headers(): Record<string, string> {
  const out: Record<string, string> = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) out["Authorization"] = `Bearer ${token}`;
  if (tenant) out["X-Scope-OrgID"] = tenant;
  return out;
}

export function url(path: string, params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

async function request(path: string, params: Record<string, string | number | undefined>, signal?: AbortSignal): Promise<Response> {
  setBusy(1);
  try {
    const r = await fetch(url(path, params), { headers: headers(), signal });
    if (!r.ok) {
      let code = "unknown";
      let message = `${r.status} ${r.statusText}`;
      try {
        const body = (await r.json()) as { code?: string; message?: string };
        code = body.code ?? code;
        message = body.message ?? message;
      } catch {
        /* not JSON: keep the status line */
      }
      throw new ApiError(r.status, code, message);
    }
    return r;
  } finally {
    setBusy(-1);
  }
}

export async function getJSON<T>(path: string, params: Record<string, string | number | undefined> = {}, signal?: AbortSignal): Promise<T> {
  return (await (await request(path, params, signal)).json()) as T;
}

export async function getBlob(path: string, params: Record<string, string | number | undefined>): Promise<Blob> {
  return (await request(path, params)).blob();
}
