/**
 * Input injection backends. Without a display the host records what clients send (bounded; each event is
 * logged at debug level as its kind and counts, never its key code or text); with an X display the native
 * core injects it via
 * XTest, translating Win32 virtual-key codes with `windowsVkToX11Keysym`.
 */
import type { InputEvent } from "../gamestream/input.ts";
import type { Logger } from "./log.ts";

export interface InputInjector {
  readonly name: string;
  inject(event: InputEvent): void;
  close(): void;
}

interface Waiter {
  predicate: (event: InputEvent) => boolean;
  resolve: (event: InputEvent) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export const RECORDING_INJECTOR_CAPACITY = 4096;

/** Keeps the last `capacity` events; 4096 is minutes of typing and a few seconds of mouse motion. */
export class RecordingInjector implements InputInjector {
  readonly name = "recording";
  readonly #capacity: number;
  #events: InputEvent[] = [];
  readonly #waiters = new Set<Waiter>();
  readonly #counts = new Map<InputEvent["kind"], number>();
  #total = 0;
  #closed = false;

  constructor(private readonly log?: Logger, capacity: number = RECORDING_INJECTOR_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity ${capacity} must be ≥ 1`);
    this.#capacity = capacity;
  }

  inject(event: InputEvent): void {
    if (this.#closed) return;
    this.#events.push(event);
    // Trim in batches so a full buffer costs amortised O(1) per event rather than a shift each time.
    if (this.#events.length >= 2 * this.#capacity) this.#events = this.#events.slice(-this.#capacity);
    const count = (this.#counts.get(event.kind) ?? 0) + 1;
    this.#counts.set(event.kind, count);
    this.#total++;
    // Counts only: key codes, text and pointer positions are what the user types and does.
    this.log?.debug("input event recorded", { kind: event.kind, count, total: this.#total });
    for (const waiter of this.#waiters) {
      if (waiter.predicate(event)) this.#settle(waiter).resolve(event);
    }
  }

  /** How many events of each kind were recorded since the start (not only the retained ones). */
  counts(): Partial<Record<InputEvent["kind"], number>> {
    return Object.fromEntries(this.#counts);
  }

  /** The retained events, oldest first (at most `capacity`). */
  events(): readonly InputEvent[] {
    return this.#events.length > this.#capacity ? this.#events.slice(-this.#capacity) : this.#events.slice();
  }

  /** Resolves with the first retained or future event matching `predicate`; rejects after `timeoutMs`. */
  waitFor(predicate: (event: InputEvent) => boolean, timeoutMs: number): Promise<InputEvent> {
    const seen = this.events().find(predicate);
    if (seen) return Promise.resolve(seen);
    if (this.#closed) return Promise.reject(new Error("recording injector is closed"));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#settle(waiter).reject(new Error(`no matching input event within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  /** Rejects pending waiters (clearing their timers) and ignores later events. */
  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters) {
      this.#settle(waiter).reject(new Error("recording injector is closed"));
    }
  }

  #settle(waiter: Waiter): Waiter {
    clearTimeout(waiter.timer);
    this.#waiters.delete(waiter);
    return waiter;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Win32 virtual-key code → X11 keysym

/** XF86keysym.h values for the browser/media keys. */
const XF86 = {
  AudioLowerVolume: 0x1008ff11,
  AudioMute: 0x1008ff12,
  AudioRaiseVolume: 0x1008ff13,
  AudioPlay: 0x1008ff14,
  AudioStop: 0x1008ff15,
  AudioPrev: 0x1008ff16,
  AudioNext: 0x1008ff17,
  HomePage: 0x1008ff18,
  Mail: 0x1008ff19,
  Search: 0x1008ff1b,
  Back: 0x1008ff26,
  Forward: 0x1008ff27,
  Stop: 0x1008ff28,
  Refresh: 0x1008ff29,
  Sleep: 0x1008ff2f,
  Favorites: 0x1008ff30,
  AudioMedia: 0x1008ff32,
  Calculator: 0x1008ff1d,
  Explorer: 0x1008ff5d,
} as const;

const VK_TO_KEYSYM: ReadonlyMap<number, number> = (() => {
  const map = new Map<number, number>([
    [0x08, 0xff08], // VK_BACK → BackSpace
    [0x09, 0xff09], // VK_TAB → Tab
    [0x0c, 0xff0b], // VK_CLEAR → Clear
    [0x0d, 0xff0d], // VK_RETURN → Return
    [0x10, 0xffe1], // VK_SHIFT → Shift_L
    [0x11, 0xffe3], // VK_CONTROL → Control_L
    [0x12, 0xffe9], // VK_MENU → Alt_L
    [0x13, 0xff13], // VK_PAUSE → Pause
    [0x14, 0xffe5], // VK_CAPITAL → Caps_Lock
    [0x1b, 0xff1b], // VK_ESCAPE → Escape
    [0x1c, 0xff23], // VK_CONVERT → Henkan
    [0x1d, 0xff22], // VK_NONCONVERT → Muhenkan
    [0x20, 0x0020], // VK_SPACE → space
    [0x21, 0xff55], // VK_PRIOR → Prior (Page Up)
    [0x22, 0xff56], // VK_NEXT → Next (Page Down)
    [0x23, 0xff57], // VK_END → End
    [0x24, 0xff50], // VK_HOME → Home
    [0x25, 0xff51], // VK_LEFT → Left
    [0x26, 0xff52], // VK_UP → Up
    [0x27, 0xff53], // VK_RIGHT → Right
    [0x28, 0xff54], // VK_DOWN → Down
    [0x29, 0xff60], // VK_SELECT → Select
    [0x2a, 0xff61], // VK_PRINT → Print
    [0x2b, 0xff62], // VK_EXECUTE → Execute
    [0x2c, 0xff61], // VK_SNAPSHOT → Print
    [0x2d, 0xff63], // VK_INSERT → Insert
    [0x2e, 0xffff], // VK_DELETE → Delete
    [0x2f, 0xff6a], // VK_HELP → Help
    [0x5b, 0xffeb], // VK_LWIN → Super_L
    [0x5c, 0xffec], // VK_RWIN → Super_R
    [0x5d, 0xff67], // VK_APPS → Menu
    [0x5f, XF86.Sleep], // VK_SLEEP
    [0x6a, 0xffaa], // VK_MULTIPLY → KP_Multiply
    [0x6b, 0xffab], // VK_ADD → KP_Add
    [0x6c, 0xffac], // VK_SEPARATOR → KP_Separator
    [0x6d, 0xffad], // VK_SUBTRACT → KP_Subtract
    [0x6e, 0xffae], // VK_DECIMAL → KP_Decimal
    [0x6f, 0xffaf], // VK_DIVIDE → KP_Divide
    [0x90, 0xff7f], // VK_NUMLOCK → Num_Lock
    [0x91, 0xff14], // VK_SCROLL → Scroll_Lock
    [0xa0, 0xffe1], // VK_LSHIFT → Shift_L
    [0xa1, 0xffe2], // VK_RSHIFT → Shift_R
    [0xa2, 0xffe3], // VK_LCONTROL → Control_L
    [0xa3, 0xffe4], // VK_RCONTROL → Control_R
    [0xa4, 0xffe9], // VK_LMENU → Alt_L
    [0xa5, 0xffea], // VK_RMENU → Alt_R
    [0xa6, XF86.Back], // VK_BROWSER_BACK
    [0xa7, XF86.Forward], // VK_BROWSER_FORWARD
    [0xa8, XF86.Refresh], // VK_BROWSER_REFRESH
    [0xa9, XF86.Stop], // VK_BROWSER_STOP
    [0xaa, XF86.Search], // VK_BROWSER_SEARCH
    [0xab, XF86.Favorites], // VK_BROWSER_FAVORITES
    [0xac, XF86.HomePage], // VK_BROWSER_HOME
    [0xad, XF86.AudioMute], // VK_VOLUME_MUTE
    [0xae, XF86.AudioLowerVolume], // VK_VOLUME_DOWN
    [0xaf, XF86.AudioRaiseVolume], // VK_VOLUME_UP
    [0xb0, XF86.AudioNext], // VK_MEDIA_NEXT_TRACK
    [0xb1, XF86.AudioPrev], // VK_MEDIA_PREV_TRACK
    [0xb2, XF86.AudioStop], // VK_MEDIA_STOP
    [0xb3, XF86.AudioPlay], // VK_MEDIA_PLAY_PAUSE
    [0xb4, XF86.Mail], // VK_LAUNCH_MAIL
    [0xb5, XF86.AudioMedia], // VK_LAUNCH_MEDIA_SELECT
    [0xb6, XF86.Explorer], // VK_LAUNCH_APP1 (usually "My Computer")
    [0xb7, XF86.Calculator], // VK_LAUNCH_APP2
    [0xba, 0x003b], // VK_OEM_1 → semicolon
    [0xbb, 0x003d], // VK_OEM_PLUS → equal (the unshifted key)
    [0xbc, 0x002c], // VK_OEM_COMMA → comma
    [0xbd, 0x002d], // VK_OEM_MINUS → minus
    [0xbe, 0x002e], // VK_OEM_PERIOD → period
    [0xbf, 0x002f], // VK_OEM_2 → slash
    [0xc0, 0x0060], // VK_OEM_3 → grave
    [0xdb, 0x005b], // VK_OEM_4 → bracketleft
    [0xdc, 0x005c], // VK_OEM_5 → backslash
    [0xdd, 0x005d], // VK_OEM_6 → bracketright
    [0xde, 0x0027], // VK_OEM_7 → apostrophe
    [0xe2, 0x003c], // VK_OEM_102 → less (the ISO key left of Z)
  ]);
  for (let i = 0; i <= 9; i++) map.set(0x30 + i, 0x30 + i); // '0'..'9' → 0..9
  for (let i = 0; i < 26; i++) map.set(0x41 + i, 0x61 + i); // 'A'..'Z' → a..z (shift comes from modifiers)
  for (let i = 0; i <= 9; i++) map.set(0x60 + i, 0xffb0 + i); // VK_NUMPAD0..9 → KP_0..KP_9
  for (let i = 0; i < 24; i++) map.set(0x70 + i, 0xffbe + i); // VK_F1..F24 → F1..F24
  return map;
})();

/**
 * The X11 keysym for a Win32 virtual-key code as Moonlight sends it in key events (US-layout positions; letters
 * map to the lowercase keysym, the shift state comes from the key events themselves). Only the low byte counts,
 * as in Sunshine, because Moonlight may set 0x8000. `undefined` for codes without a keysym.
 */
export function windowsVkToX11Keysym(vk: number): number | undefined {
  return VK_TO_KEYSYM.get(vk & 0xff);
}
