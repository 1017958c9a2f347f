/**
 * The app catalogue a GameStream host offers in `/applist` and accepts in `/launch?appid=`
 * (docs/gamestream-protocol.md §2.5, §4.1).
 *
 * Clients store app IDs as a signed 32-bit `int` and `appid=0` / `currentgame=0` mean "no app", so every
 * ID is a positive 31-bit integer. Sunshine derives its IDs from a CRC32 of the app's name; the doc fixes no
 * value for "Desktop", so this host uses the stable, readable ID 1 for it.
 */

export interface GameStreamApp {
  /** 1..2^31−1, unique within the catalogue. */
  readonly id: number;
  /** Shown by the client; may be empty (MQT shows ""). Escaped when rendered. */
  readonly title: string;
  /** `<IsHdrSupported>`: Sunshine sets it when the host can encode HEVC Main10. */
  readonly hdrSupported: boolean;
}

export const DESKTOP_APP_ID = 1;
export const DESKTOP_APP_TITLE = "Desktop";
/** Largest value a client's signed 32-bit `int` holds. */
export const MAX_APP_ID = 0x7fff_ffff;
/** Titles longer than this are refused; box-art labels are a few dozen characters. */
export const MAX_APP_TITLE_LENGTH = 256;

export type AppCatalogueErrorCode = "invalid_id" | "duplicate_id" | "invalid_title";

export class AppCatalogueError extends Error {
  override readonly name = "AppCatalogueError";
  constructor(readonly code: AppCatalogueErrorCode, detail: string) {
    super(`${code}: ${detail}`);
  }
}

export function isValidAppId(id: number): boolean {
  return Number.isInteger(id) && id >= 1 && id <= MAX_APP_ID;
}

/** An immutable list of apps that always starts with "Desktop". */
export class AppCatalogue {
  readonly apps: readonly GameStreamApp[];
  readonly #byId: ReadonlyMap<number, GameStreamApp>;

  constructor(apps: readonly GameStreamApp[]) {
    const byId = new Map<number, GameStreamApp>();
    for (const app of apps) {
      if (!isValidAppId(app.id)) {
        throw new AppCatalogueError("invalid_id", `app id ${app.id} is not in 1..${MAX_APP_ID}`);
      }
      if (byId.has(app.id)) throw new AppCatalogueError("duplicate_id", `app id ${app.id} appears twice`);
      if (app.title.length > MAX_APP_TITLE_LENGTH) {
        throw new AppCatalogueError(
          "invalid_title",
          `title of app ${app.id} exceeds ${MAX_APP_TITLE_LENGTH} characters`,
        );
      }
      byId.set(app.id, Object.freeze({ id: app.id, title: app.title, hdrSupported: app.hdrSupported }));
    }
    const desktop = byId.get(DESKTOP_APP_ID);
    if (desktop === undefined) {
      throw new AppCatalogueError("invalid_id", `app id ${DESKTOP_APP_ID} (Desktop) is missing`);
    }
    if (desktop.title !== DESKTOP_APP_TITLE) {
      throw new AppCatalogueError(
        "invalid_id",
        `app id ${DESKTOP_APP_ID} is reserved for "${DESKTOP_APP_TITLE}"`,
      );
    }
    this.#byId = byId;
    this.apps = Object.freeze([...byId.values()]);
  }

  /** The app with this ID, or null (unknown IDs ⇒ 404 "Failed to start the specified application"). */
  findApp(id: number): GameStreamApp | null {
    return this.#byId.get(id) ?? null;
  }
}

/** Builds a catalogue of "Desktop" followed by `extraApps`. */
export function createAppCatalogue(
  extraApps: readonly GameStreamApp[] = [],
  options: { desktopHdrSupported?: boolean } = {},
): AppCatalogue {
  const desktop: GameStreamApp = {
    id: DESKTOP_APP_ID,
    title: DESKTOP_APP_TITLE,
    hdrSupported: options.desktopHdrSupported ?? false,
  };
  return new AppCatalogue([desktop, ...extraApps]);
}
