import { PGlite } from "@electric-sql/pglite";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { migrateToLatest } from "./migrations.js";
import { createPglitePool } from "./pglite-pool.js";
import type { Database } from "./schema.js";

export type Db = Kysely<Database>;

/** Where the system of record lives. */
export type DatabaseTarget =
  | { readonly kind: "postgres"; readonly url: string; readonly poolSize?: number }
  | { readonly kind: "pglite"; readonly dataDir: string };

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/**
 * Opens the database and migrates it. bigint columns come back as JS numbers
 * from both drivers (ids, milliseconds and bytes all stay far below 2^53).
 * A database that cannot be reached fails with the variable's name in the message.
 */
export async function openDatabase(target: DatabaseTarget): Promise<Db> {
  let db: Db;
  if (target.kind === "postgres") {
    const pool = new pg.Pool({
      connectionString: target.url,
      max: target.poolSize ?? 10,
      connectionTimeoutMillis: 5_000,
      types: {
        getTypeParser: ((oid: number, format?: string) =>
          oid === INT8_OID || oid === NUMERIC_OID ? Number : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
      },
    });
    // A client losing its server (a Postgres restart) must not crash the process: idle clients
    // report through the pool, and a checked-out client between queries reports on itself.
    // The query in flight, if any, fails and the API answers UNAVAILABLE.
    pool.on("error", () => {});
    pool.on("connect", (client) => client.on("error", () => {}));
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    try {
      await pool.query("SELECT 1");
    } catch (cause) {
      await db.destroy();
      throw new Error(`cannot reach Postgres at DATABASE_URL (${redact(target.url)}): ${(cause as Error).message}`, { cause });
    }
  } else {
    const pglite = await PGlite.create(target.dataDir, {
      parsers: { [INT8_OID]: (v: string) => Number(v), [NUMERIC_OID]: (v: string) => Number(v) },
    });
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: createPglitePool(pglite) }) });
  }
  await migrateToLatest(db);
  return db;
}

/** Hides the password in a connection string for error messages and logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable URL>";
  }
}
