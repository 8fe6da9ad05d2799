/** What every view gets: the current state, a way to change it (URL first), and helpers. */

import { ApiError } from "./api";
import { State, queryText } from "./state";
import { resolveTime } from "./time";

export interface Ctx {
  state: State;
  /** Merge ``patch`` into the state, write it to the URL (a new history entry unless
   * ``replace``) and re-render. */
  update(patch: Partial<State>, replace?: boolean): void;
  /** Show a 400 about the selector at the label fields; other errors in the view. */
  selectorError(e: unknown): boolean;
}

export function mainQuery(s: State): string {
  return queryText(s.type, s.service, s.matchers);
}

export function rightQuery(s: State): string {
  return queryText(s.type, s.service, s.rmatchers);
}

/** ``from``/``until`` resolved to epoch ms (relative times against now). */
export function range(from: string, until: string, now = Date.now()): [number, number] {
  return [resolveTime(from, now), resolveTime(until, now)];
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return `${e.message} (${e.status})`;
  return e instanceof Error ? e.message : String(e);
}

export function isSelectorError(e: unknown): boolean {
  return e instanceof ApiError && e.status === 400 && /selector|regex|regexp|matcher/i.test(e.message);
}
