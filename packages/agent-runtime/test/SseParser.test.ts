import { describe, expect, it } from "@effect/vitest"
import { EventTooLarge, Parser } from "../src/internal/sseParser.js"

describe("the server-sent events parser", () => {
  it("parses events split anywhere, with LF, CRLF or CR line ends, comments and multi-line data", () => {
    const text = ": keep-alive\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\n" +
      "data: one\ndata: two\n\ndata:three\r\rdata: [DONE]\n\n"
    for (let size = 1; size <= text.length; size++) {
      const parser = new Parser()
      const events = []
      for (let i = 0; i < text.length; i += size) events.push(...parser.feed(text.slice(i, i + size)))
      events.push(...parser.end())
      expect(events, `pieces of ${size}`).toEqual([
        { event: "message_start", data: "{\"a\":1}" },
        { event: "message", data: "one\ntwo" },
        { event: "message", data: "three" },
        { event: "message", data: "[DONE]" }
      ])
    }
  })

  it("ends an event left open at the end of the body; ignores an event with no data", () => {
    const parser = new Parser()
    expect(parser.feed("event: ping\n\ndata: last")).toEqual([])
    expect(parser.end()).toEqual([{ event: "message", data: "last" }])
  })

  it("refuses an event past its size cap", () => {
    const parser = new Parser(10)
    expect(() => parser.feed("data: 0123456789abc\n")).toThrow(EventTooLarge)
    expect(() => new Parser(10).feed("data: 0123456789abc")).toThrow(EventTooLarge)
  })
})
