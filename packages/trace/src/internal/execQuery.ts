/**
 * What both execution stores share: validating a listing's options, the opaque cursor, and the record's JSON form.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { type ExecutionRecord, ExecutionRecordJson, Status, Tenant } from "../ExecutionRecord.js"
import type { ListOptions } from "../ExecutionStore.js"
import { ExecutionRecordCorrupt, InvalidExecutionQuery } from "../ExecutionStoreError.js"

/** A listing position: the (score, id) of the last entry served; the next page holds strictly older entries. */
export interface Cursor {
  readonly score: number
  readonly id: string
}

/** A validated listing. */
export interface Query {
  readonly status: Status | undefined
  readonly agent: string | undefined
  readonly tenant: string | undefined
  readonly limit: number
  readonly cursor: Cursor | undefined
}

/** Records per page when no limit is given, and the most a page may hold. */
export const defaultLimit = 20
export const maxLimit = 100

/** The opaque form of a cursor: base64url of `<score>:<id>`. */
export const encodeCursor = (cursor: Cursor): string =>
  Buffer.from(`${cursor.score}:${cursor.id}`).toString("base64url")

const decodeCursor = (text: string): Cursor | undefined => {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return undefined
  const match = /^(-?\d+):(\S+)$/.exec(Buffer.from(text, "base64url").toString("utf8"))
  if (match === null) return undefined
  const score = Number(match[1])
  return Number.isSafeInteger(score) ? { score, id: match[2]! } : undefined
}

const isStatus = Schema.is(Status)
const isTenant = Schema.is(Tenant)

const invalid = (field: string, message: string) => Effect.fail(new InvalidExecutionQuery({ field, message }))

/** Checks a listing's options; a bad one is an `InvalidExecutionQuery` naming it. */
export const validate = (options: ListOptions | undefined): Effect.Effect<Query, InvalidExecutionQuery> =>
  Effect.suspend(() => {
    const limit = options?.limit ?? defaultLimit
    if (!Number.isInteger(limit) || limit < 1 || limit > maxLimit) {
      return invalid("limit", `limit must be an integer from 1 to ${maxLimit}`)
    }
    const status = options?.status
    if (status !== undefined && !isStatus(status)) {
      return invalid("status", "status must be success, error or timeout")
    }
    const agent = options?.agent
    if (agent !== undefined && (agent === "" || agent.length > 200)) {
      return invalid("agent", "agent must be 1 to 200 characters")
    }
    const tenant = options?.tenant
    if (tenant !== undefined && !isTenant(tenant)) {
      return invalid("tenant", "tenant must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    }
    let cursor: Cursor | undefined
    if (options?.cursor !== undefined) {
      cursor = decodeCursor(options.cursor)
      if (cursor === undefined) {
        return invalid("cursor", "cursor is not one a listing returned")
      }
    }
    return Effect.succeed({ status, agent, tenant, limit, cursor })
  })

/**
 * Which index a listing reads (the most selective its filters allow: agent, then tenant, then status, else all), and
 * whether a record it finds there passes the filters that index does not apply.
 */
export const planOf = (query: Query): {
  readonly index: "agent" | "tenant" | "status" | "all"
  readonly passes: (record: ExecutionRecord) => boolean
} => {
  const index = query.agent !== undefined
    ? "agent"
    : query.tenant !== undefined
    ? "tenant"
    : query.status !== undefined
    ? "status"
    : "all"
  return {
    index,
    passes: (record) =>
      (index === "status" || query.status === undefined || record.status === query.status) &&
      (index === "tenant" || query.tenant === undefined || record.tenant === query.tenant)
  }
}

/** Logs a save refused because the trace's record belongs to another tenant (`""`: none). */
export const logOtherTenant = (id: string, recordTenant: string, saveTenant: string | undefined) =>
  Effect.logWarning(
    "execution record not merged: the trace's record belongs to another tenant, and a record holds one tenant's runs"
  ).pipe(
    Effect.annotateLogs({
      trace_id: id,
      record_tenant: recordTenant === "" ? "(none)" : recordTenant,
      save_tenant: saveTenant ?? "(none)"
    })
  )

/** Whether an entry comes strictly after the cursor in newest-first order. */
export const isAfter = (cursor: Cursor | undefined, score: number, id: string): boolean =>
  cursor === undefined || score < cursor.score || (score === cursor.score && id < cursor.id)

/** Newest first; among equal scores, greater ids first (what Redis' ZREVRANGEBYSCORE gives). */
export const newestFirst = (a: Cursor, b: Cursor): number =>
  b.score - a.score || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0)

const format = ParseResult.TreeFormatter.formatErrorSync
const encodeJson = Schema.encodeEither(ExecutionRecordJson)
const decodeJson = Schema.decodeUnknownEither(ExecutionRecordJson)

/** A record as stored; a record that does not satisfy the schema is `ExecutionRecordCorrupt`. */
export const toJson = (record: ExecutionRecord): Effect.Effect<string, ExecutionRecordCorrupt> =>
  Either.match(encodeJson(record), {
    onLeft: (error) =>
      Effect.fail(
        new ExecutionRecordCorrupt({
          trace_id: String(record.trace_id),
          message: `execution record of ${record.trace_id} is not valid: ${format(error)}`,
          cause: error
        })
      ),
    onRight: Effect.succeed
  })

/** A stored value read back; one that is not a record is `ExecutionRecordCorrupt` naming the trace. */
export const fromJson = (traceId: string, raw: string): Either.Either<ExecutionRecord, ExecutionRecordCorrupt> =>
  Either.mapLeft(decodeJson(raw), (error) =>
    new ExecutionRecordCorrupt({
      trace_id: traceId,
      message: `stored execution record of ${traceId} is unreadable: ${format(error)}`,
      cause: error
    }))
