/** fleetprof explorer: page shell, query bar, URL state, keyboard shortcuts, theme. */

import { ApiError, getJSON, onBusy, setTenant, setToken } from "./api";
import { Ctx, isSelectorError } from "./context";
import { $, h, option } from "./dom";
import { CompareView } from "./compare";
import { FleetView } from "./fleet";
import { LabelBuilder } from "./labels";
import { SingleView } from "./single";
import { State, View, parseState, stateSearch } from "./state";
import { TagsView } from "./tags";
import { TraceSearchView, TraceView } from "./traces";
import { PRESETS, fromLocalInput, resolveTime, timeZone, toLocalInput } from "./time";

interface ViewImpl {
  el: HTMLElement;
  update(ctx: Ctx, force: boolean): void;
  onKey?(e: KeyboardEvent): boolean;
}

const THEME_KEY = "fleetprof.theme";

class App implements Ctx {
  state: State = parseState(location.search);
  private services = h("select", { "aria-label": "service", "data-testid": "service" });
  private types = h("select", { "aria-label": "profile type", "data-testid": "profile-type" });
  private labels = new LabelBuilder("labels", (m) => this.update({ matchers: m, focus: "" }));
  private preset = h("select", { "aria-label": "time range", "data-testid": "range" });
  private fromIn = h("input", { type: "datetime-local", step: 1, "aria-label": "from", "data-testid": "from" });
  private untilIn = h("input", { type: "datetime-local", step: 1, "aria-label": "until", "data-testid": "until" });
  private custom = h("span", { class: "custom-range", hidden: true });
  private nav = h("nav", { class: "tabs", "aria-label": "views" });
  private main = h("main", { id: "view", "aria-live": "polite" });
  private status = h("div", { class: "status", "data-testid": "status", role: "status" });
  private views: Record<View, ViewImpl>;
  private lastKey = "";

  constructor() {
    this.views = {
      single: new SingleView(this),
      compare: new CompareView(this),
      tags: new TagsView(this),
      fleet: new FleetView(this),
      traces: new TraceSearchView(this),
      trace: new TraceView(this),
    };
    setTenant(this.state.tenant);
  }

  mount(root: HTMLElement): void {
    const loading = h("div", { class: "loading", "data-testid": "loading", hidden: true, "aria-label": "loading" });
    onBusy((busy) => { loading.hidden = !busy; this.main.setAttribute("aria-busy", String(busy)); });
    const theme = h("button", { type: "button", "data-testid": "theme", title: "Toggle light/dark theme (t)" }, "◐");
    theme.addEventListener("click", () => this.toggleTheme());
    const help = h("button", { type: "button", "data-testid": "help", title: "Keyboard shortcuts (?)" }, "?");
    help.addEventListener("click", () => this.toggleHelp());
    const refresh = h("button", { type: "button", "data-testid": "refresh", title: "Refresh (r)" }, "⟳ Refresh");
    refresh.addEventListener("click", () => this.render(true));
    const share = h("button", { type: "button", "data-testid": "share", title: "Copy a link to this view" }, "Share");
    share.addEventListener("click", () => this.share(share));
    for (const [v, label] of [["single", "Single view"], ["compare", "Comparison / diff"], ["tags", "Tag explorer"], ["fleet", "Fleet"], ["traces", "Traces"]] as const) {
      const a = h("a", { href: "#", "data-view": v, "data-testid": `tab-${v}` }, label);
      a.addEventListener("click", (e) => { e.preventDefault(); this.update({ view: v }); });
      this.nav.append(a);
    }
    this.preset.append(...PRESETS.map(([v, l]) => option(v, l)), option("custom", "Custom range…"));
    this.preset.addEventListener("change", () => {
      if (this.preset.value === "custom") { this.custom.hidden = false; return; }
      this.update({ from: this.preset.value, until: "now", focus: "" });
    });
    const apply = h("button", { type: "button", "data-testid": "apply-range" }, "Apply");
    apply.addEventListener("click", () => {
      const a = fromLocalInput(this.fromIn.value);
      const b = fromLocalInput(this.untilIn.value);
      if (Number.isFinite(a) && Number.isFinite(b) && a < b) this.update({ from: String(a), until: String(b), focus: "" });
    });
    this.custom.append(this.fromIn, "→", this.untilIn, h("span", { class: "tz", "data-testid": "tz" }, timeZone()), apply);
    this.services.addEventListener("change", () => this.update({ service: this.services.value, focus: "", fn: "" }));
    this.types.addEventListener("change", () => this.update({ type: this.types.value, focus: "", fn: "" }));
    const bar = h("div", { class: "querybar", role: "search" },
      h("label", { class: "profile-only" }, "Service ", this.services), h("label", { class: "profile-only" }, "Type ", this.types), this.labels.el,
      h("span", { class: "range" }, this.preset, this.custom), refresh, share);
    const header = h("header", {}, h("h1", {}, "fleetprof"), this.nav, loading, h("span", { class: "spacer" }), help, theme);
    root.replaceChildren(header, bar, this.status, this.main,
      h("div", { class: "help", id: "help", hidden: true, "data-testid": "shortcuts", role: "dialog", "aria-label": "keyboard shortcuts" },
        h("h2", {}, "Keyboard shortcuts"),
        h("ul", {}, ...["/ search", "r refresh", "Esc reset focus", "1 flame graph · 2 table · 3 both · 4 sandwich", "s single · c compare · g tag explorer · f fleet · x traces", "t theme", "? this help"].map((t) => h("li", {}, t)))));
    window.addEventListener("popstate", () => { this.state = parseState(location.search); this.render(false); });
    document.addEventListener("keydown", (e) => this.onKey(e));
    this.applyTheme(localStorage.getItem(THEME_KEY) ?? (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
    void this.start();
  }

  private async start(): Promise<void> {
    try {
      const [services, types] = await Promise.all([
        getJSON<string[]>("/api/v1/services", { from: "now-7d", until: "now" }),
        getJSON<string[]>("/api/v1/profile-types", { from: "now-7d", until: "now" }),
      ]);
      this.fill(services, types);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) { this.askToken(); return; }
      this.status.replaceChildren(h("div", { class: "notice notice-error", role: "alert" }, `Cannot reach the query API: ${e instanceof Error ? e.message : String(e)}`));
      return;
    }
    this.render(false);
  }

  private fill(services: string[], types: string[]): void {
    const s = this.state;
    const patch: Partial<State> = {};
    if (!s.service && services.length) patch.service = services[0];
    if (!s.type && types.length) patch.type = types.find((t) => t.startsWith("process_cpu:")) ?? types[0];
    this.services.replaceChildren(...services.map((v) => option(v)));
    this.types.replaceChildren(...types.map((v) => option(v, v.split(":").slice(0, 2).join(":"))));
    if (!services.length) this.status.replaceChildren(h("div", { class: "notice notice-empty profile-only", role: "status", "data-testid": "no-services" }, "No profiles in the last 7 days yet. Point an agent at this server."));
    if (Object.keys(patch).length) {
      this.state = { ...s, ...patch };
      history.replaceState(null, "", `?${stateSearch(this.state)}`);
    }
  }

  private askToken(): void {
    const input = h("input", { type: "password", "aria-label": "token", "data-testid": "token" });
    const go = h("button", { type: "button" }, "Use token");
    go.addEventListener("click", () => { setToken(input.value); this.status.replaceChildren(); void this.start(); });
    this.status.replaceChildren(h("div", { class: "notice notice-error", role: "alert" }, "This server needs a token with the read scope: ", input, go));
  }

  update(patch: Partial<State>, replace = false): void {
    this.state = { ...this.state, ...patch };
    const url = `?${stateSearch(this.state)}`;
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
    this.render(false);
  }

  selectorError(e: unknown): boolean {
    if (!isSelectorError(e)) return false;
    this.labels.showError((e as Error).message);
    return true;
  }

  private render(force: boolean): void {
    const s = this.state;
    setTenant(s.tenant);
    if (![...this.services.options].some((o) => o.value === s.service) && s.service) this.services.append(option(s.service));
    this.services.value = s.service;
    if (![...this.types.options].some((o) => o.value === s.type) && s.type) this.types.append(option(s.type));
    this.types.value = s.type;
    this.labels.set(s.matchers, { query: s.service ? `{service_name=${JSON.stringify(s.service)}}` : "", from: s.from, until: s.until });
    const key = JSON.stringify([s.service, s.type, s.matchers, s.from, s.until]);
    if (key !== this.lastKey) this.labels.showError(null);
    this.lastKey = key;
    const isPreset = s.until === "now" && PRESETS.some(([v]) => v === s.from);
    if (!isPreset && ![...this.preset.options].some((o) => o.value === s.from)) this.preset.value = "custom";
    this.preset.value = isPreset ? s.from : "custom";
    this.custom.hidden = isPreset;
    this.fromIn.value = toLocalInput(resolveTime(s.from));
    this.untilIn.value = toLocalInput(resolveTime(s.until));
    const tab = s.view === "trace" ? "traces" : s.view;
    for (const a of this.nav.querySelectorAll<HTMLElement>("a")) a.setAttribute("aria-current", String(a.dataset.view === tab));
    const traces = s.view === "traces" || s.view === "trace";
    for (const el of document.querySelectorAll<HTMLElement>(".profile-only")) el.hidden = traces;
    this.labels.el.hidden = traces;
    const view = this.views[s.view];
    if (this.main.firstChild !== view.el) this.main.replaceChildren(view.el);
    document.title = traces ? `fleetprof · ${s.view === "trace" && s.trace ? `trace ${s.trace}` : "traces"}` : `fleetprof · ${s.service || "explorer"}`;
    view.update(this, force);
  }

  private async share(btn: HTMLElement): Promise<void> {
    const link = location.href;
    try {
      await navigator.clipboard.writeText(link);
      btn.textContent = "Link copied";
    } catch {
      btn.textContent = "Copy the address bar";
    }
    btn.dataset.url = link;
    setTimeout(() => (btn.textContent = "Share"), 2000);
  }

  private applyTheme(t: string): void {
    document.documentElement.dataset.theme = t === "dark" ? "dark" : "light";
    document.dispatchEvent(new Event("fleetprof:theme"));
  }

  private toggleTheme(): void {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    localStorage.setItem(THEME_KEY, next);
    this.applyTheme(next);
  }

  private toggleHelp(): void {
    const el = $("#help");
    el.hidden = !el.hidden;
  }

  private onKey(e: KeyboardEvent): void {
    const t = e.target as HTMLElement;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) {
      if (e.key === "Escape") t.blur();
      return;
    }
    if (this.views[this.state.view].onKey?.(e)) { e.preventDefault(); return; }
    const go: Record<string, () => void> = {
      r: () => this.render(true),
      t: () => this.toggleTheme(),
      "?": () => this.toggleHelp(),
      s: () => this.update({ view: "single" }),
      c: () => this.update({ view: "compare" }),
      g: () => this.update({ view: "tags" }),
      f: () => this.update({ view: "fleet" }),
      x: () => this.update({ view: "traces" }),
    };
    const fn = go[e.key];
    if (fn) { e.preventDefault(); fn(); }
  }
}

const app = new App();
app.mount($("#app"));
(window as unknown as { fleetprofExplorer: App }).fleetprofExplorer = app;
