/** Runs the views alongside a daemon: written at start, refreshed on the heartbeat schedule, final at stop. */
import cron, { type ScheduledTask } from 'node-cron';
import type { DaemonService, ServiceHost } from '../daemonService.js';
import { toError } from '../errors.js';
import { attachViews, type AttachedViews } from './attachViews.js';

export class ViewsService implements DaemonService {
  readonly name = 'views';
  private attached: AttachedViews | null = null;
  private task: ScheduledTask | null = null;
  private refresh: (() => Promise<void>) | null = null;

  start(daemon: ServiceHost): void {
    this.attached = attachViews(daemon.engine, daemon.config, daemon.logger);
    if (!this.attached) return;
    const { views } = this.attached;
    this.refresh = () =>
      Promise.all([views.writeCurrent(), views.writeMarkdown()]).then(
        () => undefined,
        (e) => daemon.logger.warn({ err: toError(e) }, `could not refresh the status views: ${toError(e).message}`),
      );
    void this.refresh();
    this.task = cron.schedule(daemon.config.heartbeat.cron, () => void this.refresh?.(), { noOverlap: true });
  }

  /** The session is marked stopped after services stop: the final state is written once it is. */
  async afterStop(): Promise<void> {
    // Stages that finished during the shutdown grace committed after stop(); nothing commits now.
    await this.attached?.close();
    await this.refresh?.();
  }

  async stop(): Promise<void> {
    await this.task?.stop();
    await this.task?.destroy();
    await this.attached?.flush();
  }
}
