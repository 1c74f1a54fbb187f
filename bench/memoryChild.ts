/** Runs in its own process: a daemon over a big database with many stages in flight; prints peak RSS. */
import { openCairn } from '../src/index.js';

const [dataDir, inFlightArg, durabilityArg] = process.argv.slice(2);
const durability = durabilityArg === 'normal' ? 'normal' : 'full';
const inFlight = Number(inFlightArg);
let started = 0;
const hang = () => {
  started++;
  return new Promise<never>(() => {});
};
const cairn = await openCairn({
  dataDir,
  config: { durability, concurrency: inFlight, approvals: { plan: 'auto', implementation: 'auto' }, views: false },
  executors: { plan: hang, implement: hang, review: hang, verify: hang },
});
await cairn.start({ pollMs: 50 });
const deadline = Date.now() + 120_000;
while (started < inFlight && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
// Let the heartbeat and polling run a while with everything in flight.
await new Promise((r) => setTimeout(r, 2000));
process.stdout.write(JSON.stringify({ started, maxRssKb: process.resourceUsage().maxRSS }) + '\n');
process.exit(0);
