/**
 * A server-sent events parser (the WHATWG `text/event-stream` rules sg needs: `data:` lines joined by newlines,
 * `event:` names, comments, CR/LF/CRLF line ends), fed text as it arrives. Hand-written rather than
 * @effect/experimental's `Sse.makeChannel`: that one runs a Mailbox-backed channel per stream, which on a short model
 * answer costs more than the parsing; this one is a plain loop inside the stream's own step.
 */

/** One event: its name (`message` when unnamed) and its data. */
export interface Event {
  readonly event: string
  readonly data: string
}

/** The pending event grew past `maxEventSize` characters. */
export class EventTooLarge extends Error {
  constructor(readonly maxEventSize: number) {
    super(`a server-sent event exceeded ${maxEventSize} characters`)
  }
}

/** A parser; `feed` returns the events completed by `text`, `end` the one left open at the end of the body. */
export class Parser {
  private buffer = ""
  private data: Array<string> = []
  private size = 0
  private event = ""
  private lastWasCr = false

  constructor(private readonly maxEventSize = 10 * 1024 * 1024) {}

  feed(text: string): Array<Event> {
    const events: Array<Event> = []
    let input = this.buffer + text
    // A CRLF split across two chunks: the LF ends nothing new.
    if (this.lastWasCr && input.startsWith("\n")) input = input.slice(1)
    this.lastWasCr = false
    let start = 0
    for (let i = 0; i < input.length; i++) {
      const c = input.charCodeAt(i)
      if (c !== 10 && c !== 13) continue
      this.line(input.slice(start, i), events)
      if (c === 13) {
        if (i + 1 < input.length) {
          if (input.charCodeAt(i + 1) === 10) i++
        } else {
          this.lastWasCr = true
        }
      }
      start = i + 1
    }
    this.buffer = input.slice(start)
    if (this.buffer.length + this.size > this.maxEventSize) throw new EventTooLarge(this.maxEventSize)
    return events
  }

  end(): Array<Event> {
    const events: Array<Event> = []
    if (this.buffer !== "") this.line(this.buffer, events)
    this.buffer = ""
    this.line("", events)
    return events
  }

  private line(line: string, events: Array<Event>): void {
    if (line === "") {
      if (this.data.length > 0) {
        events.push({ event: this.event === "" ? "message" : this.event, data: this.data.join("\n") })
      }
      this.data = []
      this.size = 0
      this.event = ""
      return
    }
    if (line.charCodeAt(0) === 58) return
    const colon = line.indexOf(":")
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? "" : line.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    if (field === "data") {
      this.data.push(value)
      this.size += value.length
      if (this.size > this.maxEventSize) throw new EventTooLarge(this.maxEventSize)
    } else if (field === "event") {
      this.event = value
    }
  }
}
