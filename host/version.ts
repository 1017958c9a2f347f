/**
 * Version facts for `--version`, `/api/v1/health` and logs. The commit is read from the checkout's
 * `.git` directly (no `git` process), or from `build-commit.txt` that packaging/compile.sh embeds.
 */
import denoConfig from "../deno.json" with { type: "json" };

export const VERSION: string = denoConfig.version;
/** What Moonlight is told we are: GFE's app version, which current Moonlight requires. */
export const GAMESTREAM_APP_VERSION = "7.1.431.-1";
export const GFE_VERSION = "3.23.0.74";

function readTextOrUndefined(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** Resolves HEAD in a `.git` directory: a detached hash, a loose ref, or a packed ref. */
export function resolveGitHead(gitDir: string): string | undefined {
  const head = readTextOrUndefined(`${gitDir}/HEAD`)?.trim();
  if (!head) return undefined;
  if (/^[0-9a-f]{40}$/.test(head)) return head;
  const ref = /^ref: (\S+)$/.exec(head)?.[1];
  if (!ref) return undefined;
  const loose = readTextOrUndefined(`${gitDir}/${ref}`)?.trim();
  if (loose && /^[0-9a-f]{40}$/.test(loose)) return loose;
  const packed = readTextOrUndefined(`${gitDir}/packed-refs`) ?? "";
  for (const line of packed.split("\n")) {
    const [hash, name] = line.split(" ");
    if (name === ref && /^[0-9a-f]{40}$/.test(hash)) return hash;
  }
  return undefined;
}

export function gitCommit(): string {
  const embedded = readTextOrUndefined(new URL("../packaging/build-commit.txt", import.meta.url).pathname);
  if (embedded?.trim()) return embedded.trim();
  return resolveGitHead(new URL("../.git", import.meta.url).pathname) ?? "unknown";
}
