/** punktfunk: CLI entry. Everything else lives behind `host/cli.ts`. */
import { runCli } from "./host/cli.ts";

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}
