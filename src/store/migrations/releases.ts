/**
 * runyard's releases, oldest first, each with the newest migration it ships (docs/upgrading.md,
 * CHANGELOG.md). A migration belongs to the first release whose newest migration sorts at or after
 * it; one newer than the last release belongs to the next. `runyard --version` is the last release's
 * version (a test holds package.json to it), so adding a migration means adding a release here.
 */
export interface Release {
  version: string;
  /** The newest migration this release applies: its schema level is this name's number. */
  newestMigration: string;
  /** The commit the release was cut from, for the upgrade tests that build it from history. */
  commit: string;
}

export const releases: readonly Release[] = [
  {
    version: "0.1.0",
    newestMigration: "0044_spend_hold_after_seq",
    commit: "64d5a138f7621fdf30a3e6fd8917752878365b5e",
  },
  { version: "0.2.0", newestMigration: "0045_schema_levels", commit: "" },
];

/**
 * The first migration written to be safe beside the release before it. Each earlier one counts as
 * one a running older replica cannot live with: none was checked for it.
 */
export const firstCheckedMigration = "0045_schema_levels";

/** A migration's schema level: the number its name starts with (`0045_schema_levels` is 45). */
export function migrationLevel(name: string): number {
  const level = Number.parseInt(name, 10);
  if (!Number.isInteger(level) || level <= 0)
    throw new Error(`migration ${name} does not start with its number`);
  return level;
}

/** The release that ships schema level `level`, or undefined for one newer than every release. */
export function releaseWith(level: number): Release | undefined {
  return releases.find((release) => migrationLevel(release.newestMigration) >= level);
}

/** The newest release whose schema is older than `level`; undefined below the first release. */
export function releaseBefore(level: number): Release | undefined {
  return releases.findLast((release) => migrationLevel(release.newestMigration) < level);
}

/** How a schema level is named to an operator: the release that writes it, or the migration. */
export function describeLevel(level: number): string {
  const release = releaseWith(level);
  return release
    ? `runyard ${release.version}`
    : `a runyard newer than ${releases.at(-1)?.version} (schema level ${level})`;
}
