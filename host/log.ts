/**
 * Structured logger: human-readable lines on a terminal, JSON lines otherwise (journald, files,
 * log shippers). Native-core records are fed in through `Logger.record` with their own target.
 */

export const LOG_LEVELS = ["off", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFields = Record<string, unknown>;

export interface LogRecord {
  timeMs: number;
  level: Exclude<LogLevel, "off">;
  target: string;
  msg: string;
  fields?: LogFields;
}

export type LogFormat = "human" | "json";
export type LogSink = (line: string) => void;

/**
 * Whether the `count`-th occurrence of a repeated event is logged: the 1st, 2nd, 4th, 8th …, so a flood of
 * refusals or failures costs log lines logarithmic in its size while the counters keep the whole total.
 */
export function isLoggedOccurrence(count: number): boolean {
  return count > 0 && (count & (count - 1)) === 0;
}

export function parseLogLevel(text: string): LogLevel {
  const level = text.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new Error(`unknown log level "${text}" (expected one of ${LOG_LEVELS.join(", ")})`);
}

export function levelRank(level: LogLevel): number {
  return LOG_LEVELS.indexOf(level);
}

export function formatRecord(record: LogRecord, format: LogFormat): string {
  if (format === "json") {
    return JSON.stringify({
      t: new Date(record.timeMs).toISOString(),
      level: record.level,
      target: record.target,
      msg: record.msg,
      ...record.fields,
    });
  }
  const time = new Date(record.timeMs).toISOString().slice(11, 23);
  const fields = record.fields && Object.keys(record.fields).length > 0
    ? " " +
      Object.entries(record.fields).map(([k, v]) => `${escapeControlCharacters(k)}=${formatFieldValue(v)}`)
        .join(" ")
    : "";
  const head = `${time} ${record.level.toUpperCase().padEnd(5)} ${escapeControlCharacters(record.target)}`;
  return `${head}: ${escapeControlCharacters(record.msg)}${fields}`;
}

/**
 * Characters that end a line, steer a terminal or reorder text on screen: C0 controls, DEL, C1 controls,
 * the Unicode line/paragraph separators and the bidirectional embedding/override/isolate controls. In
 * the human format they would let a logged string forge log lines or rewrite the terminal.
 */
const UNSAFE_IN_A_LINE = "\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069";
/** What JSON.stringify leaves raw: everything above except C0 controls (which it escapes). */
const RAW_AFTER_JSON = new RegExp(`[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]`, "g");
const BACKSLASH_OR_UNSAFE = new RegExp(`[\\\\${UNSAFE_IN_A_LINE}]`, "g");
const NEEDS_QUOTES = new RegExp(`[\\s"=\\\\${UNSAFE_IN_A_LINE}]`);
const SHORT_ESCAPES: Readonly<Record<string, string>> = {
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

function unicodeEscape(character: string): string {
  return `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/**
 * Escapes backslashes and the characters above the way a JSON string would (`\n`, `\u001b`, …), so a
 * message stays one inert line and the original is recoverable.
 */
export function escapeControlCharacters(text: string): string {
  return text.replace(BACKSLASH_OR_UNSAFE, (c) => SHORT_ESCAPES[c] ?? unicodeEscape(c));
}

function formatFieldValue(value: unknown): string {
  if (typeof value === "string") return NEEDS_QUOTES.test(value) ? jsonLine(value) : value;
  if (value instanceof Error) return jsonLine(value.message);
  if (typeof value === "bigint") return String(value);
  return jsonLine(value) ?? escapeControlCharacters(String(value));
}

/** JSON text with the line-unsafe characters JSON.stringify leaves raw escaped as well. */
function jsonLine(value: unknown): string {
  return JSON.stringify(value)?.replace(RAW_AFTER_JSON, unicodeEscape);
}

export class Logger {
  #state: { level: LogLevel; format: LogFormat; sink: LogSink };

  constructor(
    readonly target: string,
    state: { level: LogLevel; format: LogFormat; sink: LogSink },
  ) {
    this.#state = state;
  }

  /** A logger for a sub-area that shares level, format and sink with this one. */
  child(target: string): Logger {
    return new Logger(target, this.#state);
  }

  configure(options: Partial<{ level: LogLevel; format: LogFormat; sink: LogSink }>): void {
    Object.assign(this.#state, options);
  }

  get level(): LogLevel {
    return this.#state.level;
  }

  enabled(level: Exclude<LogLevel, "off">): boolean {
    return levelRank(level) <= levelRank(this.#state.level);
  }

  record(record: LogRecord): void {
    if (!this.enabled(record.level)) return;
    this.#state.sink(formatRecord(record, this.#state.format));
  }

  #log(level: Exclude<LogLevel, "off">, msg: string, fields?: LogFields): void {
    this.record({ timeMs: Date.now(), level, target: this.target, msg, fields });
  }

  error(msg: string, fields?: LogFields): void {
    this.#log("error", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.#log("warn", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.#log("info", msg, fields);
  }
  debug(msg: string, fields?: LogFields): void {
    this.#log("debug", msg, fields);
  }
  trace(msg: string, fields?: LogFields): void {
    this.#log("trace", msg, fields);
  }
}

const stderrEncoder = new TextEncoder();
function writeStderr(line: string): void {
  Deno.stderr.writeSync(stderrEncoder.encode(line + "\n"));
}

/** The process-wide root logger; `main.ts` configures level and format once at start. */
export const rootLogger: Logger = new Logger("punktfunk", {
  level: "info",
  format: Deno.stderr.isTerminal() ? "human" : "json",
  sink: writeStderr,
});
