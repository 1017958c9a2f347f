/**
 * The test-only way to inject native video faults into a running `serve`: the environment variable
 * `PUNKTFUNK_TEST_VIDEO_FAULT` holding a JSON object, e.g. `{"fail_encoder_after_frames":120}`. Only whoever starts
 * the process can set it; nothing on the network reaches it. Pure: the caller passes the variable's value.
 */
import type { VideoFaultInjection } from "./native_abi.ts";

export const TEST_VIDEO_FAULT_ENV = "PUNKTFUNK_TEST_VIDEO_FAULT";

const FAULT_KEYS = ["fail_encoder_after_frames", "kill_worker_after_frames"] as const;
/** A day of frames at 480 fps: far beyond any test, small enough to stay an exact integer everywhere. */
const MAX_FAULT_FRAMES = 480 * 86_400;

export class TestFaultError extends Error {
  override name = "TestFaultError";
}

/** null when unset or empty; a TestFaultError naming the problem for anything but a valid fault object. */
export function parseVideoFault(text: string | undefined): VideoFaultInjection | null {
  if (text === undefined || text.trim() === "") return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new TestFaultError(`${TEST_VIDEO_FAULT_ENV} is not JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TestFaultError(`${TEST_VIDEO_FAULT_ENV} must be a JSON object`);
  }
  const fault: VideoFaultInjection = {};
  for (const [key, frames] of Object.entries(value)) {
    if (!(FAULT_KEYS as readonly string[]).includes(key)) {
      throw new TestFaultError(
        `${TEST_VIDEO_FAULT_ENV}: unknown fault "${key}" (known: ${FAULT_KEYS.join(", ")})`,
      );
    }
    if (typeof frames !== "number" || !Number.isInteger(frames) || frames < 1 || frames > MAX_FAULT_FRAMES) {
      throw new TestFaultError(
        `${TEST_VIDEO_FAULT_ENV}: ${key} must be an integer from 1 to ${MAX_FAULT_FRAMES}`,
      );
    }
    fault[key as keyof VideoFaultInjection] = frames;
  }
  return Object.keys(fault).length > 0 ? fault : null;
}
