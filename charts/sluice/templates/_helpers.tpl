{{/* Chart name used in app.kubernetes.io/name (default "sluice"). */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object name: the release name unless overridden. Kept short enough for "-controller-metrics". */}}
{{- define "sluice.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 44 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ include "sluice.chart" . }}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sluice
{{- end -}}

{{/* Selector labels of one component: include "sluice.selectorLabels" (list . "controller") */}}
{{- define "sluice.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "sluice.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The dataplane pods' labels as k=v,k=v: the gateway's identity in network policies (--gateway-labels). */}}
{{- define "sluice.gatewayLabels" -}}
{{- printf "app.kubernetes.io/name=%s,app.kubernetes.io/instance=%s,app.kubernetes.io/component=dataplane" (include "sluice.name" .) .Release.Name -}}
{{- end -}}

{{- define "sluice.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "sluice.controller.serviceAccountName" -}}
{{- default (printf "%s-controller" (include "sluice.fullname" .)) .Values.controller.serviceAccount.name -}}
{{- end -}}

{{- define "sluice.dataplane.serviceAccountName" -}}
{{- default (printf "%s-dataplane" (include "sluice.fullname" .)) .Values.dataplane.serviceAccount.name -}}
{{- end -}}

{{- define "sluice.snapshotTokenSecret" -}}
{{- default (printf "%s-snapshot-token" (include "sluice.fullname" .)) .Values.snapshotToken.existingSecret -}}
{{- end -}}

{{/* Container security context shared by both processes: nothing but what the process needs. */}}
{{- define "sluice.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/*
The eBPF dataplane's container security context. The BPF agent requires uid 0 (it checks) and exactly
three capabilities, measured on kernel 6.18 by loading and attaching the programs with each one removed:
  BPF       create maps (hash, LPM trie, sk_storage, ring buffer), load BTF and programs, pin and reopen
            objects in bpffs, update links;
  NET_ADMIN load cgroup_skb and cgroup/sock_addr programs (network program types) and attach them to
            the pod's cgroup;
  PERFMON   the verifier's "privileged" mode the programs need (pointer spills on the stack are refused
            without it: "attempt to corrupt spilled pointer on stack").
Not needed: SYS_ADMIN (bpffs comes from the host, nothing is mounted), SYS_RESOURCE (kernels >= 5.11
charge BPF memory to the cgroup, no memlock rlimit), NET_BIND_SERVICE (listenerPortOffset), DAC_*
(the pins belong to root).
*/}}
{{- define "sluice.bpfContainerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: false
runAsUser: 0
runAsGroup: 0
privileged: false
capabilities:
  drop: [ALL]
  add: [BPF, NET_ADMIN, PERFMON]
{{- end -}}
