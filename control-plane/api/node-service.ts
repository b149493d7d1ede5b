import type { ServiceImpl } from "@connectrpc/connect";
import { NodeService } from "../../gen/ngpu/v1/node_pb.js";
import { loadNodeLoad } from "../db/attempts.js";
import type { Db } from "../db/database.js";
import type { Bus } from "../bus/bus.js";
import { drainMessage } from "../dispatch/assignment.js";
import { revokeNode } from "../db/nodes.js";
import { requeueLostAttempts } from "../db/tasks.js";
import { stateSignal } from "../bus/task-events.js";
import type { NodeRow } from "../db/schema.js";
import { invalidArgument, NgpuError, notFound } from "../errors.js";
import type { TelemetryStore } from "../monitor/telemetry-store.js";
import { type Authenticate, requireNotWidget, requireOperator } from "./auth.js";
import { nodeToProto } from "./convert.js";
import { checkPageSize, checkText, decodePageToken, encodePageToken, requireString } from "./validate.js";

export interface NodeServiceDeps {
  readonly db: Db;
  readonly bus: Bus;
  readonly authenticate: Authenticate;
  readonly telemetry: TelemetryStore;
}

/**
 * The network's nodes are visible to every workspace (like a GPU marketplace's
 * listing); which tasks run on them is not: only counts are shown.
 */
export function createNodeService(deps: NodeServiceDeps): ServiceImpl<typeof NodeService> {
  const { db, bus, authenticate, telemetry } = deps;

  async function withLiveState(rows: NodeRow[]) {
    if (rows.length === 0) return [];
    const load = await loadNodeLoad(
      db,
      rows.map((r) => r.id),
    );
    return rows.map((row) => {
      const l = load.get(row.id)!;
      return nodeToProto(row, {
        telemetry: row.state === "ONLINE" || row.state === "DRAINING" ? telemetry.latest(row.id) : [],
        busyGpuIndices: l.busyGpuIndices,
        runningTasks: l.running,
      });
    });
  }

  return {
    async listNodes(req, ctx) {
      requireNotWidget(await authenticate(ctx), "listing nodes");
      const limit = checkPageSize("page_size", req.pageSize, 100);
      const cursor = decodePageToken("page_token", req.pageToken, "i", "string");
      let query = db.selectFrom("nodes").selectAll().orderBy("id").limit(limit + 1);
      if (!req.includeOffline) query = query.where("state", "in", ["ONLINE", "DRAINING"]);
      if (cursor) query = query.where("id", ">", String(cursor.i));
      const rows = await query.execute();
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { nodes: await withLiveState(page), nextPageToken: rows.length > limit && last ? encodePageToken({ i: last.id }) : "" };
    },

    async getNode(req, ctx) {
      requireNotWidget(await authenticate(ctx), "reading a node");
      const id = requireString("node_id", req.nodeId, 64);
      const row = await db.selectFrom("nodes").selectAll().where("id", "=", id).executeTakeFirst();
      if (!row) throw notFound("node", id);
      const [node] = await withLiveState([row]);
      return { node: node! };
    },

    async revokeNode(req, ctx) {
      const principal = await authenticate(ctx);
      requireOperator(principal, "revoking a node");
      const id = requireString("node_id", req.nodeId, 64);
      if (req.reason.length > 500) throw invalidArgument("reason", "must be at most 500 characters");
      const revoked = await revokeNode(db, id, checkText("reason", req.reason));
      if (!revoked) throw notFound("node", id);
      // Whichever replica holds its stream ends it; its work runs elsewhere.
      bus.publishNodeRevoked(id);
      const changed = await requeueLostAttempts(db, revoked.attemptIds, "the node was revoked by the operator");
      for (const t of changed) bus.publishTaskEvent(t.id, stateSignal(t.id));
      if (changed.length > 0) bus.wakeScheduler();
      const row = await db.selectFrom("nodes").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
      const [node] = await withLiveState([row]);
      return { node: node! };
    },

    async drainNode(req, ctx) {
      const principal = await authenticate(ctx);
      requireOperator(principal, "draining a node");
      const id = requireString("node_id", req.nodeId, 64);
      if (req.graceMs > 3_600_000) throw invalidArgument("grace_ms", "must be at most 3600000");
      const row = await db
        .updateTable("nodes")
        .set({ state: "DRAINING" })
        .where("id", "=", id)
        .where("state", "in", ["ONLINE", "DRAINING"])
        .returningAll()
        .executeTakeFirst();
      if (!row) {
        const exists = await db.selectFrom("nodes").select("state").where("id", "=", id).executeTakeFirst();
        if (!exists) throw notFound("node", id);
        throw new NgpuError("FAILED_PRECONDITION", `node ${JSON.stringify(id)} is ${exists.state.toLowerCase()}: only a connected node can be drained`);
      }
      bus.sendToNode(id, drainMessage(req.graceMs || 30_000));
      const [node] = await withLiveState([row]);
      return { node: node! };
    },
  };
}
