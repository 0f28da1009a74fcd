/**
 * Turns schema decoding issues into a `BadRequest` whose message starts with the field at fault.
 */
import * as ParseResult from "effect/ParseResult"
import { BadRequest } from "../ApiError.js"

/** One issue as `ParseResult.ArrayFormatter` (and `HttpApiDecodeError.issues`) gives it. */
export interface Issue {
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
}

const fieldOf = (path: ReadonlyArray<PropertyKey>, whole: string): string =>
  path.length === 0 ? whole : path.map((key) => typeof key === "symbol" ? key.toString() : String(key)).join(".")

/** `input: must not be empty` rather than `input: input must not be empty`. */
const withoutField = (message: string, field: string): string =>
  message.startsWith(`${field} `) ? message.slice(field.length + 1) : message

/** A `BadRequest` for the first issue; `whole` names what an issue with an empty path is about (`body`, `query`). */
export const badRequest = (issues: ReadonlyArray<Issue>, whole: string): BadRequest => {
  const first = issues[0]
  if (first === undefined) return new BadRequest({ field: whole, message: `${whole}: invalid` })
  const field = fieldOf(first.path, whole)
  return new BadRequest({ field, message: `${field}: ${withoutField(first.message, field)}` })
}

/** A `BadRequest` for a decoding failure. */
export const fromParseError = (error: ParseResult.ParseError, whole: string): BadRequest =>
  badRequest(ParseResult.ArrayFormatter.formatErrorSync(error), whole)
