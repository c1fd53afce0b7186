// A route's (or backendRef's) filter list, compiled into what the request path applies:
// header modifier lists, one effective URL rewrite, mirrors, CORS and a redirect. Order matters
// only where the spec says so: a mirror sees the header modifications listed before it.

import type { Filter, PathMatch } from '../../ir/types.ts';
import type { BackendTarget } from '../upstream/backend.ts';
import { compileCors, type CorsPlan } from './cors.ts';
import { compileHeaderModifier, type HeaderModifierPlan } from './header-modifier.ts';
import { compileRedirect, type RedirectPlan } from './redirect.ts';
import { compilePathModifier, mergeRewrites, type UrlRewritePlan } from './rewrite.ts';

export interface MirrorPlan {
  backend: BackendTarget;
  /** 0–100, fractional allowed. */
  percent: number;
  /** How many of the chain's request modifiers come before the mirror (the copy sees those). */
  modifiersBefore: number;
  /** The URL rewrite in effect at the mirror's position. */
  rewrite: UrlRewritePlan | null;
}

export interface FilterChain {
  requestModifiers: HeaderModifierPlan[];
  responseModifiers: HeaderModifierPlan[];
  rewrite: UrlRewritePlan | null;
  mirrors: MirrorPlan[];
  cors: CorsPlan | null;
  /** A RequestRedirect filter (backendRef level): the request is answered with it. */
  redirect: RedirectPlan | null;
}

export const EMPTY_CHAIN: FilterChain = { requestModifiers: [], responseModifiers: [], rewrite: null, mirrors: [], cors: null, redirect: null };

export function compileFilterChain(
  filters: readonly Filter[],
  match: PathMatch,
  backendFor: (name: string) => BackendTarget | null,
  problems: string[],
): FilterChain {
  if (filters.length === 0) return EMPTY_CHAIN;
  const chain: FilterChain = { requestModifiers: [], responseModifiers: [], rewrite: null, mirrors: [], cors: null, redirect: null };
  for (const filter of filters) {
    switch (filter.type) {
      case 'RequestHeaderModifier':
        chain.requestModifiers.push(compileHeaderModifier(filter.modifier));
        break;
      case 'ResponseHeaderModifier':
        chain.responseModifiers.push(compileHeaderModifier(filter.modifier));
        break;
      case 'URLRewrite':
        chain.rewrite = mergeRewrites(chain.rewrite, { hostname: filter.hostname ?? null, path: compilePathModifier(filter.path, match) });
        break;
      case 'RequestMirror': {
        const backend = filter.backend === null ? null : backendFor(filter.backend);
        if (backend === null) {
          problems.push(`mirror backend ${filter.backend ?? '(invalid reference)'} is unavailable; not mirrored`);
          break;
        }
        chain.mirrors.push({ backend, percent: filter.percent, modifiersBefore: chain.requestModifiers.length, rewrite: chain.rewrite });
        break;
      }
      case 'CORS':
        chain.cors = compileCors(filter.cors);
        break;
      case 'RequestRedirect':
        chain.redirect = compileRedirect(filter.redirect, match);
        break;
      default:
        problems.push(`unsupported filter type ${JSON.stringify((filter as { type: unknown }).type)}; ignored`);
    }
  }
  return chain;
}

/** The route's chain followed by a backendRef's (whose filters apply after the route's). */
export function concatChains(route: FilterChain, backend: FilterChain): FilterChain {
  if (backend === EMPTY_CHAIN) return route;
  if (route === EMPTY_CHAIN) return backend;
  const offset = route.requestModifiers.length;
  return {
    requestModifiers: [...route.requestModifiers, ...backend.requestModifiers],
    responseModifiers: [...route.responseModifiers, ...backend.responseModifiers],
    rewrite: mergeRewrites(route.rewrite, backend.rewrite),
    mirrors: [
      ...route.mirrors,
      ...backend.mirrors.map((mirror) => ({ ...mirror, modifiersBefore: mirror.modifiersBefore + offset, rewrite: mergeRewrites(route.rewrite, mirror.rewrite) })),
    ],
    cors: backend.cors ?? route.cors,
    redirect: backend.redirect ?? route.redirect,
  };
}
