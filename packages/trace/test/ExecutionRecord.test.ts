// absolute dates: schema and reduction checks of records that no store holds
import { describe, expect, it } from "@effect/vitest"
import { ExecutionRecord, ExecutionSpan, Redaction } from "@sg/trace"
import { Effect, Fiber, Option, Schema } from "effect"
import { type Limits, reduce, type RunIdentity, runKey } from "../src/internal/reduce.js"
import { clip, cut } from "../src/internal/truncate.js"
import { inTrace, spansOf, traceId } from "./utils/execRecording.js"

const limits: Limits = { truncate: 500, maxCallsPerRun: 1000, maxRecordBytes: 256 * 1024, redact: Redaction.defaults }

const build = (
  spans: Parameters<typeof reduce>[0]["spans"],
  overrides: Partial<Limits> = {},
  key?: (run: RunIdentity) => string
) =>
  Option.getOrThrow(reduce({ traceId, spans }, key)).build({ ...limits, ...overrides })

/** Three concurrent sub-agents of one agent, under one trace and one conversation, making 1, 2 and 3 model calls. */
const siblings = Effect.gen(function*() {
  const worker = (n: number) =>
    Effect.forEach(
      Array.from({ length: n }, (_, i) => i),
      () =>
        ExecutionSpan.usage({ input: 100 * n, output: 10 * n }).pipe(
          Effect.zipRight(Effect.yieldNow()),
          ExecutionSpan.inference("m")
        ),
      { discard: true }
    ).pipe(ExecutionSpan.agentRun({ agentId: "forge" }))
  yield* Effect.all([worker(1), worker(2), worker(3)], { concurrency: "unbounded" })
}).pipe(ExecutionSpan.agentRun({ agentId: "task", conversationId: "conv-1" }), inTrace(traceId))

describe("ExecutionRecord reduction", () => {
  it.effect("runs are keyed by (conversation_id, agent_id, run_id): without run_id, concurrent siblings merge", () =>
    Effect.gen(function*() {
      const spans = yield* spansOf(siblings)
      const forges = (record: ExecutionRecord.ExecutionRecord) =>
        record.runs.filter((r) => r.agent_id === "forge").map((r) => ({ steps: r.steps, tokens: r.tokens }))

      const keyed = build(spans)
      expect(forges(keyed).sort((a, b) => a.steps - b.steps)).toEqual([
        { steps: 1, tokens: { input: 100, output: 10 } },
        { steps: 2, tokens: { input: 400, output: 40 } },
        { steps: 3, tokens: { input: 900, output: 90 } }
      ])

      // The uploader bug: keyed by (conversation_id, agent_id) only, the three siblings become one corrupted run.
      const withoutRunId = (run: RunIdentity) => `${run.conversationId}\u0000${run.agentId}`
      const merged = build(spans, {}, withoutRunId)
      expect(forges(merged)).toEqual([{ steps: 6, tokens: { input: 1400, output: 140 } }])
      expect(runKey({ conversationId: "c", agentId: "a", runId: "1" }))
        .not.toBe(runKey({ conversationId: "c", agentId: "a", runId: "2" }))
    }))

  it.effect("each try of a model call is its own inference call, naming its provider and attempt", () =>
    Effect.gen(function*() {
      const tries = Effect.gen(function*() {
        yield* Effect.exit(Effect.fail("503 overloaded").pipe(
          ExecutionSpan.inference("gpt-4o-mini", { provider: "openai-compat", attempt: 1 })
        ))
        yield* ExecutionSpan.usage({ input: 7, output: 3 }).pipe(
          ExecutionSpan.inference("claude-haiku", { provider: "anthropic", attempt: 2 })
        )
        yield* ExecutionSpan.inference("demo")(Effect.void)
      }).pipe(ExecutionSpan.agentRun({ agentId: "assistant" }), inTrace(traceId))
      const record = build(yield* spansOf(tries))
      const calls = record.runs[0]!.inference_calls
      expect(calls.map((c) => [c.provider, c.model, c.attempt, c.status, c.tokens.input])).toEqual([
        ["openai-compat", "gpt-4o-mini", 1, "error", 0],
        ["anthropic", "claude-haiku", 2, "success", 7],
        [undefined, "demo", undefined, "success", 0]
      ])
      expect(Object.keys(calls[2]!)).not.toContain("provider")
      // Two model calls (steps): the second try of the first is not a step of its own.
      expect(record.runs[0]!.steps).toBe(2)
      expect(record.runs[0]!.tokens).toEqual({ input: 7, output: 3 })
      expect(Schema.decodeUnknownSync(ExecutionRecord.ExecutionRecord)(record)).toEqual(record)
    }))

  it.effect("a run keeps at most maxCallsPerRun calls, the first and the last, and says how many it dropped", () =>
    Effect.gen(function*() {
      const program = Effect.forEach(
        Array.from({ length: 1200 }, (_, i) => i),
        (i) =>
          i % 4 === 0
            ? ExecutionSpan.usage({ input: 1, output: 2 }).pipe(ExecutionSpan.inference("m", { callId: `c${i}` }))
            : Effect.void.pipe(ExecutionSpan.tool("t", { callId: `c${i}` })),
        { discard: true }
      ).pipe(ExecutionSpan.agentRun({ agentId: "busy" }), inTrace(traceId))
      const record = build(yield* spansOf(program))
      const run = record.runs[0]!
      const ids = [...run.tool_calls, ...run.inference_calls]
        .map((c) => Number(c.call_id.slice(1)))
        .sort((a, b) => a - b)
      expect(ids).toHaveLength(1000)
      expect(ids.slice(0, 500)).toEqual(Array.from({ length: 500 }, (_, i) => i))
      expect(ids.slice(500)).toEqual(Array.from({ length: 500 }, (_, i) => 700 + i))
      expect(run.dropped_calls).toBe(200)
      expect(run.steps).toBe(300)
      expect(run.tokens).toEqual({ input: 300, output: 600 })
      expect(record.dropped).toEqual({ calls: 200, runs: 0, events: 0, spans: 0, payloads: false })
    }))

  it.effect("a record stays under its size cap and says what it dropped", () =>
    Effect.gen(function*() {
      const program = Effect.forEach(
        Array.from({ length: 300 }, (_, i) => i),
        (i) =>
          Effect.succeed("y".repeat(800)).pipe(ExecutionSpan.tool("read", { callId: `c${i}`, input: "z".repeat(800) })),
        { discard: true }
      ).pipe(ExecutionSpan.agentRun({ agentId: "reader" }), inTrace(traceId))
      const spans = yield* spansOf(program)
      const full = build(spans, { maxRecordBytes: 10 * 1024 * 1024 })
      expect(full.dropped).toBeUndefined()
      expect(Buffer.byteLength(JSON.stringify(full))).toBeGreaterThan(256 * 1024)

      const capped = build(spans)
      expect(Buffer.byteLength(JSON.stringify(capped))).toBeLessThanOrEqual(256 * 1024)
      expect(capped.dropped!.calls).toBeGreaterThan(0)
      expect(capped.runs[0]!.dropped_calls).toBe(capped.dropped!.calls)
      expect(capped.runs[0]!.tool_calls[0]!.call_id).toBe("c0")
      expect(capped.runs[0]!.tool_calls.at(-1)!.call_id).toBe("c299")

      const tiny = build(spans, { maxRecordBytes: 8 * 1024 })
      expect(Buffer.byteLength(JSON.stringify(tiny))).toBeLessThanOrEqual(8 * 1024)
      expect(tiny.dropped).toMatchObject({ payloads: true })
      expect(tiny.runs[0]!.tool_calls.every((c) => c.input === null && c.output === null)).toBe(true)
    }))

  it.effect("whole sub-agent runs are dropped last, newest first, when nothing else fits", () =>
    Effect.gen(function*() {
      const program = Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i),
        (i) =>
          Effect.void.pipe(ExecutionSpan.agentRun({ agentId: `sub-${i}`, runId: `run-${String(i).padStart(2, "0")}` })),
        { discard: true }
      ).pipe(ExecutionSpan.agentRun({ agentId: "root", runId: "root-run" }), inTrace(traceId))
      const record = build(yield* spansOf(program), { maxRecordBytes: 4 * 1024 })
      expect(Buffer.byteLength(JSON.stringify(record))).toBeLessThanOrEqual(4 * 1024)
      expect(record.dropped!.runs).toBeGreaterThan(0)
      expect(record.runs[0]!.run_id).toBe("root-run")
      expect(record.runs.length + record.dropped!.runs).toBe(41)
      expect(record.runs.map((r) => r.run_id)).toEqual([
        "root-run",
        ...Array.from({ length: record.runs.length - 1 }, (_, i) => `run-${String(i).padStart(2, "0")}`)
      ])
    }))

  it.effect("a reduced record survives its JSON form, and summarizes", () =>
    Effect.gen(function*() {
      const record = build(yield* spansOf(siblings))
      const json = Schema.encodeSync(ExecutionRecord.ExecutionRecordJson)(record)
      expect(Schema.decodeUnknownSync(ExecutionRecord.ExecutionRecordJson)(json)).toEqual(record)
      expect(ExecutionRecord.summarize(record)).toMatchObject({
        trace_id: traceId,
        conversation_id: "conv-1",
        status: "success",
        agents: ["task", "forge"],
        runs: 4,
        tool_calls: 0,
        inference_calls: 6,
        tokens: { input: 1400, output: 140 }
      })
    }))

  it.effect("a request whose client went away: error cancelled, its interrupted run too; its call interrupted", () =>
    Effect.gen(function*() {
      const request = (body: Effect.Effect<void>) =>
        Effect.useSpan("http.server POST", (span) =>
          Effect.onInterrupt(Effect.withParentSpan(body, span), () => Effect.sync(() => ExecutionSpan.cancelled(span))))
          .pipe(inTrace(traceId))
      const stalled = Effect.gen(function*() {
        yield* ExecutionSpan.usage({ input: 7, output: 3 }).pipe(ExecutionSpan.inference("m"))
        yield* Effect.never.pipe(ExecutionSpan.tool("slow", { callId: "c-1", input: { n: 1 } }))
      }).pipe(ExecutionSpan.agentRun({ agentId: "agent" }))
      const interrupted = (effect: Effect.Effect<void>) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(effect)
          yield* Effect.yieldNow()
          yield* Effect.yieldNow()
          yield* Fiber.interrupt(fiber)
        })

      const record = build(yield* spansOf(interrupted(request(stalled))))
      expect(record).toMatchObject({ status: "error", error: "cancelled" })
      expect(record.runs).toHaveLength(1)
      expect(record.runs[0]).toMatchObject({ status: "error", error: "cancelled", interrupted: true, steps: 1 })
      expect(record.runs[0]!.inference_calls[0]).toMatchObject({ status: "success", tokens: { input: 7, output: 3 } })
      expect(record.runs[0]!.tool_calls[0]).toMatchObject({
        tool: "slow",
        status: "error",
        error: "interrupted",
        interrupted: true
      })

      // The run a root of its own beside the cancelled request (its parent the caller's span): cancelled still.
      const beside = Effect.useSpan("http.server POST", (span) =>
        Effect.onInterrupt(stalled, () => Effect.sync(() => ExecutionSpan.cancelled(span)))).pipe(inTrace(traceId))
      expect(build(yield* spansOf(interrupted(beside)))).toMatchObject({ status: "error", error: "cancelled" })

      // Cancelled before any agent ran: still a record, with no run.
      const early = build(yield* spansOf(interrupted(request(Effect.never))))
      expect(early).toMatchObject({ status: "error", error: "cancelled", runs: [] })
      // Not cancelled and no agent ran: not a record.
      expect(Option.isNone(reduce({ traceId, spans: yield* spansOf(request(Effect.void)) }))).toBe(true)
    }))

  it("refuses values that are not records", () => {
    const decode = Schema.decodeUnknownEither(ExecutionRecord.ExecutionRecordJson)
    expect(decode("not json")._tag).toBe("Left")
    expect(decode(JSON.stringify({ trace_id: traceId, status: "fine" }))._tag).toBe("Left")
    expect(decode(JSON.stringify({
      trace_id: traceId,
      status: "success",
      started_at: "yesterday",
      ended_at: "2025-11-23T03:53:20.000Z",
      duration_ms: 1,
      runs: []
    }))._tag).toBe("Left")
  })
})

describe("truncation", () => {
  it("cuts to the limit with a marker saying how much was cut", () => {
    expect(cut("a".repeat(2000), 500)).toBe(`${"a".repeat(500)}…[1500 more chars cut]`)
    expect(cut("short", 500)).toBe("short")
    expect(cut(`${"a".repeat(499)}😀b`, 500)).toBe(`${"a".repeat(499)}…[3 more chars cut]`)
  })

  it("turns values into text: JSON for objects, cycles and bigints handled", () => {
    const cyclic: Record<string, unknown> = { n: 1n }
    cyclic["self"] = cyclic
    expect(clip(cyclic, 500, Redaction.none)).toBe("{\"n\":\"1\",\"self\":\"[Circular]\"}")
    expect(clip("x".repeat(10), 4, Redaction.none)).toBe("xxxx…[6 more chars cut]")
  })

  it("redacts before cutting, so a secret at the cut is never half-kept", () => {
    const secret = "sk-abcdefghijklmnopqrstuvwxyz0123"
    const text = `${"a".repeat(480)} ${secret} ${"b".repeat(5000)}`
    const out = clip(text, 500, Redaction.defaults)
    expect(out).toBe(`${"a".repeat(480)} [REDACTED] ${"b".repeat(8)}…[4992 more chars cut]`)
  })
})

describe("Redaction", () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["Authorization: Bearer abc.def-123", "Authorization: [REDACTED]"],
    ["curl -H 'x: Bearer eyJhbGciOi'", "curl -H 'x: Bearer [REDACTED]'"],
    [
      "{\"api_key\":\"abc\",\"max_tokens\":100,\"input_tokens\":5}",
      "{\"api_key\":\"[REDACTED]\",\"max_tokens\":100,\"input_tokens\":5}"
    ],
    ["OPENAI_API_KEY=sk-live-1 user=bob", "OPENAI_API_KEY=[REDACTED] user=bob"],
    ["used sk-proj-abcdefghijklmnopqrstuvwxyz", "used [REDACTED]"],
    ["aws AKIAIOSFODNN7EXAMPLE here", "aws [REDACTED] here"],
    ["{'password': 'hunter2', 'secret_value': 'x'}", "{'password': '[REDACTED]', 'secret_value': '[REDACTED]'}"],
    ["redis://default:s3cret@cache:6379/0", "redis://default:[REDACTED]@cache:6379/0"],
    ["access_token=abc&refresh_token=def", "access_token=[REDACTED]&refresh_token=[REDACTED]"],
    ["the token limit was reached after 4096 tokens", "the token limit was reached after 4096 tokens"],
    ["a plain sentence about keys and secrets", "a plain sentence about keys and secrets"]
  ]
  for (const [input, output] of cases) {
    it(`masks ${JSON.stringify(input)}`, () => expect(Redaction.defaults(input)).toBe(output))
  }

  it("composes with a hook of one's own, which runs on every stored text", () =>
    Effect.runSync(Effect.gen(function*() {
      const hook = Redaction.compose(Redaction.defaults, (text) => text.replaceAll(/\b\d{3}-\d{2}-\d{4}\b/g, "[SSN]"))
      const program = Effect.fail("customer 123-45-6789 has key sk-abcdefghijklmnopqrstu").pipe(
        ExecutionSpan.tool("crm", { callId: "c", input: "ssn 123-45-6789" }),
        ExecutionSpan.agentRun({ agentId: "root" }),
        inTrace(traceId)
      )
      const record = build(yield* spansOf(program), { redact: hook })
      const call = record.runs[0]!.tool_calls[0]!
      expect(call.input).toBe("ssn [SSN]")
      expect(call.error).toBe("customer [SSN] has key [REDACTED]")
      expect(record.error).toBe("customer [SSN] has key [REDACTED]")
    })))
})
