/**
 * A tiny arithmetic evaluator for the demo calculator: numbers, `+ - * / % ^`, unary minus and parentheses, by
 * recursive descent (no `eval`: the input comes from a model). Hand-written because it is 80 lines and a parser
 * library would be a dependency for one demo tool.
 */
import * as Either from "effect/Either"

/** The longest expression evaluated, in characters. */
export const maxLength = 200

type Token = { readonly kind: "number"; readonly value: number } | { readonly kind: "op"; readonly value: string }

const tokenize = (input: string): Either.Either<Array<Token>, string> => {
  const tokens: Array<Token> = []
  let i = 0
  while (i < input.length) {
    const c = input[i]!
    if (c === " " || c === "\t") {
      i++
    } else if ("+-*/%^()".includes(c)) {
      tokens.push({ kind: "op", value: c })
      i++
    } else if ((c >= "0" && c <= "9") || c === ".") {
      const match = /^\d*\.?\d+(?:[eE][-+]?\d+)?|^\d+\.?/.exec(input.slice(i))
      if (match === null) return Either.left(`unexpected "${c}" at position ${i + 1}`)
      tokens.push({ kind: "number", value: Number(match[0]) })
      i += match[0].length
    } else {
      return Either.left(`unexpected "${c}" at position ${i + 1}`)
    }
  }
  return Either.right(tokens)
}

class Failure {
  constructor(readonly message: string) {}
}

/** Evaluates `input`; the error says what is wrong (bad syntax, division by zero, a result too large). */
export const evaluate = (input: string): Either.Either<number, string> => {
  if (input.length > maxLength) return Either.left(`expression longer than ${maxLength} characters`)
  const tokenized = tokenize(input)
  if (Either.isLeft(tokenized)) return Either.left(tokenized.left)
  const tokens = tokenized.right
  if (tokens.length === 0) return Either.left("empty expression")
  let pos = 0
  let depth = 0
  const peek = (): Token | undefined => tokens[pos]
  const isOp = (value: string) => {
    const token = peek()
    return token !== undefined && token.kind === "op" && token.value === value
  }
  const fail = (message: string): never => {
    throw new Failure(message)
  }
  // expression := term (("+" | "-") term)*
  const expression = (): number => {
    let value = term()
    while (isOp("+") || isOp("-")) {
      const op = tokens[pos++]!.value
      const right = term()
      value = op === "+" ? value + right : value - right
    }
    return value
  }
  // term := unary (("*" | "/" | "%") unary)*
  const term = (): number => {
    let value = unary()
    while (isOp("*") || isOp("/") || isOp("%")) {
      const op = tokens[pos++]!.value
      const right = unary()
      if ((op === "/" || op === "%") && right === 0) fail(op === "/" ? "division by zero" : "modulo by zero")
      value = op === "*" ? value * right : op === "/" ? value / right : value % right
    }
    return value
  }
  // unary := ("-" | "+") unary | power
  const unary = (): number => {
    if (isOp("-")) {
      pos++
      return -unary()
    }
    if (isOp("+")) {
      pos++
      return unary()
    }
    return power()
  }
  // power := primary ("^" unary)?   (right-associative)
  const power = (): number => {
    const base = primary()
    if (!isOp("^")) return base
    pos++
    return Math.pow(base, unary())
  }
  // primary := number | "(" expression ")"
  const primary = (): number => {
    const token = peek()
    if (token === undefined) return fail("expression ends too early")
    if (token.kind === "number") {
      pos++
      return token.value
    }
    if (token.value !== "(") return fail(`unexpected "${token.value}"`)
    if (++depth > 50) fail("too many nested parentheses")
    pos++
    const value = expression()
    if (!isOp(")")) fail("missing \")\"")
    pos++
    depth--
    return value
  }
  try {
    const value = expression()
    if (pos < tokens.length) {
      const token = tokens[pos]!
      return Either.left(`unexpected "${token.kind === "number" ? token.value : token.value}"`)
    }
    if (!Number.isFinite(value)) return Either.left("result is not a finite number")
    return Either.right(value)
  } catch (error) {
    if (error instanceof Failure) return Either.left(error.message)
    throw error
  }
}

/** The first run of characters in `text` that looks like an arithmetic expression (two numbers and an operator). */
export const find = (text: string): string | undefined => {
  for (const match of text.matchAll(/[\d.(][\d\s.+\-*/%^()]*[\d)]/g)) {
    const candidate = match[0].trim()
    if (/\d\s*[-+*/%^]\s*[-+(]*\s*[\d.(]/.test(candidate)) return candidate
  }
  return undefined
}
