// `npm run build:dashboard` (also run by `prepare` and before `npm test`): bundles the dashboard
// and the widgets into dist/dashboard/ and prints each file's size.
import { buildDashboard, DASHBOARD_DIST_DIR } from "../dashboard/build.js";

const files = await buildDashboard();
for (const f of files) console.log(`${DASHBOARD_DIST_DIR}/${f.name}: ${(f.bytes / 1024).toFixed(1)} KiB (${(f.gzipBytes / 1024).toFixed(1)} KiB gzipped)`);
