# syntax=docker/dockerfile:1
# One image for both Kubernetes-mode processes: `sluice controller` and `sluice dataplane`
# (charts/sluice runs it). Node 24 runs the TypeScript sources directly (type stripping), so there
# is no compile step for them; the build stage only compiles the eBPF objects and the libbpf addon.
#
#   docker build -t sluice:dev .
#
# Debian 12 (bookworm) in both stages: the addon links against libbpf.so.1 (libbpf 1.1), which the
# runtime stage installs from the same release.
ARG NODE_IMAGE=node:24-bookworm

FROM ${NODE_IMAGE} AS build
# clang + libbpf-dev (and the kernel UAPI headers of linux-libc-dev): bpf/build/*.o;
# g++ + libbpf-dev: bpf/native/build/sluice_bpf.node; bc: the build script's timing line.
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang libbpf-dev linux-libc-dev g++ make bc \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Dependencies first, so source edits do not reinstall them. `npm ci` runs the package's install
# script, `bash bpf/build.sh`, which needs bpf/ and node-addon-api (a dependency, installed before it).
COPY package.json package-lock.json ./
COPY bpf/ ./bpf/
RUN npm ci --no-audit --no-fund \
 && test -f bpf/build/sock_lb.o && test -f bpf/build/policy.o \
 && test -f bpf/native/build/sluice_bpf.node
# Runtime dependencies only (drops jest, typescript and the pinned `node` devDependency: the runtime
# image brings its own Node 24).
RUN npm prune --omit=dev --no-audit --no-fund
# The runtime layers (ARCHITECTURE.md); the demo backends of --demo-backends (test doubles, under
# test/) stay out.
COPY bin/ ./bin/
COPY cmd/ ./cmd/
COPY ir/ ./ir/
COPY controller/ ./controller/
COPY dataplane/ ./dataplane/

FROM ${NODE_IMAGE}-slim AS runtime
# libbpf1 (and libelf1, zlib1g): what the addon links against. Nothing else: no shell tools are
# needed besides those of the base image (the chart's preStop hook uses /bin/sh, sleep and rm).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules/ ./node_modules/
COPY --from=build /app/bin/ ./bin/
COPY --from=build /app/cmd/ ./cmd/
COPY --from=build /app/ir/ ./ir/
COPY --from=build /app/controller/ ./controller/
COPY --from=build /app/dataplane/ ./dataplane/
# The agent (TypeScript), the native addon's loader, and the build outputs; not the C sources.
COPY --from=build /app/bpf/agent/ ./bpf/agent/
COPY --from=build /app/bpf/native/index.ts ./bpf/native/index.ts
COPY --from=build /app/bpf/native/build/sluice_bpf.node ./bpf/native/build/sluice_bpf.node
COPY --from=build /app/bpf/build/ ./bpf/build/
ENV NODE_ENV=production \
    HOME=/tmp \
    NODE_OPTIONS=--disable-warning=ExperimentalWarning
# Non-root by default (the chart runs the controller and the eBPF-less dataplane as 65532); the
# eBPF dataplane is run as uid 0 with only CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON by the chart.
USER 65532:65532
EXPOSE 9901 18000
ENTRYPOINT ["node", "bin/sluice.js"]
CMD ["--help"]
