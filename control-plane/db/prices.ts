import { sql } from "kysely";
import type { Db } from "./database.js";

export interface PriceRow {
  readonly gpuModel: string;
  readonly nanoUsdPerGpuSecond: number;
  readonly effectiveFrom: Date;
  readonly inForce: boolean;
}

/** Every price, by model (case-insensitively), newest first; inForce marks the one applying now. */
export async function listPrices(db: Db): Promise<PriceRow[]> {
  const rows = await sql<{ gpu_model: string; nano_usd_per_gpu_second: number; effective_from: Date; in_force: boolean }>`
    SELECT gpu_model, nano_usd_per_gpu_second, effective_from,
      effective_from = max(effective_from) FILTER (WHERE effective_from <= now()) OVER (PARTITION BY lower(gpu_model)) AS in_force
    FROM gpu_prices ORDER BY lower(gpu_model), effective_from DESC`.execute(db);
  return rows.rows.map((r) => ({ gpuModel: r.gpu_model, nanoUsdPerGpuSecond: Number(r.nano_usd_per_gpu_second), effectiveFrom: r.effective_from, inForce: r.in_force === true }));
}

/** The price of a GPU model in force at a moment; undefined when the model has none. */
export async function priceAt(db: Db, gpuModel: string, at: Date): Promise<{ gpuModel: string; nanoUsdPerGpuSecond: number } | undefined> {
  const row = await db
    .selectFrom("gpu_prices")
    .select(["gpu_model", "nano_usd_per_gpu_second"])
    .where(sql<boolean>`lower(gpu_model) = lower(${gpuModel})`)
    .where("effective_from", "<=", at)
    .orderBy("effective_from", "desc")
    .limit(1)
    .executeTakeFirst();
  return row ? { gpuModel: row.gpu_model, nanoUsdPerGpuSecond: Number(row.nano_usd_per_gpu_second) } : undefined;
}

/**
 * Sets a model's price from effectiveFrom on (callers refuse moments in the
 * past: recorded usage keeps its price either way, but a back-dated price would
 * make the book disagree with the bills). The same model and moment twice: the last wins.
 */
export async function setPrice(db: Db, gpuModel: string, nanoUsdPerGpuSecond: number, effectiveFrom: Date | "now"): Promise<PriceRow> {
  const row = await db
    .insertInto("gpu_prices")
    .values({ gpu_model: gpuModel, nano_usd_per_gpu_second: nanoUsdPerGpuSecond, effective_from: effectiveFrom === "now" ? (sql`now()` as never) : effectiveFrom })
    .onConflict((oc) => oc.columns(["gpu_model", "effective_from"]).doUpdateSet({ nano_usd_per_gpu_second: nanoUsdPerGpuSecond }))
    .returning(["gpu_model", "nano_usd_per_gpu_second", "effective_from", sql<boolean>`effective_from <= now()`.as("in_force")])
    .executeTakeFirstOrThrow();
  return { gpuModel: row.gpu_model, nanoUsdPerGpuSecond: Number(row.nano_usd_per_gpu_second), effectiveFrom: row.effective_from, inForce: row.in_force };
}

export async function getProviderShare(db: Db): Promise<number> {
  const row = await db.selectFrom("billing_settings").select("provider_share_basis_points").executeTakeFirstOrThrow();
  return row.provider_share_basis_points;
}

/** Applies to usage recorded from now on; recorded usage keeps the share it was written with. */
export async function setProviderShare(db: Db, basisPoints: number): Promise<number> {
  await db.updateTable("billing_settings").set({ provider_share_basis_points: basisPoints, updated_at: sql`now()` as never }).execute();
  return basisPoints;
}
