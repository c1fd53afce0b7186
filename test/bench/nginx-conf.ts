// nginx configurations for the benchmark: the backend (`return 200` with a 64-byte body) and
// nginx as a reverse proxy with upstream keep-alive. Everything nginx writes (pid, logs, temp
// files) stays in the run's temp folder; one worker each (the proxy: as many as asked), run in the
// foreground.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** 63 characters and a newline. */
export const BACKEND_BODY = `${'sluice-bench-backend-'.repeat(3)}\n`;

function common(dir: string, name: string, workers = 1): string {
  const tmp = join(dir, `${name}-tmp`);
  mkdirSync(tmp, { recursive: true, mode: 0o755 });
  return `worker_processes ${workers};
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
events { worker_connections 8192; }
`;
}

function httpCommon(dir: string, name: string): string {
  const tmp = join(dir, `${name}-tmp`);
  return `  access_log off;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
`;
}

/** Backend: answers every request with 200 and the 64-byte body; echoes `x-bench-route`. */
export function backendConf(dir: string, port: number): string {
  if (BACKEND_BODY.length !== 64) throw new Error('backend body must be 64 bytes');
  return `${common(dir, 'backend')}
http {
${httpCommon(dir, 'backend')}
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      default_type text/plain;
      # Lets the harness check that Sluice's RequestHeaderModifier reached the upstream.
      add_header x-bench-route-seen $http_x_bench_route;
      return 200 "${BACKEND_BODY.replace('\n', '\\n')}";
    }
  }
}
`;
}

/** Reverse proxy to the backend with upstream keep-alive; `name` keeps each configuration's files apart. */
export function proxyConf(dir: string, port: number, backendPort: number, workers = 1, name = 'nginx-proxy'): string {
  return `${common(dir, name, workers)}
http {
${httpCommon(dir, name)}
  upstream bench_backend {
    server 127.0.0.1:${backendPort};
    keepalive 64;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://bench_backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`;
}
