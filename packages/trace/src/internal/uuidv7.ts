/**
 * The synchronous UUIDv7 engine behind `TraceIdGenerator` (RFC 9562 §5.7, monotonic by §6.2 method 2).
 *
 * Hand-written because no library does monotonic v7 at this speed: `uuid`'s v7 runs at about 1/15 of
 * `crypto.randomUUID`. The 74 random bits live in three plain numbers (12 + 30 + 32 bits), random bytes come from a
 * pooled buffer filled in large chunks (as Node's `randomUUID` does), and the 28 hex digits before the last 8 are
 * cached, so an id in the same millisecond costs an increment, four table look-ups and four concatenations.
 */

/** Fills a buffer with random bytes, as `crypto.randomFillSync` does. */
export type RandomFill = (buffer: Uint8Array) => void

/** How many random bytes a fresh millisecond takes: the 74 random bits of one id, in the id's bytes 6 to 15. */
export const bytesPerDraw = 10

const drawsPerPool = 256
const hexDigits = "0123456789abcdef"
const byteHex: ReadonlyArray<string> = Array.from({ length: 256 }, (_, i) => hexDigits[i >>> 4]! + hexDigits[i & 15]!)
const twoTo32 = 4294967296

/**
 * A UUIDv7 generator: call it with the current Unix time in milliseconds for the next id, lowercase and hyphenated.
 *
 * Ids from one generator strictly increase. When the millisecond advanced, the id takes that timestamp and fresh
 * random bits, unchanged (so RFC 9562's test vectors reproduce). Otherwise (same millisecond, or the clock went back)
 * it keeps the last timestamp and adds one to the 74-bit random part; when that overflows, the timestamp advances by
 * one millisecond and the random part starts again from zero.
 *
 * `random` is asked for `bytesPerDraw * 256` bytes at a time; a fresh millisecond takes the next 10 of them, laid out
 * as the id's bytes 6 to 15 (version and variant bits are overwritten).
 */
export const makeGenerator = (options: { readonly random: RandomFill }): (nowMs: number) => string => {
  const random = options.random
  const pool = new Uint8Array(bytesPerDraw * drawsPerPool)
  let offset = pool.length
  let lastMs = -1
  let randA = 0 // 12 bits: rand_a
  let randHi = 0 // 30 bits: the top of rand_b
  let randLo = 0 // 32 bits: the bottom of rand_b
  let prefix = "" // the id up to its last 8 hex digits

  const draw = () => {
    if (offset === pool.length) {
      random(pool)
      offset = 0
    }
    const o = offset
    randA = ((pool[o]! & 0x0f) << 8) | pool[o + 1]!
    randHi = ((pool[o + 2]! & 0x3f) << 24) | (pool[o + 3]! << 16) | (pool[o + 4]! << 8) | pool[o + 5]!
    randLo = ((pool[o + 6]! << 24) | (pool[o + 7]! << 16) | (pool[o + 8]! << 8) | pool[o + 9]!) >>> 0
    offset = o + bytesPerDraw
  }

  const carry = () => {
    randLo = 0
    if (randHi !== 0x3fffffff) {
      randHi++
    } else {
      randHi = 0
      if (randA !== 0xfff) {
        randA++
      } else {
        randA = 0
        lastMs++
      }
    }
  }

  const cachePrefix = () => {
    const hi = Math.floor(lastMs / twoTo32) & 0xffff
    const lo = lastMs >>> 0
    prefix = byteHex[hi >>> 8]! + byteHex[hi & 0xff]! + byteHex[lo >>> 24]! + byteHex[(lo >>> 16) & 0xff]! + "-" +
      byteHex[(lo >>> 8) & 0xff]! + byteHex[lo & 0xff]! + "-7" + hexDigits[randA >>> 8]! + byteHex[randA & 0xff]! +
      "-" + byteHex[0x80 | (randHi >>> 24)]! + byteHex[(randHi >>> 16) & 0xff]! + "-" +
      byteHex[(randHi >>> 8) & 0xff]! + byteHex[randHi & 0xff]!
    // Reading a character makes V8 flatten the prefix once here, instead of in every id that is later compared or
    // written (about 1.5x faster ids in use, measured in bench/trace-id.ts "every id checked").
    void prefix.charCodeAt(0)
  }

  return (nowMs) => {
    const ms = nowMs > 0 ? Math.floor(nowMs) : 0
    if (ms > lastMs) {
      lastMs = ms
      draw()
      cachePrefix()
    } else if (randLo !== 0xffffffff) {
      randLo++
    } else {
      carry()
      cachePrefix()
    }
    return prefix + byteHex[randLo >>> 24]! + byteHex[(randLo >>> 16) & 0xff]! + byteHex[(randLo >>> 8) & 0xff]! +
      byteHex[randLo & 0xff]!
  }
}
