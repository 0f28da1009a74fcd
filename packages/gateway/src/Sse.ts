/**
 * Streaming a run as server-sent events, in whatever wire format the route speaks (`POST /v1/runs`' sg events, or
 * Chat Completions chunks).
 *
 * The response waits for the run's first event that carries output (text, a tool call, or its end): a run that fails
 * before it answers with its HTTP status (a 502, a 503 with `Retry-After`, a 422...), never with a 200 whose stream
 * then says it failed. Once the response has started, a failure ends the stream with the route's failure frames, and
 * the ingress records the request as errored (`Ingress.StreamOutcome`). The run is forked into the request's scope:
 * a client that goes away interrupts the stream, the scope closes, and the run is interrupted with it.
 *
 * Events reach the stream through a bounded queue: a client that reads slowly slows the run, nothing is dropped.
 */
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as ServerResponse from "@effect/platform/HttpServerResponse"
import type { AgentRuntime, RunEvent } from "@sg/agent-runtime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Ingress from "./Ingress.js"

/** One server-sent event: `event:` when named, `data:` lines (one per line of `data`). */
export const frame = (event: string | undefined, data: string): string =>
  `${event === undefined ? "" : `event: ${event}\n`}data: ${data.replace(/\r?\n/g, "\ndata: ")}\n\n`

/** The headers of every event stream. */
export const headers: Readonly<Record<string, string>> = {
  "cache-control": "no-cache",
  "x-accel-buffering": "no"
}

/** The events that start a response: each carries output, or ends the run. */
const starts = (event: RunEvent.RunEvent): boolean =>
  event.type === "text.delta" || event.type === "tool.started" || event.type === "tool.finished" ||
  event.type === "run.finished"

/** How a route writes a run as events. */
export interface Plan<E> {
  /** Frames for one event of the run (none for events the route does not show). */
  readonly encode: (event: RunEvent.RunEvent) => ReadonlyArray<string>
  /** Frames for a failure after the response started, and the error code the ingress records. */
  readonly failed: (error: E) => { readonly frames: ReadonlyArray<string>; readonly code: string }
  /** Frames after the run finished (`data: [DONE]`). */
  readonly end?: ReadonlyArray<string> | undefined
  /** Headers of the response, once it starts (the providers the run used so far, say). */
  readonly headers?: (() => Readonly<Record<string, string>>) | undefined
}

/** Items of the queue between the run and the response. */
type Item<E> =
  | { readonly _tag: "event"; readonly event: RunEvent.RunEvent }
  | { readonly _tag: "exit"; readonly exit: Exit.Exit<AgentRuntime.RunResult, E> }

const encoder = new TextEncoder()

/** The frames of a defect after the response started (the log has the cause). */
const internalError = frame("run.failed", JSON.stringify({ error: "internal_error", message: "internal error" }))

/**
 * Runs `run` (given a listener for its events) and answers with its event stream, or fails with the run's error if
 * it fails before its first output. Needs the request's scope (every route handler has it).
 */
export const respond = <E>(
  run: (listener: RunEvent.Listener) => Effect.Effect<AgentRuntime.RunResult, E>,
  plan: Plan<E>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, Scope.Scope> =>
  Effect.gen(function*() {
    const outcome = yield* Effect.serviceOption(Ingress.StreamOutcome)
    const queue = yield* Queue.bounded<Item<E>>(64)
    const listener: RunEvent.Listener = (event) => Queue.offer(queue, { _tag: "event", event })
    yield* run(listener).pipe(
      Effect.tapDefect((cause) => Effect.logError("a streamed run failed with a defect", cause)),
      Effect.exit,
      Effect.flatMap((exit) => Queue.offer(queue, { _tag: "exit", exit })),
      Effect.forkScoped
    )
    const held: Array<Item<E>> = []
    for (;;) {
      const item = yield* Queue.take(queue)
      if (item._tag === "exit") {
        if (Exit.isFailure(item.exit)) return yield* Effect.failCause(item.exit.cause)
        held.push(item)
        break
      }
      held.push(item)
      if (starts(item.event)) break
    }
    const finished = held.some((item) => item._tag === "exit")
    const rest: Stream.Stream<Item<E>> = finished
      ? Stream.empty
      : Stream.fromQueue(queue).pipe(Stream.takeUntil((item) => item._tag === "exit"))
    const framesOf = (item: Item<E>): ReadonlyArray<string> => {
      if (item._tag === "event") return plan.encode(item.event)
      const exit = item.exit
      if (Exit.isSuccess(exit)) return plan.end ?? []
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure)) {
        const failed = plan.failed(failure.value)
        if (Option.isSome(outcome)) outcome.value.fail(failed.code)
        return failed.frames
      }
      if (Cause.isInterruptedOnly(exit.cause)) {
        if (Option.isSome(outcome)) outcome.value.fail("interrupted")
        return []
      }
      if (Option.isSome(outcome)) outcome.value.fail("internal_error")
      return [internalError]
    }
    const body = Stream.concat(Stream.fromIterable(held), rest).pipe(
      Stream.mapConcat(framesOf),
      Stream.map((text) => encoder.encode(text))
    )
    return ServerResponse.stream(body, {
      contentType: "text/event-stream; charset=utf-8",
      headers: { ...headers, ...plan.headers?.() }
    })
  })
