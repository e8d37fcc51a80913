// What the browser tests share: where the binary and Chromium are, where screenshots go, and
// polling for a condition with a deadline (a page and the API it shows are read by separate
// polls, so a test waits for what it expects instead of reading once).
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, "../..");
export const BIN = process.env.PENTAFLOW_BIN || path.join(root, "target/debug/pentaflow");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const SHOTS = process.env.PENTAFLOW_SCREENSHOT_DIR;

/** Calls `fn` every `everyMs` until it returns something truthy (returned), or throws after
 * `timeoutMs` naming `what` and the last error `fn` threw. */
export async function waitFor(what, fn, timeoutMs = 15000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? ": " + last.message : ""}`);
}
