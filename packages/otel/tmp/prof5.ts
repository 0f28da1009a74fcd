import * as Http from "node:http"
const server = Http.createServer((req, res) => { req.on("data", () => {}); req.on("end", () => { res.writeHead(200); res.end() }) })
await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()))
const port = (server.address() as any).port
const body = Buffer.alloc(117_000, 7)
const agent = new Http.Agent({ keepAlive: true })
const post = () => new Promise<void>((resolve) => { const req = Http.request({ host: "127.0.0.1", port, method: "POST", path: "/v1/traces", agent, headers: { "content-type": "application/x-protobuf", "content-length": body.length } }, (res) => { res.on("data", () => {}); res.on("end", () => resolve()) }); req.end(body) })
const postFetch = async () => { const r = await fetch(`http://127.0.0.1:${port}/v1/traces`, { method: "POST", body, headers: { "content-type": "application/x-protobuf" } }); await r.arrayBuffer() }
for (const [name, f] of [["node:http", post], ["fetch", postFetch]] as const) {
  for (let i = 0; i < 20; i++) await f()
  const c0 = process.cpuUsage(); const n = 200
  for (let i = 0; i < n; i++) await f()
  const c = process.cpuUsage(c0)
  console.log(name, "cpu µs/request", ((c.user + c.system) / n).toFixed(0))
}
// server share: a request's server-side parse only
server.close(); agent.destroy()
