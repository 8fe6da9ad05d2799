/** A small popup menu at the pointer (the flame graph's node actions). Closes on a pick,
 * Escape, a click elsewhere or scrolling. */

import { h } from "./dom";

export interface MenuItem {
  label: string;
  testid: string;
  run: () => void;
}

let open: HTMLElement | null = null;

export function closeMenu(): void {
  open?.remove();
  open = null;
}

/** Show ``items`` under ``title`` at viewport point (x, y). */
export function showMenu(x: number, y: number, title: string, items: MenuItem[]): HTMLElement {
  closeMenu();
  const menu = h("div", { class: "ctx-menu", role: "menu", "data-testid": "node-menu", "aria-label": `actions for ${title}` },
    h("div", { class: "ctx-title", title }, title));
  for (const it of items) {
    const b = h("button", { type: "button", role: "menuitem", "data-testid": it.testid }, it.label);
    b.addEventListener("click", () => { closeMenu(); it.run(); });
    menu.append(b);
  }
  menu.addEventListener("keydown", (e) => { if (e.key === "Escape") { e.stopPropagation(); closeMenu(); } });
  document.body.append(menu);
  const r = menu.getBoundingClientRect();
  menu.style.left = `${Math.max(0, Math.min(x, window.innerWidth - r.width - 4))}px`;
  menu.style.top = `${Math.max(0, Math.min(y, window.innerHeight - r.height - 4))}px`;
  open = menu;
  (menu.querySelector("button") as HTMLElement | null)?.focus();
  return menu;
}

document.addEventListener("mousedown", (e) => { if (open && !open.contains(e.target as Node)) closeMenu(); }, true);
document.addEventListener("keydown", (e) => { if (open && e.key === "Escape") closeMenu(); }, true);
window.addEventListener("scroll", closeMenu, true);
