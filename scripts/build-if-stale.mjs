#!/usr/bin/env node
// `pnpm start` runs the compiled `sg`; this builds it first when `dist/` is missing or older than a source file, so a
// fresh clone's `pnpm install && pnpm start` still does everything. Plain Node: it runs before anything is built.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const projects = ["packages/redis", "packages/trace", "packages/resilience", "packages/leader", "packages/otel",
  "packages/gateway", "packages/agent-runtime", "apps/supervisor"]

const newest = (dir) => {
  let latest = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : fs.statSync(full).mtimeMs)
  }
  return latest
}

const mtime = (file) => (fs.existsSync(file) ? fs.statSync(file).mtimeMs : 0)

const stale = projects.filter((project) => {
  const built = mtime(path.join(root, project, "build/src.tsbuildinfo"))
  const inputs = Math.max(
    newest(path.join(root, project, "src")),
    mtime(path.join(root, project, "tsconfig.src.json")),
    mtime(path.join(root, "tsconfig.base.json"))
  )
  return built === 0 || !fs.existsSync(path.join(root, project, "dist")) || inputs > built
})

if (stale.length > 0) {
  process.stderr.write(`sg: building ${stale.join(", ")} (dist/ missing or older than its sources)\n`)
  const tsc = path.join(root, "node_modules/typescript/bin/tsc")
  execFileSync(process.execPath, [tsc, "-b", path.join(root, "apps/supervisor/tsconfig.src.json")], {
    stdio: "inherit"
  })
}
