/** Label-selector builder: chips for the matchers plus a row to add one, with autocomplete
 * of label names and values from the server; an error line shows the server's message for
 * a bad selector (e.g. an invalid regex) at the field. */

import { getJSON } from "./api";
import { h, option } from "./dom";
import { Matcher, Op, matcherText } from "./state";

export interface Scope {
  query: string; // {service_name="..."} selector the suggestions are limited to
  from: string;
  until: string;
}

let uid = 0;

export class LabelBuilder {
  readonly el: HTMLElement;
  private chips: HTMLElement;
  private nameIn: HTMLInputElement;
  private opIn: HTMLSelectElement;
  private valueIn: HTMLInputElement;
  private names: HTMLDataListElement;
  private values: HTMLDataListElement;
  private error: HTMLElement;
  private matchers: Matcher[] = [];
  private scope: Scope = { query: "", from: "now-1h", until: "now" };

  constructor(id: string, private onChange: (m: Matcher[]) => void) {
    const n = ++uid;
    this.names = h("datalist", { id: `label-names-${n}` });
    this.values = h("datalist", { id: `label-values-${n}` });
    this.chips = h("span", { class: "chips", "data-testid": `${id}-chips` });
    this.nameIn = h("input", { class: "label-name", placeholder: "label", list: this.names.id, "aria-label": "label name", "data-testid": `${id}-name`, size: 10 });
    this.opIn = h("select", { "aria-label": "operator", "data-testid": `${id}-op` }, ...(["=", "!=", "=~", "!~"] as Op[]).map((o) => option(o)));
    this.valueIn = h("input", { class: "label-value", placeholder: "value", list: this.values.id, "aria-label": "label value", "data-testid": `${id}-value`, size: 12 });
    const add = h("button", { type: "button", "data-testid": `${id}-add`, title: "Add this matcher" }, "+");
    this.error = h("div", { class: "field-error", role: "alert", "data-testid": `${id}-error`, hidden: true });
    this.el = h("div", { class: "labels", role: "group", "aria-label": "label selector" },
      h("span", { class: "brace" }, "{"), this.chips, this.nameIn, this.opIn, this.valueIn, add, h("span", { class: "brace" }, "}"),
      this.names, this.values, this.error);
    this.nameIn.addEventListener("focus", () => void this.suggestNames());
    this.nameIn.addEventListener("change", () => void this.suggestValues());
    this.valueIn.addEventListener("focus", () => void this.suggestValues());
    add.addEventListener("click", () => this.add());
    for (const input of [this.nameIn, this.valueIn]) {
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); this.add(); } });
    }
  }

  set(matchers: Matcher[], scope: Scope): void {
    this.matchers = matchers;
    this.scope = scope;
    this.chips.replaceChildren(...matchers.map((m, i) => {
      const rm = h("button", { type: "button", class: "chip-x", "aria-label": `remove ${matcherText(m)}` }, "×");
      rm.addEventListener("click", () => this.onChange(this.matchers.filter((_, j) => j !== i)));
      const regex = m.op === "=~" || m.op === "!~";
      return h("span", { class: "chip", "data-testid": "matcher", "data-regex": regex }, matcherText(m), rm);
    }));
  }

  /** Show ``message`` at the field (or clear it with null); regex chips are marked invalid. */
  showError(message: string | null): void {
    this.error.hidden = message === null;
    this.error.textContent = message ?? "";
    for (const chip of this.chips.querySelectorAll<HTMLElement>("[data-regex]")) {
      if (message) chip.setAttribute("aria-invalid", "true");
      else chip.removeAttribute("aria-invalid");
    }
  }

  private add(): void {
    const name = this.nameIn.value.trim();
    if (!name) { this.nameIn.focus(); return; }
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name)) { this.showError(`'${name}' is not a valid label name`); return; }
    const m: Matcher = { name, op: this.opIn.value as Op, value: this.valueIn.value };
    this.nameIn.value = "";
    this.valueIn.value = "";
    this.onChange([...this.matchers, m]);
  }

  private async suggestNames(): Promise<void> {
    try {
      const names = await getJSON<string[]>("/api/v1/labels", { query: this.scope.query, from: this.scope.from, until: this.scope.until });
      this.names.replaceChildren(...names.filter((n) => !n.startsWith("__") && n !== "service_name").map((n) => option(n)));
    } catch {
      /* suggestions are optional */
    }
  }

  private async suggestValues(): Promise<void> {
    const name = this.nameIn.value.trim();
    if (!name) return;
    try {
      const values = await getJSON<string[]>(`/api/v1/labels/${encodeURIComponent(name)}/values`, { query: this.scope.query, from: this.scope.from, until: this.scope.until });
      this.values.replaceChildren(...values.map((v) => option(v)));
      this.values.dataset.label = name;
    } catch {
      /* suggestions are optional */
    }
  }
}
