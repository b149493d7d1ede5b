import type { ReactiveController, ReactiveControllerHost } from "lit";

/**
 * Runs `tick` now and then every `intervalMs` while the element is on the page,
 * never two at once (a slow call delays the next instead of piling up).
 */
export class Poller implements ReactiveController {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running = false;
  private connected = false;

  constructor(
    host: ReactiveControllerHost,
    private readonly intervalMs: number,
    private readonly tick: () => Promise<void>,
  ) {
    host.addController(this);
  }

  hostConnected(): void {
    this.connected = true;
    void this.run();
  }

  hostDisconnected(): void {
    this.connected = false;
    clearTimeout(this.timer);
  }

  /** Runs a tick now (e.g. after a filter changed). */
  now(): void {
    clearTimeout(this.timer);
    void this.run();
  }

  private async run(): Promise<void> {
    if (this.running || !this.connected) return;
    this.running = true;
    try {
      await this.tick();
    } catch {
      // The page shows its own error state; keep polling.
    } finally {
      this.running = false;
      if (this.connected) this.timer = setTimeout(() => void this.run(), this.intervalMs);
    }
  }
}
