import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";

/** Serving status of a service, as grpc.health.v1 defines it. */
export { HealthCheckResponse_ServingStatus as ServingStatus };

/** The health service name that stands for the whole server. */
export const SERVER_HEALTH_SERVICE = "";

/** Options for {@link createHealth}. */
export interface HealthOptions {
  /**
   * Statuses known from the start, by service name ("" is the whole server).
   * Default: `{ "": SERVING }`, as grpc-go's health server does.
   */
  readonly initial?: Readonly<Record<string, HealthCheckResponse_ServingStatus>>;
}

/** grpc.health.v1.Health: the statuses and the RPC handlers that serve them. */
export interface HealthService {
  /** Registers grpc.health.v1.Health (Check and Watch) on the router. */
  register(router: ConnectRouter): void;
  /**
   * Sets the status of `service` ("" is the whole server) and wakes its watchers.
   * Ignored after {@link HealthService.shutdown} until {@link HealthService.resume}.
   */
  setStatus(service: string, status: HealthCheckResponse_ServingStatus): void;
  /** Forgets `service`: Check answers NOT_FOUND again, watchers see SERVICE_UNKNOWN. */
  clearStatus(service: string): void;
  /** Current status of `service`, or undefined when it is unknown. */
  getStatus(service: string): HealthCheckResponse_ServingStatus | undefined;
  /**
   * Marks every known service NOT_SERVING and ignores later updates, so that load balancers
   * stop routing here while the server drains.
   */
  shutdown(): void;
  /** Marks every known service SERVING again and accepts updates. */
  resume(): void;
}

/** Creates an in-memory grpc.health.v1.Health service. */
export function createHealth(options: HealthOptions = {}): HealthService {
  const statuses = new Map<string, HealthCheckResponse_ServingStatus>(
    Object.entries(options.initial ?? { [SERVER_HEALTH_SERVICE]: HealthCheckResponse_ServingStatus.SERVING }),
  );
  // One callback per open Watch; each is told which service changed.
  const watchers = new Set<(service: string) => void>();
  let shutDown = false;

  function notify(service: string): void {
    for (const watcher of watchers) watcher(service);
  }

  function put(service: string, status: HealthCheckResponse_ServingStatus | undefined): void {
    if (status === undefined) statuses.delete(service);
    else statuses.set(service, status);
    notify(service);
  }

  function check(request: HealthCheckRequest): HealthCheckResponse {
    const status = statuses.get(request.service);
    if (status === undefined) {
      throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
    }
    return create(HealthCheckResponseSchema, { status });
  }

  async function* watch(request: HealthCheckRequest, context: HandlerContext): AsyncGenerator<HealthCheckResponse> {
    const { signal } = context;
    // A flag rather than only a wake-up callback: a change that lands while the previous
    // message is being written must not be lost.
    let changed = false;
    let wake: (() => void) | undefined;
    const watcher = (service: string): void => {
      if (service !== request.service) return;
      changed = true;
      wake?.();
    };
    watchers.add(watcher);
    try {
      let last: HealthCheckResponse_ServingStatus | undefined;
      for (;;) {
        changed = false;
        const status = statuses.get(request.service) ?? HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
        // Only changes are sent; intermediate states may be skipped, as the protocol allows.
        if (status !== last) {
          last = status;
          yield create(HealthCheckResponseSchema, { status });
        }
        if (!changed) await waitForChange(signal, (resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      watchers.delete(watcher);
    }
  }

  return {
    register(router) {
      router.service(Health, { check, watch });
    },
    setStatus(service, status) {
      if (!shutDown) put(service, status);
    },
    clearStatus(service) {
      if (!shutDown) put(service, undefined);
    },
    getStatus(service) {
      return statuses.get(service);
    },
    shutdown() {
      shutDown = true;
      for (const service of [...statuses.keys()]) put(service, HealthCheckResponse_ServingStatus.NOT_SERVING);
    },
    resume() {
      shutDown = false;
      for (const service of [...statuses.keys()]) put(service, HealthCheckResponse_ServingStatus.SERVING);
    },
  };
}

/**
 * Resolves when `arm`'s callback is called; rejects with the abort reason when the client
 * leaves or the server shuts down (connect aborts the handler signal in both cases).
 */
function waitForChange(signal: AbortSignal, arm: (resolve: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    arm(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new ConnectError("operation was aborted", Code.Canceled);
}
