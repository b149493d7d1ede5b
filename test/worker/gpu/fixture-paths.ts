// Where the GPU tests find their fixtures and the stand-in nvidia-smi.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Root of this checkout. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
/** Our own nvidia-smi fixtures (made-up values, real formats). */
export const ownFixturesDir = resolve(repoRoot, "test/fixtures/nvidia-smi");
/** The stand-in nvidia-smi that replays a capture (see the script's header). */
export const standInNvidiaSmi = resolve(repoRoot, "test/fixtures/bin/nvidia-smi");
/** The shared corpus of real captures; may be absent outside the team's checkout. */
export const corpusDir = resolve(repoRoot, "../shared/fixtures/nvidia-smi");

/** Path of one of our own fixtures. */
export function ownFixture(name: string): string {
  return resolve(ownFixturesDir, name);
}
