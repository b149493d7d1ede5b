import type { RpcFallbackHandler } from "../control-plane/api/rpc-server.js";
import type { Logger } from "../control-plane/log.js";
import { createStaticSite } from "../control-plane/web/static-site.js";
import { ensureDashboardBuilt } from "../dashboard/build.js";

/**
 * The dashboard and widgets for a control plane to serve, built first if missing or stale.
 * A control plane without them (no build, and no esbuild to make one) still serves the API.
 */
export async function dashboardSite(logger: Logger): Promise<RpcFallbackHandler | undefined> {
  try {
    return createStaticSite({ dir: await ensureDashboardBuilt() });
  } catch (err) {
    logger.warn({ err }, "the dashboard is not built and cannot be built here (run npm run build:dashboard); serving the API only");
    return undefined;
  }
}
