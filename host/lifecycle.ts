/**
 * Orderly shutdown: resources register a closer, child processes are tracked, and SIGINT/SIGTERM
 * run every closer (newest first) and stop every child — Deno would otherwise orphan them.
 */
import type { Logger } from "./log.ts";

/** How long a child gets after SIGTERM before SIGKILL; Xvfb exits in ~11 ms, 2 s is generous. */
export const CHILD_TERM_GRACE_MS = 2000;

export class Lifecycle {
  readonly #closers: { name: string; close: () => void | Promise<void> }[] = [];
  readonly #children = new Map<Deno.ChildProcess, string>();
  #shuttingDown: Promise<void> | undefined;

  constructor(readonly log: Logger) {}

  get shuttingDown(): boolean {
    return this.#shuttingDown !== undefined;
  }

  onShutdown(name: string, close: () => void | Promise<void>): void {
    this.#closers.push({ name, close });
  }

  /** Spawns a child that shutdown will terminate. */
  spawn(program: string, options: Omit<Deno.CommandOptions, "signal">): Deno.ChildProcess {
    const child = new Deno.Command(program, options).spawn();
    this.#children.set(child, program);
    child.status.finally(() => this.#children.delete(child));
    return child;
  }

  get childCount(): number {
    return this.#children.size;
  }

  shutdown(reason: string): Promise<void> {
    this.#shuttingDown ??= this.#runShutdown(reason);
    return this.#shuttingDown;
  }

  async #runShutdown(reason: string): Promise<void> {
    this.log.info("shutting down", { reason });
    for (const { name, close } of this.#closers.toReversed()) {
      try {
        await close();
      } catch (error) {
        this.log.warn("error while closing", { name, error: String(error) });
      }
    }
    await Promise.all([...this.#children].map(([child, program]) => this.#stopChild(child, program)));
  }

  async #stopChild(child: Deno.ChildProcess, program: string): Promise<void> {
    try {
      child.kill("SIGTERM");
    } catch {
      return; // already exited
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const exited = await Promise.race([
      child.status.then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), CHILD_TERM_GRACE_MS)),
    ]);
    clearTimeout(timer);
    if (!exited) {
      this.log.warn("child ignored SIGTERM; killing it", { program, pid: child.pid });
      try {
        child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
      await child.status;
    }
  }

  /** SIGINT/SIGTERM → shutdown → `exit(0)`; a second signal exits at once with 130. */
  installSignalHandlers(exit: (code: number) => void = Deno.exit): () => void {
    const handler = () => {
      if (this.shuttingDown) exit(130);
      this.shutdown("signal").then(() => exit(0));
    };
    Deno.addSignalListener("SIGINT", handler);
    Deno.addSignalListener("SIGTERM", handler);
    return () => {
      Deno.removeSignalListener("SIGINT", handler);
      Deno.removeSignalListener("SIGTERM", handler);
    };
  }
}
