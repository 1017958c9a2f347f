import { assertEquals } from "../tests/assert.ts";
import { resolveGitHead, VERSION } from "./version.ts";

const HASH = "0123456789abcdef0123456789abcdef01234567";

Deno.test("resolveGitHead: loose ref, packed ref, detached, missing", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${dir}/refs/heads`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/HEAD`, "ref: refs/heads/main\n");
    assertEquals(resolveGitHead(dir), undefined);
    Deno.writeTextFileSync(`${dir}/packed-refs`, `# pack-refs\n${HASH} refs/heads/main\n`);
    assertEquals(resolveGitHead(dir), HASH);
    const loose = HASH.replace("0", "f");
    Deno.writeTextFileSync(`${dir}/refs/heads/main`, loose + "\n");
    assertEquals(resolveGitHead(dir), loose);
    Deno.writeTextFileSync(`${dir}/HEAD`, HASH + "\n");
    assertEquals(resolveGitHead(dir), HASH);
    assertEquals(resolveGitHead(`${dir}/nope`), undefined);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("VERSION comes from deno.json", () => {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  assertEquals(VERSION, config.version);
});
