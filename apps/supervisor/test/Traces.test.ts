// absolute dates: formatting of records built in the test, no store
import { describe, expect, it } from "@effect/vitest"
import { Traces } from "@sg/supervisor"
import { ExecutionRecord, type TraceId, TraceRecord } from "@sg/trace"
import { DateTime, Effect, Exit, Option } from "effect"
import { runSg } from "./utils/sg.js"

const id = "0190a000-0000-7000-8000-000000000001" as TraceId.TraceId
const at = (ms: number) => new Date(Date.UTC(2025, 10, 23, 10, 0, 0, ms)).toISOString()

const call = (ms: number, duration: number) => ({
  call_id: `call-${ms}`,
  started_at: at(ms),
  duration_ms: duration,
  input: null,
  output: null
})

const run = (
  runId: string,
  agent: string,
  ms: number,
  parent?: string
): ExecutionRecord.Run => ({
  run_id: runId,
  ...(parent === undefined ? {} : { parent_run_id: parent }),
  agent_id: agent,
  conversation_id: "c-1",
  status: "success",
  started_at: at(ms),
  duration_ms: 40,
  steps: 1,
  tokens: { input: 10, output: 5 },
  tool_calls: [],
  inference_calls: [{ ...call(ms + 1, 3), status: "success", model: "demo", tokens: { input: 10, output: 5 } }],
  events: []
})

const record: ExecutionRecord.ExecutionRecord = {
  trace_id: id,
  conversation_id: "c-1",
  status: "error",
  started_at: at(0),
  ended_at: at(100),
  duration_ms: 100,
  error: "UpstreamError: the model failed",
  runs: [
    // Out of order on purpose: the tree orders by start.
    run("r-child-b", "researcher", 30, "r-root"),
    {
      ...run("r-root", "assistant", 0),
      status: "error",
      error: "UpstreamError: the model failed",
      steps: 2,
      tokens: { input: 30, output: 9 },
      inference_calls: [
        { ...call(1, 2.5), status: "success", model: "demo", tokens: { input: 10, output: 4 } },
        { ...call(80, 1), status: "error", model: "demo", tokens: { input: 0, output: 0 }, error: "boom\nfailed" }
      ],
      tool_calls: [
        { ...call(10, 0.25), tool: "calculator", status: "success", input: "{\"expression\":\"2+2\"}", output: "4" },
        { ...call(12, 0), tool: "search", status: "error", error: "CircuitOpenError", circuit: "tool:search" },
        { ...call(15, 50), tool: "fan_out", status: "success", input: "{\"count\":3}", output: "[...]" }
      ],
      events: [{
        type: "child_result",
        at: at(70),
        child_run_id: "r-child-gone",
        agent_id: "researcher",
        status: "timeout",
        output: null,
        error: "RunTimeout"
      }]
    },
    run("r-child-a", "researcher", 20, "r-root")
  ]
}

const lifecycle = new TraceRecord.TraceRecord({
  trace_id: id,
  state: "ERRORED",
  created_at: DateTime.unsafeMake(at(0)),
  updated_at: Option.some(DateTime.unsafeMake(at(101))),
  fields: { method: "POST", route: "/v1/runs", error: "upstream_error" }
})

describe("sg traces: rendering", () => {
  it("show: the lifecycle, then runs as a tree (sub-agents under their parent), calls in order of start", () => {
    expect(Traces.renderDetail({ trace_id: id, lifecycle, record })).toBe([
      `trace ${id}`,
      "  lifecycle  ERRORED (created 2025-11-23T10:00:00.000Z, updated 2025-11-23T10:00:00.101Z)",
      "  fields     method=POST route=/v1/runs error=upstream_error",
      "  record     error, 100.0 ms, 2025-11-23T10:00:00.000Z to 2025-11-23T10:00:00.100Z",
      "  conversation c-1",
      "  error      UpstreamError: the model failed",
      "  └─ run assistant r-root  error  2 steps  40.0 ms  tokens 30 in / 9 out  " +
      "error: UpstreamError: the model failed",
      "     ├─ model demo  success  2.5 ms  tokens 10 in / 4 out",
      "     ├─ tool calculator  success  0.25 ms  {\"expression\":\"2+2\"} → 4",
      "     ├─ tool search  error  0.00 ms  rejected by circuit tool:search; error: CircuitOpenError",
      "     ├─ tool fan_out  success  50.0 ms  {\"count\":3} → [...]",
      "     ├─ run researcher r-child-a  success  1 step  40.0 ms  tokens 10 in / 5 out",
      "     │  └─ model demo  success  3.0 ms  tokens 10 in / 5 out",
      "     ├─ run researcher r-child-b  success  1 step  40.0 ms  tokens 10 in / 5 out",
      "     │  └─ model demo  success  3.0 ms  tokens 10 in / 5 out",
      "     ├─ run researcher r-child-gone  timeout  (left out of the record)  error: RunTimeout",
      "     └─ model demo  error  1.0 ms  tokens 0 in / 0 out  error: boom failed"
    ].join("\n"))
  })

  it("show: a trace whose record was not kept, or whose lifecycle hash expired", () => {
    const noRecord = Traces.renderDetail({ trace_id: id, lifecycle, record: null })
    expect(noRecord).toContain("lifecycle  ERRORED")
    expect(noRecord).toContain("record     none kept (successes are sampled: SG_SAMPLE_SUCCESS)")
    const noLifecycle = Traces.renderDetail({ trace_id: id, lifecycle: null, record })
    expect(noLifecycle).toContain("lifecycle  gone (its hash expired")
    expect(noLifecycle).toContain("└─ run assistant r-root")
  })

  it("list: a table, newest first as given, one line per record", () => {
    const summary = ExecutionRecord.summarize(record)
    const items = [summary, { ...summary, error: undefined, status: "success" as const }]
    const table = Traces.renderTable({ items, next_cursor: null })
    const lines = table.split("\n")
    expect(lines).toHaveLength(3)
    expect(lines[0]).toMatch(/^STARTED +TRACE ID +STATUS +DURATION +AGENTS +RUNS +MODEL +TOOLS +TOKENS IN\/OUT +ERROR$/)
    expect(lines[1]).toMatch(
      new RegExp(
        `^2025-11-23T10:00:00.000Z +${id} +error +100.0 ms +researcher,assistant +3 +4 +3 +50/19 +UpstreamError`
      )
    )
    expect(lines[2]).toMatch(/ success +100\.0 ms .* 50\/19$/)
  })

  it("list: a TENANT column when any record has a tenant (runs made with API keys), `-` for one without", () => {
    const summary = ExecutionRecord.summarize(record)
    const table = Traces.renderTable({
      items: [{ ...summary, tenant: "acme" }, summary],
      next_cursor: null
    })
    const lines = table.split("\n")
    expect(lines[0]).toMatch(/^STARTED +TRACE ID +TENANT +STATUS +DURATION /)
    expect(lines[1]).toMatch(new RegExp(`^2025-11-23T10:00:00.000Z +${id} +acme +error +100.0 ms `))
    expect(lines[2]).toMatch(new RegExp(`^2025-11-23T10:00:00.000Z +${id} +- +error +100.0 ms `))
  })

  it("durations read as ms or s", () => {
    expect([0.004, 0.5, 12.34, 999.9, 1520].map(Traces.formatMillis)).toEqual([
      "0.00 ms",
      "0.50 ms",
      "12.3 ms",
      "999.9 ms",
      "1.52 s"
    ])
  })
})

describe("sg traces without REDIS_URL", () => {
  it.live("list says the in-memory store has nothing; --json still prints an empty page", () =>
    Effect.gen(function*() {
      const table = yield* runSg("", ["traces", "list"])
      expect(Exit.isSuccess(table.exit)).toBe(true)
      expect(table.stdout).toBe(Traces.memoryEmpty)
      expect(table.stderr).toContain("REDIS_URL is not set: using the in-memory store")
      const json = yield* runSg("", ["traces", "list", "--json"])
      expect(JSON.parse(json.stdout)).toEqual({ items: [], next_cursor: null })
      expect(json.stderr).toContain(Traces.memoryEmpty)
    }))

  it.live.each([["--limit", "0"], ["--limit", "101"], ["--status", "maybe"]])("list refuses %s %s", ([flag, value]) =>
    Effect.gen(function*() {
      const ran = yield* runSg("", ["traces", "list", flag!, value!])
      expect(Exit.isFailure(ran.exit)).toBe(true)
      expect(ran.stdout).toBe("")
    }))

  it.live("list refuses a --tenant that is not a tenant's name, saying why (exit code 2)", () =>
    Effect.gen(function*() {
      const before = process.exitCode
      const ran = yield* runSg("", ["traces", "list", "--tenant", "no spaces"])
      const code = process.exitCode
      process.exitCode = before
      expect(code).toBe(2)
      expect(ran.stdout).toBe("")
      expect(ran.stderr).toContain("--tenant: tenant must be 1 to 64 letters")
    }))

  it.live("show refuses a malformed id before reading any store", () =>
    Effect.gen(function*() {
      const ran = yield* runSg("", ["traces", "show", "0190A000-0000-7000-8000-000000000001"])
      expect(Exit.isFailure(ran.exit)).toBe(true)
      expect(ran.stdout).toBe("")
      expect(ran.stderr).toBe(Traces.malformedId("0190A000-0000-7000-8000-000000000001"))
    }))
})
