#!/usr/bin/env node
// Launcher of the `ngpu` CLI (package.json "bin"): registers tsx so that Node can
// load the TypeScript sources, then runs cli/main.ts. Lets `npx ngpu …` work in the repo.
import { register } from "tsx/esm/api";

register();
await import(new URL("../cli/main.ts", import.meta.url).href);
