/**
 * The longest delay a Node timer holds (2^31-1 ms, 24.8 days): setTimeout runs a longer one after
 * 1 ms. Durations from configuration (Gateway API's reach 99999h) and from clients (grpc-timeout)
 * are held at it, as good as never, instead of firing at once.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;
