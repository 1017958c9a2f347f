/**
 * The repository stands alone: every protocol citation (`§N.M`) in code, tests and docs names a section that
 * exists as a heading in docs/gamestream-protocol.md, and no file points at documents outside the repository
 * (the former shared reference or its directory). RFC citations ("RFC 6716 §3.2.1") are not ours and are
 * skipped.
 */
import { assert, assertEquals } from "./assert.ts";

const ROOT = new URL("../", import.meta.url);
const REFERENCE = "docs/gamestream-protocol.md";
const SECTION_SIGN = "\u00a7";

/** Directories that are not the project's text: VCS data, the shared tool install, build output. */
const SKIPPED_DIRECTORIES = new Set([".git", ".tools", "node_modules", "target", "dist", "coverage"]);
/** Files where a citation can appear; everything else (binaries, lockfiles) is not scanned for citations. */
const CITING_EXTENSIONS = /\.(ts|js|rs|c|h|md|sh)$/;
/** Files scanned for references to outside documents: the citing ones plus configuration and packaging. */
const TEXT_EXTENSIONS = /\.(ts|js|rs|c|h|md|sh|toml|json|ya?ml|txt|service)$/;

// Built from pieces so that this file does not trip its own checks.
const OUTSIDE_REFERENCES: ReadonlyArray<{ name: string; pattern: RegExp }> = [
  { name: ".." + "/shared", pattern: new RegExp("\\.\\./" + "shared") },
  { name: "shared" + "/docs", pattern: new RegExp("shared/" + "docs") },
  { name: "the external gamestream" + ".md", pattern: new RegExp("(^|[^A-Za-z0-9_-])gamestream" + "\\.md") },
];

/** Section numbers of the reference's headings: `## 7. Video …` → "7", `### 7.4 FEC blocks` → "7.4". */
function headingSections(markdown: string): Set<string> {
  const sections = new Set<string>();
  for (const line of markdown.split("\n")) {
    const match = /^#{2,6} (\d+(?:\.\d+)*)\.?\s/.exec(line);
    if (match) sections.add(match[1]);
  }
  return sections;
}

/** Every `§N.M` in `text` with its 1-based line, except those that belong to an RFC ("RFC 5280 §4.1.2.5"). */
function sectionCitations(text: string): Array<{ section: string; line: number }> {
  const citations: Array<{ section: string; line: number }> = [];
  const pattern = new RegExp(`(RFC\\s*\\d+\\s*)?${SECTION_SIGN}\\s?(\\d+(?:\\.\\d+)*)`, "g");
  for (const match of text.matchAll(pattern)) {
    if (match[1] !== undefined) continue;
    const line = text.slice(0, match.index).split("\n").length;
    citations.push({ section: match[2], line });
  }
  return citations;
}

async function projectFiles(directory = ROOT, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(directory)) {
    // Symlinks (the shared .tools install, a prebuilt native-core/target) are not the project's files.
    if (entry.isSymlink || SKIPPED_DIRECTORIES.has(entry.name)) continue;
    const path = prefix + entry.name;
    if (entry.isDirectory) {
      files.push(...await projectFiles(new URL(`${entry.name}/`, directory), `${path}/`));
    } else if (entry.isFile && TEXT_EXTENSIONS.test(entry.name)) files.push(path);
  }
  return files.sort();
}

function read(path: string): string {
  return Deno.readTextFileSync(new URL(path, ROOT));
}

Deno.test("citation helpers: headings and citations are recognised, RFC sections are not ours", () => {
  const headings = headingSections(
    "# Title\n## 0. Conventions\n### 7.4 FEC blocks\n#### 13.5 Ping\n## Notes\n",
  );
  assertEquals([...headings], ["0", "7.4", "13.5"]);
  const text =
    `a (${SECTION_SIGN}7.4) b\nRFC 6716 ${SECTION_SIGN}3.2.1 c ${SECTION_SIGN}7.2–${SECTION_SIGN}7.8.\n` +
    `end of sentence ${SECTION_SIGN}14.`;
  assertEquals(sectionCitations(text), [
    { section: "7.4", line: 1 },
    { section: "7.2", line: 2 },
    { section: "7.8", line: 2 },
    { section: "14", line: 3 },
  ]);
});

Deno.test(`every ${SECTION_SIGN} citation names a heading of ${REFERENCE}`, async () => {
  const sections = headingSections(read(REFERENCE));
  // The reference keeps its top-level numbering 0–14; a parser that found nothing would pass vacuously.
  for (let top = 0; top <= 14; top++) assert(sections.has(String(top)), `no heading for section ${top}`);

  const files = (await projectFiles()).filter((path) => CITING_EXTENSIONS.test(path));
  assert(files.includes("gamestream/rtsp.ts"), "the walk must reach the GameStream sources");
  let citations = 0;
  const dangling: string[] = [];
  for (const path of files) {
    for (const { section, line } of sectionCitations(read(path))) {
      citations++;
      if (!sections.has(section)) dangling.push(`${path}:${line} ${SECTION_SIGN}${section}`);
    }
  }
  assert(citations > 100, `only ${citations} citations found; the scan is not reaching the code`);
  assertEquals(dangling, [], `citations without a heading in ${REFERENCE}`);
});

Deno.test("no file refers to documents outside the repository", async () => {
  const offending: string[] = [];
  for (const path of await projectFiles()) {
    const lines = read(path).split("\n");
    lines.forEach((text, index) => {
      for (const { name, pattern } of OUTSIDE_REFERENCES) {
        if (pattern.test(text)) offending.push(`${path}:${index + 1} mentions ${name}`);
      }
    });
  }
  assertEquals(offending, []);
});
