/**
 * Input injection backends. Without a display the host records what clients send (bounded, and logged at
 * debug level so an operator or a test can see it arrive); with an X display, XTest injects it.
 */
import type { InputEvent } from "../gamestream/input.ts";
import type { Logger } from "./log.ts";

export interface InputInjector {
  readonly name: string;
  inject(event: InputEvent): void;
  close(): void;
}

/** Keeps the last `capacity` events; 4096 is minutes of typing and a few seconds of mouse motion. */
export class RecordingInjector implements InputInjector {
  readonly name = "recording";
  readonly #events: InputEvent[] = [];
  readonly #waiters = new Set<{ predicate: (e: InputEvent) => boolean; resolve: (e: InputEvent) => void }>();

  constructor(private readonly log?: Logger, private readonly capacity = 4096) {}

  inject(event: InputEvent): void {
    this.#events.push(event);
    if (this.#events.length > this.capacity) this.#events.shift();
    this.log?.debug("input event recorded", { ...event } as Record<string, unknown>);
    for (const waiter of this.#waiters) {
      if (waiter.predicate(event)) {
        this.#waiters.delete(waiter);
        waiter.resolve(event);
      }
    }
  }

  events(): readonly InputEvent[] {
    return this.#events;
  }

  waitFor(predicate: (e: InputEvent) => boolean, timeoutMs: number): Promise<InputEvent> {
    const seen = this.#events.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        predicate,
        resolve: (e: InputEvent) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`no matching input event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  close(): void {}
}
