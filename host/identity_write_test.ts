/** `writeSecretFile`: owner-only, atomic, and durable (file and directory fsynced around the rename). */
import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import { writeSecretFile } from "./identity.ts";

function withTempDir(work: (dir: string) => void | Promise<void>): () => Promise<void> {
  return async () => {
    const dir = Deno.makeTempDirSync({ prefix: "punktfunk-secret-" });
    try {
      await work(dir);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

Deno.test(
  "writeSecretFile writes 0600 content, replaces a wider-mode file and leaves no temp file",
  withTempDir((dir) => {
    const path = `${dir}/host-key.pem`;
    Deno.writeTextFileSync(path, "old", { mode: 0o644 });
    Deno.chmodSync(path, 0o644);
    const content = "-----BEGIN PRIVATE KEY-----\n" + "x".repeat(100_000) + "\n";
    writeSecretFile(path, content);
    assertEquals(Deno.readTextFileSync(path), content);
    assertEquals(Deno.statSync(path).mode! & 0o777, 0o600);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["host-key.pem"]);
  }),
);

Deno.test(
  "writeSecretFile: a failed write leaves the old file and no temp file behind",
  withTempDir((dir) => {
    const path = `${dir}/uniqueid`;
    writeSecretFile(path, "first\n");
    Deno.mkdirSync(`${dir}/blocked`);
    // Renaming a file over a directory fails after the temp file was written and synced.
    assertThrows(() => writeSecretFile(`${dir}/blocked`, "second\n"));
    assertEquals(Deno.readTextFileSync(path), "first\n");
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["blocked", "uniqueid"]);
  }),
);

const strace = (() => {
  try {
    return new Deno.Command("strace", { args: ["-V"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: strace
    ? "writeSecretFile syscalls: O_EXCL temp 0600, fsync(temp), rename, fsync(directory) — in that order"
    : "writeSecretFile syscall order (skipped: strace is not installed)",
  ignore: !strace,
  fn: withTempDir(async (dir) => {
    const script = `${dir}/write.ts`;
    const identity = new URL("./identity.ts", import.meta.url).href;
    Deno.writeTextFileSync(
      script,
      `import { writeSecretFile } from ${JSON.stringify(identity)};\n` +
        `writeSecretFile(${JSON.stringify(`${dir}/out/secret`)}, "s3cret\\n");\n`,
    );
    Deno.mkdirSync(`${dir}/out`);
    const output = await new Deno.Command("strace", {
      args: [
        "-f",
        "-qq",
        "-y", // fds printed with their paths
        "-e",
        "trace=openat,fsync,fdatasync,rename,renameat,renameat2",
        Deno.execPath(),
        "run",
        "-A",
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const trace = new TextDecoder().decode(output.stderr);
    assert(output.success, trace.slice(-2000));
    const lines = trace.split("\n").filter((line) => line.includes(`${dir}/out`));
    const steps = lines.map((line) => {
      if (/openat\(.*secret\.tmp-.*O_CREAT.*O_EXCL.*0600\)/.test(line)) return "create-temp";
      if (/fsync\(\d+<[^>]*secret\.tmp-[^>]*>\)/.test(line)) return "fsync-temp";
      if (/rename.*secret\.tmp-.*secret"/.test(line)) return "rename";
      if (new RegExp(`fsync\\(\\d+<${dir}/out>\\)`).test(line)) return "fsync-dir";
      return null;
    }).filter((step) => step !== null);
    assertEquals(steps, ["create-temp", "fsync-temp", "rename", "fsync-dir"], lines.join("\n"));
    assertEquals(Deno.readTextFileSync(`${dir}/out/secret`), "s3cret\n");
  }),
});
