// HTTP/1.1 upgrades a route may tunnel (Route.upgradeTypes): shared by the translator, which
// reads them from an annotation, and the dataplane, which reads them from requests.

/** Upgrades tunnelled when a route says nothing: WebSocket, as Envoy Gateway and Cilium do by default. */
export const DEFAULT_UPGRADE_TYPES: readonly string[] = ['websocket'];

/** One protocol as Upgrade names it, lower-case (RFC 9110 §7.8: protocol-name ["/" protocol-version], both tokens). */
export const UPGRADE_PROTOCOL = /^[!#$%&'*+.^_`|~0-9a-z-]+(?:\/[!#$%&'*+.^_`|~0-9a-z-]+)?$/;
