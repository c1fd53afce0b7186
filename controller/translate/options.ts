// What translate() is told by the process that runs it (flags, mode). Its own module so the
// translators that read it (gateway.ts, ingress.ts) need not import each other for it.
import type { PolicyOptions } from './networkpolicy.ts';

export interface TranslateOptions {
  controllerName: string;
  /**
   * GatewayClass names served whatever their controllerName says (drop-in for
   * Cilium: `cilium` classes exported from a cluster name Cilium's controller).
   */
  servedClassNames?: string[];
  /** A shared listen address, or an IPv4 CIDR from which each Gateway gets its own. */
  bindAddress: string;
  /**
   * Kubernetes mode: `namespace/name` of the Service clients reach the dataplanes through. Gateways'
   * `spec.addresses` are then that Service's to carry (checked against it), not bind addresses.
   */
  dataplaneService?: string;
  /**
   * `sluice run` and `sluice translate`: the manifest folder is all there is, so a Gateway whose
   * class names another controller is served by nobody, and said so (unserved.ts).
   */
  standalone?: boolean;
  /** Which Ingresses are ours, and how they behave; absent: no Ingress is served. */
  ingress?: IngressOptions;
  /** Who the gateway is for L3/L4 network policy; defaults in translate/networkpolicy.ts. */
  policy?: PolicyOptions;
}

export interface IngressOptions {
  /** Class names served (default `cilium`), by `spec.ingressClassName` or the legacy annotation. */
  classNames: string[];
  /** IngressClass `spec.controller` values that make a class ours. */
  controllers: string[];
  /** Cilium's `enforce-ingress-https`: redirect plain HTTP for TLS hosts unless `force-https: disabled`. */
  enforceHttps: boolean;
}
