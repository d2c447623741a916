/** Entry point of the supervisor process; `arcbox start` spawns it detached. */
import { parseHomeFlag } from "../../lib/service/argv.ts";
import { runDaemon } from "./main.ts";

// No top-level await: the bundle is compiled to bytecode (scripts/build.sh), which needs
// a CommonJS-shaped module.
void runDaemon(parseHomeFlag(process.argv.slice(2))).then((code) => process.exit(code));
