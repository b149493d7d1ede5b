import { type Kysely, type MigrationProvider, Migrator } from "kysely";
import { foundationMigrations } from "./migrations/foundation.js";
import { meteringMigrations } from "./migrations/metering.js";
import { webhookMigrations } from "./migrations/webhooks.js";
import { securityMigrations } from "./migrations/security.js";
import { poolMigrations } from "./migrations/pools.js";

/**
 * Migrations live in the code, not in files beside it, so a bundled control
 * plane needs nothing on disk. Each capability keeps its own in
 * `migrations/<capability>.ts`, named `NNNN_what`; append new ones, never edit
 * a shipped one.
 */
const migrations = {
  ...foundationMigrations,
  ...meteringMigrations,
  ...webhookMigrations,
  ...securityMigrations,
  ...poolMigrations,
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

/** Brings the schema up to date; fails loudly (with the migration's name) if one fails. */
export async function migrateToLatest(db: Kysely<any>): Promise<void> {
  const migrator = new Migrator({ db, provider, allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === "Error");
  if (error || failed) {
    const cause = error instanceof Error ? error : new Error(String(error));
    throw new Error(`database migration ${failed?.migrationName ?? ""} failed: ${cause.message}`, { cause });
  }
}
