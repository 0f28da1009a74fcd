/**
 * `pnpm bench [name ...]`: runs the named benchmarks (all when none is named), one after another.
 */
const suites: Record<string, () => Promise<{ readonly run: () => Promise<void> }>> = {
  "trace-id": () => import("./trace-id.js"),
  "trace-store": () => import("./trace-store.js"),
  sweep: () => import("./sweep.js"),
  breaker: () => import("./breaker.js"),
  recorder: () => import("./recorder.js"),
  gateway: () => import("./gateway.js"),
  lifecycle: () => import("./lifecycle.js"),
  memory: () => import("./memory.js"),
  readyz: () => import("./readyz.js"),
  peer: () => import("./peer.js"),
  runtime: () => import("./runtime.js"),
  cluster: () => import("./cluster.js"),
  scaling: () => import("./scaling.js")
}

const wanted = process.argv.slice(2)
const names = wanted.length > 0 ? wanted : Object.keys(suites)
for (const name of names) {
  const load = suites[name]
  if (load === undefined) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(suites).join(", ")}`)
    process.exit(2)
  }
  const suite = await load()
  await suite.run()
}
