/**
 * Which execution records are kept: every `error` and `timeout`, and successes with probability
 * `SG_SAMPLE_SUCCESS` (0.1), decided from the trace id alone, so every replica and every service (a Python worker
 * too) decides the same for the same id.
 *
 * The decision: take the id's last 8 bytes as an unsigned 64-bit integer `x` and compute SplitMix64's output for it,
 * `z = x + 0x9e3779b97f4a7c15; z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9; z = (z ^ z >> 27) * 0x94d049bb133111eb;
 * z = z ^ z >> 31` (all mod 2^64); the roll is `(z >> 11) / 2^53`, in [0, 1); a success is kept when roll < rate.
 * Hashing matters: ids minted in one millisecond differ only by +1 in their low bits, so raw bits would not do.
 */
import * as Config from "effect/Config"
import type { Status } from "./ExecutionRecord.js"
import type { TraceId } from "./TraceId.js"

const mask64 = (1n << 64n) - 1n

/** The id's roll, uniform in [0, 1): SplitMix64 over its last 8 bytes (see the module's doc for the exact steps). */
export const roll = (traceId: TraceId): number => {
  let z = (BigInt(`0x${traceId.slice(19, 23)}${traceId.slice(24)}`) + 0x9e3779b97f4a7c15n) & mask64
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask64
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask64
  z = z ^ (z >> 31n)
  return Number(z >> 11n) / 2 ** 53
}

/** Whether a record is kept: always when it is not a success; a success when its id's roll is below `rate`. */
export const keep = (traceId: TraceId, status: Status, rate: number): boolean =>
  status !== "success" || roll(traceId) < rate

/** `SG_SAMPLE_SUCCESS`: the share of successful records kept, from 0 (none) to 1 (all); 0.1 by default. */
export const config: Config.Config<number> = Config.number("SG_SAMPLE_SUCCESS").pipe(
  Config.withDefault(0.1),
  Config.validate({
    message: "SG_SAMPLE_SUCCESS must be a number from 0 to 1",
    validation: (rate) => rate >= 0 && rate <= 1
  }),
  Config.withDescription("share of successful execution records kept, 0 to 1")
)
