/** Entry point of the supervisor process; `arcbox start` spawns it detached. */
import { parseHomeFlag } from "../../lib/service/argv.ts";
import { runDaemon } from "./main.ts";

process.exit(await runDaemon(parseHomeFlag(process.argv.slice(2))));
