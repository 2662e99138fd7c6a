import { existsSync } from "node:fs";

/** Debian's chromium (`.ci/run` installs it); Playwright drives it, nothing is downloaded. */
export const chromiumPath = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((path) =>
  existsSync(path),
);

/** Tests run as root, where chromium's sandbox cannot start; /dev/shm is small in containers. */
export const browserArgs = ["--no-sandbox", "--disable-dev-shm-usage"];
