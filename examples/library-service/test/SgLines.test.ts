/**
 * The README's count of what adding sg took: the code lines of `src/Sg.ts` (not blank, not comments) and the lines
 * marked `// sg` in the rest of `src/`. Its listing of the marked lines of `src/Weather.ts` is checked too.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"

const dir = path.resolve(import.meta.dirname, "..")
const read = (file: string) => fs.readFileSync(path.join(dir, file), "utf8")
const readme = read("README.md")
const linesOf = (file: string) => read(file).split("\n")

const isCode = (line: string) => line.trim() !== "" && !/^\s*(\/\*\*|\*|\/\/)/.test(line)
const sgMark = /\s*\/\/ sg\b.*$/
const marked = (file: string) => linesOf(file).filter((line) => isCode(line) && sgMark.test(line))

describe("the README's account of the sg lines", () => {
  const others = fs.readdirSync(path.join(dir, "src")).filter((name) => name !== "Sg.ts").map((name) => `src/${name}`)
  const sgFile = linesOf("src/Sg.ts").filter(isCode)
  const counts = Object.fromEntries(others.map((file) => [file, marked(file).length]))
  const total = sgFile.length + Object.values(counts).reduce((a, b) => a + b, 0)

  it("states the count", () => {
    expect(readme).toContain(`Adding sg took **${total} lines**`)
    expect(readme).toContain(`\`src/Sg.ts\` (${sgFile.length} lines of code)`)
    expect(readme).toContain(`the ${counts["src/Weather.ts"]} lines marked \`// sg\` in\n\`src/Weather.ts\``)
    expect(counts["src/main.ts"]).toBe(1)
    const imports = [...sgFile, ...others.flatMap(marked)].filter((line) => line.startsWith("import ")).length
    expect(readme).toContain(`, ${imports} of them imports`)
  })

  it("lists the marked lines of Weather.ts as they are", () => {
    const listing = /<!-- sg-lines: src\/Weather\.ts -->\n```ts\n([\s\S]*?)^```$/m.exec(readme)
    expect(listing).not.toBeNull()
    expect(listing![1]).toBe(marked("src/Weather.ts").map((line) => line.replace(sgMark, "")).join("\n") + "\n")
  })
})
