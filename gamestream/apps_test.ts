import { assert, assertEquals, assertThrows } from "../tests/assert.ts";
import {
  AppCatalogue,
  AppCatalogueError,
  createAppCatalogue,
  DESKTOP_APP_ID,
  isValidAppId,
  MAX_APP_ID,
  MAX_APP_TITLE_LENGTH,
} from "./apps.ts";

Deno.test("the catalogue always starts with Desktop (id 1)", () => {
  const catalogue = createAppCatalogue();
  assertEquals(catalogue.apps, [{ id: DESKTOP_APP_ID, title: "Desktop", hdrSupported: false }]);
  assertEquals(catalogue.findApp(1)?.title, "Desktop");
  assertEquals(createAppCatalogue([], { desktopHdrSupported: true }).findApp(1)?.hdrSupported, true);
});

Deno.test("findApp finds extra apps and returns null for unknown ids", () => {
  const catalogue = createAppCatalogue([
    { id: 2, title: "Steam Big Picture", hdrSupported: true },
    { id: MAX_APP_ID, title: "", hdrSupported: false },
  ]);
  assertEquals(catalogue.apps.map((app) => app.id), [1, 2, MAX_APP_ID]);
  assertEquals(catalogue.findApp(2)?.title, "Steam Big Picture");
  assertEquals(catalogue.findApp(MAX_APP_ID)?.title, "");
  assertEquals(catalogue.findApp(0), null);
  assertEquals(catalogue.findApp(3), null);
  assertEquals(catalogue.findApp(1.5), null);
});

Deno.test("invalid catalogues are rejected with typed errors", () => {
  const cases: Array<[() => unknown, string]> = [
    [() => createAppCatalogue([{ id: 0, title: "zero", hdrSupported: false }]), "invalid_id"],
    [() => createAppCatalogue([{ id: -5, title: "neg", hdrSupported: false }]), "invalid_id"],
    [() => createAppCatalogue([{ id: MAX_APP_ID + 1, title: "big", hdrSupported: false }]), "invalid_id"],
    [() => createAppCatalogue([{ id: 2.5, title: "frac", hdrSupported: false }]), "invalid_id"],
    [() => createAppCatalogue([{ id: 1, title: "Desktop", hdrSupported: false }]), "duplicate_id"],
    [
      () => createAppCatalogue([{ id: 9, title: "x".repeat(MAX_APP_TITLE_LENGTH + 1), hdrSupported: false }]),
      "invalid_title",
    ],
    [() => new AppCatalogue([{ id: 2, title: "no desktop", hdrSupported: false }]), "invalid_id"],
    [() => new AppCatalogue([{ id: 1, title: "Not Desktop", hdrSupported: false }]), "invalid_id"],
  ];
  for (const [build, code] of cases) {
    const error = assertThrows(build);
    assert(error instanceof AppCatalogueError);
    assertEquals(error.code, code);
  }
});

Deno.test("app ids are positive signed 32-bit integers", () => {
  assert(isValidAppId(1));
  assert(isValidAppId(0x7fff_ffff));
  assert(!isValidAppId(0));
  assert(!isValidAppId(0x8000_0000));
  assert(!isValidAppId(Number.NaN));
});

Deno.test("the catalogue is frozen against later mutation", () => {
  const extra = { id: 5, title: "Game", hdrSupported: false };
  const catalogue = createAppCatalogue([extra]);
  extra.title = "changed";
  assertEquals(catalogue.findApp(5)?.title, "Game");
  assert(Object.isFrozen(catalogue.apps));
});
