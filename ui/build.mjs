// Bundles src/main.ts and src/style.css into ../fleetprof/explorer (or $EXPLORER_OUT):
// the assets `fleetprof serve` ships at /explorer/assets. No source maps, no CDN.
import { build } from "esbuild";
import { mkdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";

const out = resolve(process.env.EXPLORER_OUT ?? "../fleetprof/explorer");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: "src/main.ts", style: "src/style.css" },
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2022"],
  outdir: out,
  legalComments: "linked",
  logLevel: "warning",
});
writeFileSync(resolve(out, "BUILT"), "built by ui/build.mjs from ui/src; do not edit\n");
