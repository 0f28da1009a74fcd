/**
 * `sg traces list` and `sg traces show <id>`: the execution records `sg serve` keeps, read from the store `REDIS_URL`
 * names, as a table or a tree in the terminal, or as the JSON `/api/traces` answers. Logs go to stderr.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import { GatewayApi } from "@sg/gateway"
import { ExecutionRecord, ExecutionStore, TraceId, TraceStore, type TraceStoreFailure } from "@sg/trace"
import { Console, DateTime, Effect, Option, Schema } from "effect"
import * as Environment from "../Environment.js"

/** A page of summaries, as `GET /api/traces` answers. */
export type Page = typeof GatewayApi.TracePage.Type

/** One trace, as `GET /api/traces/:trace_id` answers. */
export type Detail = typeof GatewayApi.TraceDetail.Type

/** What a verb says when the memory store (no `REDIS_URL`) has nothing to show. */
export const memoryEmpty = "REDIS_URL is not set: this command reads an in-memory store of its own, which is empty. " +
  "Set REDIS_URL to the Redis `sg serve` writes to."

/** Prints `message` on stderr and makes the process exit with `code` once the verb returns. */
const refuse = (message: string, code: number) =>
  Effect.zipRight(Console.error(message), Effect.sync(() => void (process.exitCode = code)))

const storeFailed = (error: TraceStoreFailure) => refuse(`cannot read the trace store: ${error.message}`, 1)

/** Milliseconds, readably: `0.42 ms`, `12.3 ms`, `1.52 s`. */
export const formatMillis = (ms: number): string =>
  ms < 1 ? `${ms.toFixed(2)} ms` : ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`

/** One line of at most `max` characters (whitespace folded), `…` where it was cut. */
const oneLine = (text: string, max: number): string => {
  const flat = text.replace(/\s+/g, " ").trim()
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat
}

const tokens = (t: ExecutionRecord.Tokens): string => `tokens ${t.input} in / ${t.output} out`

/** Rows as columns padded to their widest cell (the last column is not padded). */
const columns = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)))
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  "))
    .map((line) => line.trimEnd()).join("\n")
}

/** A page of summaries as a table, newest first; a TENANT column when any record has a tenant (API keys). */
export const renderTable = (page: Page): string => {
  const tenants = page.items.some((s) => s.tenant !== undefined)
  const tenantOf = (s: Page["items"][number]) => (tenants ? [s.tenant ?? "-"] : [])
  return columns([
    [
      "STARTED",
      "TRACE ID",
      ...(tenants ? ["TENANT"] : []),
      "STATUS",
      "DURATION",
      "AGENTS",
      "RUNS",
      "MODEL",
      "TOOLS",
      "TOKENS IN/OUT",
      "ERROR"
    ],
    ...page.items.map((s) => [
      s.started_at,
      s.trace_id,
      ...tenantOf(s),
      s.status,
      formatMillis(s.duration_ms),
      s.agents.length === 0 ? "-" : s.agents.join(","),
      String(s.runs),
      String(s.inference_calls),
      String(s.tool_calls),
      `${s.tokens.input}/${s.tokens.output}`,
      s.error === undefined ? "" : oneLine(s.error, 60)
    ])
  ])
}

interface Node {
  readonly at: number
  readonly line: string
  readonly children: ReadonlyArray<Node>
}

const millisOf = (iso: string): number => DateTime.unsafeMake(iso).epochMillis

interface Outcome {
  readonly status: string
  readonly error?: string | undefined
  readonly circuit?: string | undefined
  readonly interrupted?: true | undefined
}

/** What went wrong, for the end of a line: the circuit that rejected the call, an interruption, the error. */
const trouble = (o: Outcome): string => {
  const parts: Array<string> = []
  if (o.circuit !== undefined) parts.push(`rejected by circuit ${o.circuit}`)
  if (o.interrupted === true) parts.push("interrupted")
  else if (o.error !== undefined) parts.push(`error: ${oneLine(o.error, 160)}`)
  return parts.length === 0 ? "" : `  ${parts.join("; ")}`
}

const inferenceNode = (call: ExecutionRecord.InferenceCall): Node => ({
  at: millisOf(call.started_at),
  line: `model ${call.model ?? "?"}  ${call.status}  ${formatMillis(call.duration_ms)}  ${tokens(call.tokens)}` +
    trouble(call),
  children: []
})

const toolNode = (call: ExecutionRecord.ToolCall): Node => {
  const input = call.input === null ? "" : `  ${oneLine(call.input, 60)}`
  const output = call.input === null || call.output === null ? "" : ` → ${oneLine(call.output, 60)}`
  return {
    at: millisOf(call.started_at),
    line: `tool ${call.tool}  ${call.status}  ${formatMillis(call.duration_ms)}${input}${output}${trouble(call)}`,
    children: []
  }
}

const runNode = (
  run: ExecutionRecord.Run,
  childrenOf: ReadonlyMap<string, ReadonlyArray<ExecutionRecord.Run>>,
  conversation: string | undefined
): Node => {
  const subRuns = childrenOf.get(run.run_id) ?? []
  const present = new Set(subRuns.map((r) => r.run_id))
  const children: Array<Node> = [
    ...run.inference_calls.map(inferenceNode),
    ...run.tool_calls.map(toolNode),
    ...subRuns.map((child) => runNode(child, childrenOf, conversation)),
    // Sub-agent runs left out of the record (size cap) still show through the result their parent received.
    ...run.events.filter((e) => !present.has(e.child_run_id)).map((e): Node => ({
      at: millisOf(e.at),
      line: `run ${e.agent_id} ${e.child_run_id}  ${e.status}  (left out of the record)${trouble(e)}`,
      children: []
    }))
  ].sort((a, b) => a.at - b.at)
  const notes = [
    run.conversation_id === undefined || run.conversation_id === conversation
      ? ""
      : `  conversation ${run.conversation_id}`,
    run.dropped_calls === undefined ? "" : `  (${run.dropped_calls} calls left out)`
  ].join("")
  return {
    at: millisOf(run.started_at),
    line: `run ${run.agent_id} ${run.run_id}  ${run.status}  ${run.steps} step${run.steps === 1 ? "" : "s"}  ` +
      `${formatMillis(run.duration_ms)}  ${tokens(run.tokens)}${notes}${trouble(run)}`,
    children
  }
}

const drawTree = (nodes: ReadonlyArray<Node>, indent: string, out: Array<string>): void => {
  nodes.forEach((node, i) => {
    const last = i === nodes.length - 1
    out.push(`${indent}${last ? "└─ " : "├─ "}${node.line}`)
    drawTree(node.children, `${indent}${last ? "   " : "│  "}`, out)
  })
}

/** The runs of a record as a forest: sub-agent runs under the run that spawned them, calls in order of start. */
export const runTree = (record: ExecutionRecord.ExecutionRecord): Array<string> => {
  const ids = new Set(record.runs.map((r) => r.run_id))
  const childrenOf = new Map<string, Array<ExecutionRecord.Run>>()
  const roots: Array<ExecutionRecord.Run> = []
  for (const run of record.runs) {
    if (run.parent_run_id !== undefined && ids.has(run.parent_run_id)) {
      const siblings = childrenOf.get(run.parent_run_id) ?? []
      siblings.push(run)
      childrenOf.set(run.parent_run_id, siblings)
    } else roots.push(run)
  }
  const out: Array<string> = []
  drawTree(roots.map((run) => runNode(run, childrenOf, record.conversation_id)).sort((a, b) => a.at - b.at), "", out)
  return out
}

const iso = (dateTime: DateTime.Utc): string => DateTime.formatIso(dateTime)

/** One trace in the terminal: its lifecycle state and fields, then the tree of its runs and calls. */
export const renderDetail = (detail: Detail): string => {
  const out: Array<string> = [`trace ${detail.trace_id}`]
  const lifecycle = detail.lifecycle
  if (lifecycle === null) out.push("  lifecycle  gone (its hash expired, or another store holds it)")
  else {
    const updated = Option.match(lifecycle.updated_at, { onNone: () => "", onSome: (at) => `, updated ${iso(at)}` })
    out.push(`  lifecycle  ${lifecycle.state} (created ${iso(lifecycle.created_at)}${updated})`)
    const fields = Object.entries(lifecycle.fields)
    if (fields.length > 0) out.push(`  fields     ${fields.map(([k, v]) => `${k}=${oneLine(v, 80)}`).join(" ")}`)
  }
  const record = detail.record
  if (record === null) {
    out.push("  record     none kept (successes are sampled: SG_SAMPLE_SUCCESS), not written yet, or expired")
    return out.join("\n")
  }
  const span = `${record.started_at} to ${record.ended_at}`
  out.push(`  record     ${record.status}, ${formatMillis(record.duration_ms)}, ${span}`)
  if (record.conversation_id !== undefined) out.push(`  conversation ${record.conversation_id}`)
  if (record.error !== undefined) out.push(`  error      ${oneLine(record.error, 200)}`)
  if (record.dropped !== undefined) {
    const d = record.dropped
    out.push(`  left out   ${d.calls} calls, ${d.runs} runs, ${d.events} events, ${d.spans} spans` +
      (d.payloads ? ", call inputs and outputs" : ""))
  }
  out.push(...runTree(record).map((line) => `  ${line}`))
  return out.join("\n")
}

const json = Options.boolean("json").pipe(Options.withDescription("Print JSON, as the HTTP API answers"))

const status = Options.choice("status", ExecutionRecord.Status.literals).pipe(
  Options.optional,
  Options.withDescription("Only records with this status")
)

const agent = Options.text("agent").pipe(Options.optional, Options.withDescription("Only records where this agent ran"))

const tenant = Options.text("tenant").pipe(
  Options.optional,
  Options.withDescription("Only records of this tenant (the tenant of the API key their run came with)")
)

const limit = Options.integer("limit").pipe(
  Options.filterMap((n) => (n >= 1 && n <= 100 ? Option.some(n) : Option.none()), "--limit must be from 1 to 100"),
  Options.withDefault(20),
  Options.withDescription("How many records (1 to 100; default 20)")
)

const cursor = Options.text("cursor").pipe(
  Options.optional,
  Options.withDescription("The next_cursor of the previous page, for the page after it")
)

const encodePage = Schema.encode(Schema.parseJson(GatewayApi.TracePage))
const encodeDetail = Schema.encode(Schema.parseJson(GatewayApi.TraceDetail))

interface ListOptions {
  readonly status: Option.Option<ExecutionRecord.Status>
  readonly agent: Option.Option<string>
  readonly tenant: Option.Option<string>
  readonly limit: number
  readonly cursor: Option.Option<string>
  readonly json: boolean
}

/** Reads one page and prints it. */
const listTraces = (options: ListOptions) =>
  Effect.gen(function*() {
    const selected = yield* Environment.backend
    const store = yield* ExecutionStore.ExecutionStore
    const page = yield* store.list({
      status: Option.getOrUndefined(options.status),
      agent: Option.getOrUndefined(options.agent),
      tenant: Option.getOrUndefined(options.tenant),
      limit: options.limit,
      cursor: Option.getOrUndefined(options.cursor)
    }).pipe(
      Effect.map(Option.some),
      Effect.catchTags({
        InvalidExecutionQuery: (error) => Effect.as(refuse(`--${error.field}: ${error.message}`, 2), Option.none()),
        TraceStoreUnavailable: (error) => Effect.as(storeFailed(error), Option.none()),
        TraceStoreCommandError: (error) => Effect.as(storeFailed(error), Option.none())
      })
    )
    if (Option.isNone(page)) return
    if (options.json) yield* Console.log(yield* encodePage(page.value))
    if (page.value.items.length === 0) {
      const empty = selected.kind === "memory" ? memoryEmpty : "no execution records match"
      return yield* (options.json ? Console.error(empty) : Console.log(empty))
    }
    if (options.json) return
    yield* Console.log(renderTable(page.value))
    if (page.value.next_cursor !== null) {
      yield* Console.log(`more: sg traces list --cursor ${page.value.next_cursor} (with the same filters)`)
    }
  }).pipe(Effect.provide(Environment.storeLayer))

/** `sg traces list`. */
export const list = Command.make(
  "list",
  { status, agent, tenant, limit, cursor, json },
  (options) => Effect.zipRight(Environment.logToStderr, listTraces(options))
).pipe(
  Command.withDescription(
    "List execution records, newest first: a table, or with --json the page GET /api/traces answers. Reads the " +
      "store REDIS_URL names."
  )
)

const id = Args.text({ name: "trace-id" }).pipe(Args.withDescription("The trace id (a UUID, as x-trace-id gives it)"))

/** What `sg traces show` says about an id that is not one. */
export const malformedId = (input: string): string =>
  `not a trace id: ${JSON.stringify(input)} (expected a lowercase UUID like 0190a000-0000-7000-8000-000000000001)`

/** Reads one trace and prints it; an unknown one is a message on stderr and exit code 1. */
const showTrace = (traceId: TraceId.TraceId, asJson: boolean) =>
  Effect.gen(function*() {
    const selected = yield* Environment.backend
    const store = yield* TraceStore.TraceStore
    const executions = yield* ExecutionStore.ExecutionStore
    const read = Effect.all([
      store.get(traceId).pipe(Effect.catchTag("InvalidTraceRecord", (error) =>
        Effect.as(Console.error(`the lifecycle record is unreadable: ${error.message}`), Option.none()))),
      executions.get(traceId).pipe(Effect.catchTag("ExecutionRecordCorrupt", (error) =>
        Effect.as(Console.error(`the execution record is unreadable: ${error.message}`), Option.none())))
    ], { concurrency: 2 })
    const found = yield* read.pipe(
      Effect.map(Option.some),
      Effect.catchTags({
        TraceStoreUnavailable: (error) => Effect.as(storeFailed(error), Option.none()),
        TraceStoreCommandError: (error) => Effect.as(storeFailed(error), Option.none())
      })
    )
    if (Option.isNone(found)) return
    const [lifecycle, record] = found.value
    if (Option.isNone(lifecycle) && Option.isNone(record)) {
      return yield* refuse(
        selected.kind === "memory"
          ? `no trace ${traceId}: ${memoryEmpty}`
          : `no trace ${traceId} in ${selected.target}: it is unknown, was not sampled, or has expired`,
        1
      )
    }
    const detail: Detail = {
      trace_id: traceId,
      lifecycle: Option.getOrNull(lifecycle),
      record: Option.getOrNull(record)
    }
    yield* Console.log(asJson ? yield* encodeDetail(detail) : renderDetail(detail))
  }).pipe(Effect.provide(Environment.storeLayer))

/** `sg traces show`. */
export const show = Command.make("show", { id, json }, (options) =>
  Effect.gen(function*() {
    yield* Environment.logToStderr
    const traceId = TraceId.parse(options.id.trim())
    if (Option.isNone(traceId)) {
      yield* Console.error(malformedId(options.id))
      return yield* Effect.fail(ValidationError.invalidArgument(HelpDoc.p(malformedId(options.id))))
    }
    yield* showTrace(traceId.value, options.json)
  })).pipe(
    Command.withDescription(
      "Show one trace: its lifecycle state and a tree of its runs (sub-agents under their parent) with their model " +
        "and tool calls (status, duration, tokens, errors, circuit rejections); --json: what GET /api/traces/:id " +
        "answers. Reads the store REDIS_URL names."
    )
  )

/** `sg traces`. */
export const traces = Command.make("traces").pipe(
  Command.withDescription("Read execution records: list, show <trace-id>"),
  Command.withSubcommands([list, show])
)
