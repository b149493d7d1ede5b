import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { PoolMemberState, PoolService, type PoolStatus, PoolStatusSchema, ScalingEventSchema } from "../../gen/ngpu/v1/pool_pb.js";
import { findApp } from "../db/apps.js";
import type { Db } from "../db/database.js";
import { listScalingEvents, loadAppLoad, loadDesiredNodes, loadMembers, meanColdStartMs } from "../db/pools.js";
import type { AppRow } from "../db/schema.js";
import { type Authenticate, requireApp } from "./auth.js";
import { poolPolicyToProto } from "./convert.js";
import { checkPageSize, decodePageToken, encodePageToken, requireString } from "./validate.js";

export interface PoolServiceDeps {
  readonly db: Db;
  readonly authenticate: Authenticate;
}

const MEMBER_STATES: Record<string, PoolMemberState> = {
  cold_starting: PoolMemberState.COLD_STARTING,
  warm: PoolMemberState.WARM,
  releasing: PoolMemberState.RELEASING,
};

/** What an app's pool holds now: read from the database, so any replica answers the same. */
export async function loadPoolStatus(db: Db, app: AppRow): Promise<PoolStatus> {
  const [members, load, desired, meanColdStart] = await Promise.all([
    loadMembers(db, [app.id]),
    loadAppLoad(db, [app.id]),
    loadDesiredNodes(db, app.id),
    meanColdStartMs(db, app.id),
  ]);
  const l = load.get(app.id)!;
  const count = (state: string) => members.filter((m) => m.state === state).length;
  return create(PoolStatusSchema, {
    appId: app.id,
    appName: app.name,
    ...(app.pool_policy ? { policy: poolPolicyToProto(app.pool_policy) } : {}),
    desiredNodes: app.pool_policy ? desired : 0,
    warmNodes: count("warm"),
    busyNodes: members.filter((m) => m.state === "warm" && m.running > 0).length,
    coldStartingNodes: count("cold_starting"),
    releasingNodes: count("releasing"),
    queuedTasks: l.queued,
    runningTasks: l.running,
    oldestWaitMs: BigInt(Math.round(l.oldestWaitMs ?? 0)),
    meanColdStartMs: BigInt(meanColdStart),
    members: members.map((m) => ({
      nodeId: m.node_id,
      nodeName: m.node_name,
      state: MEMBER_STATES[m.state] ?? PoolMemberState.UNSPECIFIED,
      since: timestampFromDate(m.since),
      runningTasks: m.running,
      lastBusyTime: timestampFromDate(m.last_busy_at),
      coldStartMs: BigInt(m.cold_start_ms),
    })),
  });
}

export function createPoolService(deps: PoolServiceDeps): ServiceImpl<typeof PoolService> {
  const { db, authenticate } = deps;
  return {
    async getPoolStatus(req, ctx) {
      const principal = await authenticate(ctx);
      const app = await findApp(db, principal.workspaceId, requireString("app", req.app, 128));
      requireApp(principal, app, "read", "reading an app's pool");
      return { status: await loadPoolStatus(db, app) };
    },

    async listScalingEvents(req, ctx) {
      const principal = await authenticate(ctx);
      const limit = checkPageSize("page_size", req.pageSize, 50);
      const cursor = decodePageToken("page_token", req.pageToken, "s", "number");
      const app = await findApp(db, principal.workspaceId, requireString("app", req.app, 128));
      requireApp(principal, app, "read", "reading an app's scaling events");
      const rows = await listScalingEvents(db, app.id, limit + 1, cursor ? Number(cursor.s) : undefined);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        events: page.map((e) =>
          create(ScalingEventSchema, {
            id: e.id,
            appId: e.app_id,
            kind: e.kind,
            fromNodes: e.from_nodes,
            toNodes: e.to_nodes,
            nodeIds: e.node_ids,
            reason: e.reason,
            time: timestampFromDate(e.created_at),
          }),
        ),
        nextPageToken: rows.length > limit && last ? encodePageToken({ s: last.seq }) : "",
      };
    },
  };
}
