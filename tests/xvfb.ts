/** A private Xvfb per test, on a free display number; tests skip with a reason when Xvfb is missing. */

/** Display numbers tried: clear of real sessions and of the Rust tests' private servers (:90–:120). */
const FIRST_DISPLAY = 140;
const DISPLAY_CANDIDATES = 40;
const STARTUP_TIMEOUT_MS = 5000;
const STOP_TIMEOUT_MS = 3000;

function isExecutableFile(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

function findInPath(program: string): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && isExecutableFile(`${dir}/${program}`)) return `${dir}/${program}`;
  }
  return null;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export const XVFB = findInPath("Xvfb");
export const XVFB_SKIP_REASON = XVFB === null ? " (skipped: Xvfb is not installed)" : "";

export interface XvfbServer {
  display: string;
  stop(): Promise<void>;
}

async function stopChild(child: Deno.ChildProcess): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = child.status.then(() => true);
  try {
    child.kill("SIGTERM");
  } catch { /* already exited */ }
  const inTime = await Promise.race([
    exited,
    new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS)),
  ]);
  clearTimeout(timer);
  if (!inTime) {
    try {
      child.kill("SIGKILL");
    } catch { /* exited meanwhile */ }
    await child.status;
  }
}

/** Starts `Xvfb :N -screen 0 <size>x24 -nolisten tcp -noreset …extra` on a free display number. */
export async function startXvfb(
  { size = "640x480", extra = [] }: { size?: string; extra?: string[] } = {},
): Promise<XvfbServer> {
  if (XVFB === null) throw new Error("Xvfb is not installed");
  const offset = Math.floor(Math.random() * DISPLAY_CANDIDATES);
  for (let i = 0; i < DISPLAY_CANDIDATES; i++) {
    const number = FIRST_DISPLAY + (offset + i) % DISPLAY_CANDIDATES;
    const socket = `/tmp/.X11-unix/X${number}`;
    if (exists(socket) || exists(`/tmp/.X${number}-lock`)) continue;
    const child = new Deno.Command(XVFB, {
      args: [`:${number}`, "-screen", "0", `${size}x24`, "-nolisten", "tcp", "-noreset", ...extra],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    let exited = false;
    child.status.then(() => exited = true);
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    // Once the socket exists the server accepts connections (XOpenDisplay waits out the rest of
    // its start-up); exiting first usually means another process took this number.
    while (!exited && !exists(socket) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (!exited && exists(socket)) return { display: `:${number}`, stop: () => stopChild(child) };
    await stopChild(child);
  }
  throw new Error(
    `no free X display number in :${FIRST_DISPLAY}..:${FIRST_DISPLAY + DISPLAY_CANDIDATES - 1}`,
  );
}
