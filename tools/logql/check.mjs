// Every LogQL query the project ships, parsed by Grafana's own LogQL grammar (the one Grafana's
// Loki query editor uses): the dashboard's log panels and each ```logql block of README.md and
// docs/operations.md. Exits 1 on a query that does not parse, or when a source holds none
// (a check that finds nothing to check must not pass). make config-check runs it.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parser } from "@grafana/lezer-logql";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function dashboardQueries(path) {
  const board = JSON.parse(readFileSync(join(root, path), "utf8"));
  return board.panels
    .filter((panel) => panel.datasource?.type === "loki")
    .flatMap((panel) => panel.targets.map((target) => target.expr));
}

function markdownQueries(path) {
  const text = readFileSync(join(root, path), "utf8");
  return [...text.matchAll(/^```logql\n([\s\S]*?)^```/gm)].map((block) => block[1].trim());
}

function firstError(query) {
  let at = null;
  parser.parse(query).iterate({
    enter(node) {
      if (node.type.isError && at === null) at = node.from;
    },
  });
  return at;
}

const sources = {
  "docker/grafana/dashboards/ledger.json": dashboardQueries,
  "README.md": markdownQueries,
  "docs/operations.md": markdownQueries,
};
let failed = false;
for (const [path, read] of Object.entries(sources)) {
  const queries = read(path);
  if (queries.length === 0) {
    console.error(`${path}: no LogQL query found`);
    failed = true;
  }
  for (const query of queries) {
    const at = firstError(query);
    if (at === null) {
      console.log(`logql ok: ${path}: ${query}`);
    } else {
      console.error(`${path}: LogQL does not parse at column ${at + 1}:\n  ${query}\n  ${" ".repeat(at)}^`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
