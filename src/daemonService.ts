/**
 * What runs alongside a daemon (the inbox watcher, the status views) sees of it. Kept below
 * src/daemon/ so those services, which the daemon starts, do not import the daemon back.
 */
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { Engine } from './engine/engine.js';

/** The daemon as a service sees it. */
export interface ServiceHost {
  readonly engine: Engine;
  readonly config: Config;
  readonly logger: Logger;
  /** Asks the daemon to dispatch soon (a service just wrote work). */
  requestTick(): void;
}

/**
 * Something that runs alongside the daemon for the life of its session (the inbox watcher, …).
 * Started after the session exists, stopped before it ends; a failing service is logged, not fatal.
 */
export interface DaemonService {
  readonly name: string;
  start(daemon: ServiceHost): Promise<void> | void;
  stop(): Promise<void> | void;
  /** Runs once the session is marked stopped, before the store closes (a last status write). */
  afterStop?(): Promise<void> | void;
}
