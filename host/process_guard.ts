/**
 * Process-wide last line of defence for `serve`: an unhandled promise rejection or an uncaught error (e.g. a
 * node EventEmitter `'error'` nobody listens to, thrown from a socket callback) becomes a logged, counted error
 * instead of ending the host — one broken connection must never take every client's stream down with it.
 */
import type { Logger } from "./log.ts";

export interface ProcessGuardCounters {
  unhandled_rejections: number;
  uncaught_errors: number;
}

export interface ProcessGuard {
  readonly counters: ProcessGuardCounters;
  uninstall(): void;
}

function describe(reason: unknown): { error: string; kind: string } {
  if (reason instanceof Error) return { error: reason.message, kind: reason.name };
  return { error: String(reason), kind: typeof reason };
}

export function installProcessGuard(log: Logger, target: EventTarget = globalThis): ProcessGuard {
  const counters: ProcessGuardCounters = { unhandled_rejections: 0, uncaught_errors: 0 };
  const onRejection = (event: Event) => {
    event.preventDefault();
    counters.unhandled_rejections++;
    log.error("unhandled promise rejection (host kept running)", {
      ...describe((event as PromiseRejectionEvent).reason),
      count: counters.unhandled_rejections,
    });
  };
  const onError = (event: Event) => {
    event.preventDefault();
    counters.uncaught_errors++;
    const errorEvent = event as ErrorEvent;
    log.error("uncaught error (host kept running)", {
      ...describe(errorEvent.error ?? errorEvent.message),
      count: counters.uncaught_errors,
    });
  };
  target.addEventListener("unhandledrejection", onRejection);
  target.addEventListener("error", onError);
  return {
    counters,
    uninstall: () => {
      target.removeEventListener("unhandledrejection", onRejection);
      target.removeEventListener("error", onError);
    },
  };
}
