/**
 * How the `cairn` process ends once its command is done, for main.ts and the read fast path in
 * src/cairn.ts. Setting process.exitCode and letting the event loop drain is not enough under a parent
 * holding an IPC channel (pm2's fork and cluster modes, child_process.fork() with a 'message'
 * listener): the channel keeps the loop alive, so a `cairn start` that failed on a config error stayed
 * "online" forever and pm2 never saw the exit code it must act on (stop_exit_codes, restarts).
 */
export function endCommand(code: number): void {
  process.exitCode = code;
  // The parent's channel has nothing more to carry once the command is done.
  if (process.connected) process.disconnect();
  // A failed command has reported and closed what it opened (its finally blocks ran); whatever still
  // holds the loop — a half-opened database, a stage pipe, a pool — must not keep it alive.
  // stderr is written synchronously to files and pipes, so the message is out.
  if (code !== 0) process.exit(code);
}
