/** The flame graph of one span's work (the span-profile route: samples the pyroscope-otel
 * span processor tagged with the span's id), in the explorer's flame-graph component. */

import { getJSON } from "./api";
import { errorText } from "./context";
import { h, notice } from "./dom";
import { FlameGraph } from "./flame";
import { formatValue } from "./format";
import { FlameData, Flamebearer, fromFlamebearer, nodeAt, pathOf } from "./tree";

export const SPAN_PROFILE_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
/** Profiles are stamped with the start of their upload interval and may arrive a little
 * late: the query covers the span padded by this much on either side. */
export const PROFILE_PAD_MS = 60_000;

export interface SpanProfileRequest {
  service: string;
  spanId: string;
  spanName: string;
  startMs: number;
  endMs: number;
}

export class SpanProfilePanel {
  readonly el: HTMLElement;
  private title = h("h3", {});
  private info = h("div", { class: "muted", "data-testid": "span-profile-info" });
  private message = h("div", {});
  private flame: FlameGraph;
  private data: FlameData | null = null;
  private key = "";
  private focusPath = "";

  constructor(onFocus: (path: string) => void, onClose: () => void) {
    this.flame = new FlameGraph({ label: "span flame graph", onFocus: (i) => this.data && onFocus(i === 0 ? "" : pathOf(this.data, i)) });
    const close = h("button", { type: "button", "data-testid": "span-profile-close", title: "Close the span's flame graph" }, "×");
    close.addEventListener("click", onClose);
    this.el = h("section", { class: "span-profile", "data-testid": "span-profile", "aria-label": "span profile" },
      h("div", { class: "toolbar" }, this.title, h("span", { class: "spacer" }), close), this.info, this.message, this.flame.el);
    window.addEventListener("resize", () => { if (this.el.isConnected) this.draw(); });
  }

  /** Show the profile of ``req`` (fetched once per span and range), focused on ``focus``. */
  show(req: SpanProfileRequest, focus: string): void {
    this.title.replaceChildren("Profile of span ", h("code", {}, req.spanName), ` (${req.service})`);
    this.focusPath = focus;
    const key = JSON.stringify(req);
    if (key === this.key) { this.draw(); return; }
    this.key = key;
    this.data = null;
    this.el.dataset.spanId = req.spanId;
    delete this.el.dataset.loaded;
    this.info.textContent = "";
    this.message.replaceChildren();
    this.draw();
    void this.load(req, key);
  }

  private async load(req: SpanProfileRequest, key: string): Promise<void> {
    try {
      const doc = await getJSON<Flamebearer>("/api/v1/span-profile", {
        query: `${SPAN_PROFILE_TYPE}{service_name=${JSON.stringify(req.service)}}`,
        from: String(Math.floor(req.startMs - PROFILE_PAD_MS)), until: String(Math.ceil(req.endMs + PROFILE_PAD_MS)), spanId: req.spanId,
      });
      if (key !== this.key) return;
      this.data = fromFlamebearer(doc);
      const total = this.data.total[0];
      this.info.textContent = total ? `${formatValue(total, this.data.units, this.data.sampleRate)} of CPU in samples tagged with this span` : "";
      if (!total) this.message.replaceChildren(notice("empty", "No profile samples carry this span's id (yet): the agent uploads every few seconds.", "span-profile-empty"));
    } catch (e) {
      if (key !== this.key) return;
      this.message.replaceChildren(notice("error", `Span profile: ${errorText(e)}`, "span-profile-error"));
    }
    this.el.dataset.loaded = "true";
    this.draw();
  }

  private draw(): void {
    const d = this.data;
    this.flame.el.hidden = !d || d.total[0] === 0;
    if (!d) return;
    this.flame.setData(d, nodeAt(d, this.focusPath));
    this.flame.render();
  }
}
