// Entry of the single-file worker executable (bundled with esbuild, no top-level await).
import { main } from "./main.js";

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`ngpu-worker: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
