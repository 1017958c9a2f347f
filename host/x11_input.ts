/**
 * The XTest input backend: client input (`InputEvent`) injected into an X display through the native core.
 * Keys arrive as Win32 virtual-key codes and become X keysyms; absolute pointer positions arrive in the
 * client's reference frame and are scaled to the screen. XTest has no gamepads, touch or pens (those need
 * uinput), and typing arbitrary text needs keymap remapping; such events are counted as unsupported.
 */
import type { InputEvent } from "../gamestream/input.ts";
import type { InputInjector } from "./input_injection.ts";
import { windowsVkToX11Keysym } from "./input_injection.ts";
import type { Logger } from "./log.ts";
import { NativeError } from "./native_abi.ts";
import type { NativeCore, NativeInputEvent, X11InputInjectorHandle } from "./native_abi.ts";

export interface ScreenSize {
  width: number;
  height: number;
}

/** A resolution change shows up within this long (one XGetGeometry round trip per interval at most). */
const SCREEN_SIZE_REFRESH_MS = 1000;

/**
 * What `event` becomes on an X screen of `screen` pixels: zero or more native events, or null when XTest
 * cannot express it (gamepad, touch, pen, text, haptics, or a key without a keysym).
 */
export function nativeEventsFor(event: InputEvent, screen: ScreenSize): NativeInputEvent[] | null {
  switch (event.kind) {
    case "key": {
      const keysym = windowsVkToX11Keysym(event.keyCode);
      return keysym === undefined ? null : [{ kind: "key", keysym, down: event.down }];
    }
    case "mouse_absolute": {
      if (event.refWidth <= 0 || event.refHeight <= 0) return [];
      const scale = (value: number, reference: number, extent: number) =>
        Math.min(extent - 1, Math.max(0, Math.round(value * extent / reference)));
      return [{
        kind: "mouse_abs",
        x: scale(event.x, event.refWidth, screen.width),
        y: scale(event.y, event.refHeight, screen.height),
      }];
    }
    case "mouse_relative":
      return [{ kind: "mouse_rel", dx: event.dx, dy: event.dy }];
    case "mouse_button":
      return event.button >= 1 && event.button <= 5
        ? [{ kind: "button", button: event.button, down: event.down }]
        : null;
    case "scroll":
      return [{ kind: "scroll", vertical: event.amount, horizontal: 0 }];
    case "hscroll":
      return [{ kind: "scroll", vertical: 0, horizontal: event.amount }];
    default:
      return null;
  }
}

export interface X11InputStats {
  injected: number;
  unsupported: number;
  failed: number;
}

export class X11InputInjector implements InputInjector {
  readonly name = "xtest";
  readonly stats: X11InputStats = { injected: 0, unsupported: 0, failed: 0 };
  #screen: ScreenSize;
  #screenCheckedMs: number;
  #lost = false;
  readonly #unsupportedLogged = new Set<string>();

  constructor(
    private readonly handle: X11InputInjectorHandle,
    readonly display: string,
    private readonly log?: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#screen = handle.screenSize();
    this.#screenCheckedMs = now();
  }

  /** Connects to `display` (off the JS thread); rejects with the reason when there is no X server or XTEST. */
  static async open(native: NativeCore, display: string, log?: Logger): Promise<X11InputInjector> {
    const handle = await native.openX11Input(display);
    try {
      return new X11InputInjector(handle, display, log);
    } catch (error) {
      handle.close();
      throw error;
    }
  }

  inject(event: InputEvent): void {
    if (this.#lost) return;
    if (event.kind === "mouse_absolute") this.#refreshScreenSize();
    const translated = nativeEventsFor(event, this.#screen);
    if (translated === null) {
      this.stats.unsupported++;
      if (!this.#unsupportedLogged.has(event.kind)) {
        this.#unsupportedLogged.add(event.kind);
        this.log?.debug("input event not injectable with XTest", { kind: event.kind });
      }
      return;
    }
    for (const native of translated) {
      try {
        this.handle.inject(native);
        this.stats.injected++;
      } catch (error) {
        this.#failed(error, event.kind);
      }
    }
  }

  /** Where the pointer is now (for status and tests). */
  pointer(): { x: number; y: number; buttonMask: number } {
    return this.handle.pointer();
  }

  close(): void {
    this.handle.close();
  }

  #refreshScreenSize(): void {
    if (this.now() - this.#screenCheckedMs < SCREEN_SIZE_REFRESH_MS) return;
    this.#screenCheckedMs = this.now();
    try {
      this.#screen = this.handle.screenSize();
    } catch (error) {
      this.#failed(error);
    }
  }

  #failed(error: unknown, kind?: InputEvent["kind"]): void {
    this.stats.failed++;
    const message = error instanceof Error ? error.message : String(error);
    // A broken X connection never recovers; keep the session going without input rather than erroring per event.
    if (/\blost\b/.test(message)) {
      this.#lost = true;
      this.log?.warn("X11 input injection stopped: the X connection is gone", {
        display: this.display,
        message,
      });
    } else {
      // Not the message: it names the keysym, and keystrokes never reach a log.
      this.log?.debug("input event not injected", {
        kind: kind ?? "screen size query",
        status: error instanceof NativeError ? error.status : undefined,
        failed: this.stats.failed,
      });
    }
  }
}
