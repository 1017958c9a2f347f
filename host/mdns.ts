/**
 * mDNS/DNS-SD announcement of the GameStream service (§1.1): `<instance>._nvstream._tcp.local` with an SRV
 * record pointing at the HTTP port, one empty TXT string, and A records for the LAN addresses. Moonlight
 * browses for it to list the host without typing an address. Best effort: a host without multicast keeps
 * running (Moonlight can still add it by address).
 *
 * Section numbers (§) refer to docs/gamestream-protocol.md.
 */
import makeMdns from "multicast-dns";
import { MDNS_SERVICE_TYPE, mdnsInstanceName } from "../gamestream/nvhttp_xml.ts";
import type { Logger } from "./log.ts";

/** Records live 2 minutes in caches; re-announced on every query. */
const TTL_SECONDS = 120;

interface Question {
  name: string;
  type: string;
}

export interface MdnsRecord {
  name: string;
  type: "PTR" | "SRV" | "TXT" | "A";
  ttl: number;
  data: unknown;
}

/** The answer to a query for our service type (pure, for tests). */
export function gameStreamRecords(hostname: string, port: number, addresses: string[]): MdnsRecord[] {
  const instance = `${mdnsInstanceName(hostname)}.${MDNS_SERVICE_TYPE}`;
  const target = `${mdnsInstanceName(hostname)}.local`;
  return [
    { name: MDNS_SERVICE_TYPE, type: "PTR", ttl: TTL_SECONDS, data: instance },
    { name: instance, type: "SRV", ttl: TTL_SECONDS, data: { port, weight: 0, priority: 0, target } },
    { name: instance, type: "TXT", ttl: TTL_SECONDS, data: [""] },
    ...addresses.map((address) => ({ name: target, type: "A" as const, ttl: TTL_SECONDS, data: address })),
  ];
}

/** True when a question asks for something we answer. */
export function wantsGameStream(question: Question, hostname: string): boolean {
  const name = question.name.toLowerCase();
  const instance = mdnsInstanceName(hostname).toLowerCase();
  return name === MDNS_SERVICE_TYPE || name === `${instance}.${MDNS_SERVICE_TYPE}`.toLowerCase() ||
    name === `${instance}.local`;
}

function lanAddresses(): string[] {
  try {
    return Deno.networkInterfaces().filter((i) => i.family === "IPv4" && !i.address.startsWith("127."))
      .map((i) => i.address);
  } catch {
    return [];
  }
}

export function publishGameStreamService(hostname: string, port: number, log: Logger): { close(): void } {
  let mdns: ReturnType<typeof makeMdns>;
  try {
    mdns = makeMdns();
  } catch (error) {
    log.warn("mDNS unavailable; Moonlight can still add this host by address", {
      error: (error as Error).message,
    });
    return { close: () => {} };
  }
  const answer = () => {
    const addresses = lanAddresses();
    mdns.respond({ answers: gameStreamRecords(hostname, port, addresses) as never });
  };
  mdns.on("query", (query: { questions: Question[] }) => {
    if (query.questions.some((q) => wantsGameStream(q, hostname))) answer();
  });
  mdns.on("error", (error: Error) => log.debug("mDNS error", { error: error.message }));
  mdns.on("warning", (error: Error) => log.debug("mDNS warning", { error: error.message }));
  try {
    answer(); // unsolicited announcement at start
  } catch { /* no multicast route: answers still go out once queried */ }
  log.info("mDNS: announcing _nvstream._tcp", { instance: mdnsInstanceName(hostname), port });
  return {
    close: () => {
      try {
        mdns.destroy();
      } catch { /* already closed */ }
    },
  };
}
