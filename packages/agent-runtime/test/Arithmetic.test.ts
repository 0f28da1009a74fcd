import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as Arithmetic from "../src/internal/arithmetic.js"

describe("the demo calculator's arithmetic", () => {
  it("evaluates with precedence, associativity, unary minus and parentheses", () => {
    const cases: Array<[string, number]> = [
      ["1 + 2 * 3", 7],
      ["(1 + 2) * 3", 9],
      ["10 - 4 - 3", 3],
      ["2 ^ 3 ^ 2", 512],
      ["-2 ^ 2", -4],
      ["-(3 - 5) * 2", 4],
      ["7 % 4", 3],
      ["1.5 * 4", 6],
      [".5 + .25", 0.75],
      ["1e3 / 8", 125],
      ["6*7", 42]
    ]
    for (const [input, value] of cases) {
      expect([input, Arithmetic.evaluate(input)]).toEqual([input, Either.right(value)])
    }
  })

  it("says what is wrong instead of throwing", () => {
    const cases: Array<[string, string]> = [
      ["1/0", "division by zero"],
      ["5 % (2 - 2)", "modulo by zero"],
      ["", "empty expression"],
      ["1 +", "expression ends too early"],
      ["(1 + 2", "missing \")\""],
      ["1 + 2)", "unexpected \")\""],
      ["2 * x", "unexpected \"x\" at position 5"],
      ["process.exit()", "unexpected \"p\" at position 1"],
      ["10 ^ 400", "result is not a finite number"],
      ["1+".repeat(101) + "1", "expression longer than 200 characters"],
      ["(".repeat(60) + "1" + ")".repeat(60), "too many nested parentheses"]
    ]
    for (const [input, error] of cases) expect([input, Arithmetic.evaluate(input)]).toEqual([input, Either.left(error)])
  })

  it("finds an expression in a sentence, not a lone number", () => {
    expect(Arithmetic.find("what is (2 + 3) * 4?")).toBe("(2 + 3) * 4")
    expect(Arithmetic.find("and 1/0 please")).toBe("1/0")
    expect(Arithmetic.find("use 3 researchers")).toBeUndefined()
    expect(Arithmetic.find("what time is it")).toBeUndefined()
  })
})
