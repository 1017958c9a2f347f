/**
 * Connection admission for every TCP listener (pure: no sockets, no clock). A listener asks `admit` for each
 * accepted connection and reports `setBusy` / `release`; the guard answers with a ticket, a refusal, or a ticket
 * plus an idle connection to close to make room.
 *
 * Why eviction and not only refusal: a per-source cap stops one machine, but a LAN (or IPv6) attacker has many
 * addresses, so the total cap alone would let idle connections lock every real client out. When the total is
 * reached, the oldest connection without a request in flight — taken from the source holding the most
 * connections — is closed for the newcomer. Connections that are being answered (a pairing request waiting for
 * its PIN) are never evicted; when all are busy the newcomer is refused.
 */

export interface ConnectionLimits {
  /** Connections this listener holds at once (each is one file descriptor). */
  maxConnections: number;
  /** Connections one source address holds at once. */
  maxPerSource: number;
}

export interface ConnectionTicket {
  readonly id: number;
  readonly source: string;
  readonly admittedAt: number;
}

export type Admission =
  | { admitted: true; ticket: ConnectionTicket; evict: ConnectionTicket | null }
  | { admitted: false; reason: "per_source" | "total" };

export interface ConnectionCounters {
  open: number;
  admitted: number;
  refused_per_source: number;
  refused_total: number;
  evicted_idle: number;
  timed_out: number;
  accept_errors: number;
}

interface Entry {
  ticket: ConnectionTicket;
  busy: boolean;
}

export class ConnectionGuard {
  readonly #entries = new Map<number, Entry>();
  readonly #perSource = new Map<string, number>();
  #nextId = 1;
  readonly counters: ConnectionCounters = {
    open: 0,
    admitted: 0,
    refused_per_source: 0,
    refused_total: 0,
    evicted_idle: 0,
    timed_out: 0,
    accept_errors: 0,
  };

  constructor(readonly limits: ConnectionLimits) {
    if (!(limits.maxConnections >= 1 && limits.maxPerSource >= 1)) {
      throw new RangeError(`connection limits must be ≥ 1: ${JSON.stringify(limits)}`);
    }
  }

  get open(): number {
    return this.#entries.size;
  }

  openFrom(source: string): number {
    return this.#perSource.get(source) ?? 0;
  }

  /**
   * Admits a new connection from `source` at `now` (ms). An `evict` ticket is already released: the caller
   * closes that connection and must not release it again.
   */
  admit(source: string, now: number): Admission {
    if (this.openFrom(source) >= this.limits.maxPerSource) {
      this.counters.refused_per_source++;
      return { admitted: false, reason: "per_source" };
    }
    let evict: ConnectionTicket | null = null;
    if (this.#entries.size >= this.limits.maxConnections) {
      evict = this.#pickIdleVictim();
      if (evict === null) {
        this.counters.refused_total++;
        return { admitted: false, reason: "total" };
      }
      this.release(evict);
      this.counters.evicted_idle++;
    }
    const ticket: ConnectionTicket = { id: this.#nextId++, source, admittedAt: now };
    this.#entries.set(ticket.id, { ticket, busy: false });
    this.#perSource.set(source, this.openFrom(source) + 1);
    this.counters.admitted++;
    this.counters.open = this.#entries.size;
    return { admitted: true, ticket, evict };
  }

  /** A request is in flight (busy) or the connection waits for the next one (idle, evictable). */
  setBusy(ticket: ConnectionTicket, busy: boolean): void {
    const entry = this.#entries.get(ticket.id);
    if (entry) entry.busy = busy;
  }

  isBusy(ticket: ConnectionTicket): boolean {
    return this.#entries.get(ticket.id)?.busy ?? false;
  }

  /** Idempotent: a ticket already released (closed, evicted) is ignored. */
  release(ticket: ConnectionTicket): void {
    if (!this.#entries.delete(ticket.id)) return;
    const left = this.openFrom(ticket.source) - 1;
    if (left > 0) this.#perSource.set(ticket.source, left);
    else this.#perSource.delete(ticket.source);
    this.counters.open = this.#entries.size;
  }

  countTimeout(): void {
    this.counters.timed_out++;
  }

  countAcceptError(): void {
    this.counters.accept_errors++;
  }

  /** Oldest idle connection of the source with the most connections (ties: the oldest overall). */
  #pickIdleVictim(): ConnectionTicket | null {
    let victim: Entry | null = null;
    let victimLoad = -1;
    for (const entry of this.#entries.values()) {
      if (entry.busy) continue;
      const load = this.openFrom(entry.ticket.source);
      // Map iteration is in admission order, so the first idle entry of the heaviest source is its oldest.
      if (load > victimLoad) {
        victim = entry;
        victimLoad = load;
      }
    }
    return victim?.ticket ?? null;
  }
}

/** Timeouts of one listener, in ms (0 = not applicable). */
export interface ListenerTimeouts {
  /** From accept until the TLS handshake is done. */
  handshakeMs: number;
  /** From accept until the first request head is complete (an idle or half-sent-head connection is closed). */
  headersMs: number;
  /** From a complete request head until its body has arrived. */
  requestBodyMs: number;
  /** Keep-alive: from the end of one response until the next request head is complete. */
  idleMs: number;
}

export interface ListenerDefence {
  limits: ConnectionLimits;
  timeouts: ListenerTimeouts;
}

/** A LAN peer on a slow Wi-Fi link finishes a TLS handshake in well under a second; 5 s is generous. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 5_000;
/**
 * Every client we serve (Moonlight, browsers, curl) writes its request head in one go right after connecting;
 * Moonlight itself gives up on a reply after 15 s, so a head not complete after 10 s belongs to no real client.
 */
export const HEADERS_TIMEOUT_MS = 10_000;
/**
 * Management bodies are small JSON documents (at most 4 KiB, mgmt/request_guard.ts): a LAN client sends one in
 * a single write, so 5 s is generous for a slow link and short for a slow-body attack.
 */
export const REQUEST_BODY_TIMEOUT_MS = 5_000;
/** Node's own keep-alive default: enough for a browser's next request, short enough to free the socket. */
export const IDLE_TIMEOUT_MS = 5_000;

const DEFAULT_TIMEOUTS: ListenerTimeouts = {
  handshakeMs: TLS_HANDSHAKE_TIMEOUT_MS,
  headersMs: HEADERS_TIMEOUT_MS,
  requestBodyMs: REQUEST_BODY_TIMEOUT_MS,
  idleMs: IDLE_TIMEOUT_MS,
};

/**
 * Per-listener caps. Their sum (64 + 64 + 16 + 64 = 208 descriptors) stays under a quarter of the common soft
 * limit of 1024, leaving the rest for media sockets, the database, the X connection and children — and far under
 * the unit's LimitNOFILE. Reaching the limit matters because Deno's node:net listener stops accepting for good
 * after one EMFILE (measured with Deno 2.9.6).
 */
export const LISTENER_DEFENCES = {
  /**
   * nvhttp HTTP/HTTPS: a Moonlight client polls serverinfo over both ports, holds one pairing request and fetches
   * a few box-art images at once — under 8 per address; 64 serves 8 such clients at their peak.
   */
  nvhttpHttp: { limits: { maxConnections: 64, maxPerSource: 8 }, timeouts: DEFAULT_TIMEOUTS },
  nvhttpHttps: { limits: { maxConnections: 64, maxPerSource: 8 }, timeouts: DEFAULT_TIMEOUTS },
  /** RTSP: one request per connection, strictly one after another, one session at a time. */
  rtsp: { limits: { maxConnections: 16, maxPerSource: 4 }, timeouts: DEFAULT_TIMEOUTS },
  /**
   * Management API: a browser opens up to 6 connections per origin, and on loopback every local tool shares
   * one address, so 16 per address; 64 in total.
   */
  mgmt: { limits: { maxConnections: 64, maxPerSource: 16 }, timeouts: DEFAULT_TIMEOUTS },
} satisfies Record<string, ListenerDefence>;

export type ListenerName = keyof typeof LISTENER_DEFENCES;

/**
 * Test hook: `PUNKTFUNK_LISTENER_OVERRIDES` (JSON `{"rtsp":{"limits":{…},"timeouts":{…}}}`) shortens timeouts
 * or lowers caps so integration tests need not wait 10 s; it can only tighten a defence, never loosen it.
 */
export function listenerDefence(name: ListenerName, overridesJson?: string): ListenerDefence {
  const base = LISTENER_DEFENCES[name];
  if (!overridesJson) return base;
  let parsed: unknown;
  try {
    parsed = JSON.parse(overridesJson);
  } catch {
    return base;
  }
  const override = (parsed as Record<string, Partial<{ limits: unknown; timeouts: unknown }>>)?.[name];
  if (typeof override !== "object" || override === null) return base;
  const tighten = <T extends object>(defaults: T, given: unknown): T => {
    const result = { ...defaults } as Record<string, number>;
    if (typeof given !== "object" || given === null) return result as T;
    for (const [key, value] of Object.entries(given)) {
      if (key in result && typeof value === "number" && Number.isInteger(value) && value >= 1) {
        result[key] = Math.min(result[key], value);
      }
    }
    return result as T;
  };
  return {
    limits: tighten(base.limits, override.limits),
    timeouts: tighten(base.timeouts, override.timeouts),
  };
}
