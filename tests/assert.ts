/** Assertions for every test in the repository, on node:assert (JSR's @std/assert is out of reach). */
import nodeAssert from "node:assert/strict";

export function assert(condition: unknown, message?: string): asserts condition {
  nodeAssert.ok(condition, message);
}

export function assertEquals<T>(actual: unknown, expected: T, message?: string): asserts actual is T {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

export function assertNotEquals(actual: unknown, expected: unknown, message?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, message);
}

export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  nodeAssert.match(actual, pattern, message);
}

/** Asserts `fn` throws; returns the error so callers can inspect it. */
export function assertThrows(fn: () => unknown, pattern?: RegExp, message?: string): Error {
  try {
    fn();
  } catch (error) {
    if (pattern) nodeAssert.match(String((error as Error).message ?? error), pattern, message);
    return error as Error;
  }
  throw new nodeAssert.AssertionError({ message: message ?? "expected a throw", actual: undefined });
}

export async function assertRejects(
  fn: () => Promise<unknown>,
  pattern?: RegExp,
  message?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (error) {
    if (pattern) nodeAssert.match(String((error as Error).message ?? error), pattern, message);
    return error as Error;
  }
  throw new nodeAssert.AssertionError({ message: message ?? "expected a rejection", actual: undefined });
}
