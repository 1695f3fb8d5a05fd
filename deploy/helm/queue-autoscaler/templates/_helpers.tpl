{{/* The chart name, overridable. */}}
{{- define "queue-autoscaler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The base of every object's name: the release name, prefixed with the chart's unless it has it. */}}
{{- define "queue-autoscaler.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "queue-autoscaler.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* What selects the daemon's pods (Deployment, Service, PDB, NetworkPolicy, anti-affinity). */}}
{{- define "queue-autoscaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "queue-autoscaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* The labels of every object. */}}
{{- define "queue-autoscaler.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "queue-autoscaler.selectorLabels" . }}
app.kubernetes.io/part-of: queue-autoscaler
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "queue-autoscaler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "queue-autoscaler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "queue-autoscaler.configMapName" -}}
{{- default (printf "%s-config" (include "queue-autoscaler.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{/* The TOML the chart renders: config.toml, else the bundled config.example.toml. */}}
{{- define "queue-autoscaler.configText" -}}
{{- if .Values.config.toml }}
{{- .Values.config.toml }}
{{- else }}
{{- .Files.Get "files/config.toml" }}
{{- end }}
{{- end }}

{{/*
The config the chart renders, parsed, as JSON (templates return strings): read it with
`include "queue-autoscaler.config" . | fromJson`. Empty ({}) with config.existingConfigMap.
A TOML syntax error fails the install; the daemon's own checks are `queue-autoscaler validate`.
*/}}
{{- define "queue-autoscaler.config" -}}
{{- if .Values.config.existingConfigMap }}
{{- dict | toJson }}
{{- else }}
{{- $config := include "queue-autoscaler.configText" . | fromToml }}
{{- if hasKey $config "Error" }}
{{- fail (printf "config.toml is not valid TOML: %s" $config.Error) }}
{{- end }}
{{- $config | toJson }}
{{- end }}
{{- end }}

{{/*
The only keys the daemon does not hot-reload (README, "Hot reload"; src/app.rs warns about
them): their checksum on the pod template rolls the pods when, and only when, they change.
*/}}
{{- define "queue-autoscaler.restartChecksum" -}}
{{- $daemon := dig "daemon" (dict) (include "queue-autoscaler.config" . | fromJson) }}
{{- pick $daemon "listen" "leader_election" | toJson | sha256sum }}
{{- end }}

{{/*
What the chart must know of the config agrees with it: the port, the election, and one writer.
Fails the install with what to change; renders nothing.
*/}}
{{- define "queue-autoscaler.checkConfig" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount is %v but leaderElection.enabled is false: every replica would write; enable leader election (and [daemon.leader_election] enabled = true in the config) or set replicaCount: 1" .Values.replicaCount) }}
{{- end }}
{{- if not .Values.config.existingConfigMap }}
{{- $config := include "queue-autoscaler.config" . | fromJson }}
{{- $listen := dig "daemon" "listen" "0.0.0.0:9090" $config }}
{{- $port := splitList ":" $listen | last }}
{{- if ne $port (toString .Values.metrics.port) }}
{{- fail (printf "the config's daemon.listen %q does not use metrics.port %v: set one to match the other" $listen .Values.metrics.port) }}
{{- end }}
{{- $elected := dig "daemon" "leader_election" "enabled" false $config }}
{{- if ne $elected .Values.leaderElection.enabled }}
{{- fail (printf "leaderElection.enabled is %v but the config's [daemon.leader_election] enabled is %v: set both alike" .Values.leaderElection.enabled $elected) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Lease's namespace: [daemon.leader_election] namespace, else the release's. */}}
{{- define "queue-autoscaler.leaseNamespace" -}}
{{- dig "daemon" "leader_election" "namespace" .Release.Namespace (include "queue-autoscaler.config" . | fromJson) }}
{{- end }}

{{/* rbac.namespaces, else the namespaces of the config's targets; as JSON. */}}
{{- define "queue-autoscaler.targetNamespaces" -}}
{{- $namespaces := .Values.rbac.namespaces }}
{{- if not $namespaces }}
{{- range (include "queue-autoscaler.config" . | fromJson).targets }}
{{- $namespaces = append $namespaces .namespace }}
{{- end }}
{{- end }}
{{- if not $namespaces }}
{{- fail "rbac.mode is namespaced but no namespace is known: set rbac.namespaces (required with config.existingConfigMap)" }}
{{- end }}
{{- $namespaces | uniq | toJson }}
{{- end }}

{{/*
The rules of the calls the daemon makes in its targets' namespaces (tests/rbac.rs records them;
the same as deploy/rbac.yaml, which tests/helm.rs compares).
*/}}
{{- define "queue-autoscaler.targetRules" -}}
# Read each target's Deployment or StatefulSet (replicas, pause annotations, pod selector).
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get"]
# Write replicas through the scale subresource (after a 409 the workload is read again).
- apiGroups: ["apps"]
  resources: ["deployments/scale", "statefulsets/scale"]
  verbs: ["patch"]
# Spot health (watch the spot twin's pods); busy-aware scale-in (list pods, set deletion cost).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch"]
# An Event on every rescale and spot fallback, each one new.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{- define "queue-autoscaler.nodeRules" -}}
# Spot health: nodes being reclaimed or cordoned.
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list", "watch"]
{{- end }}

{{- define "queue-autoscaler.subject" -}}
- kind: ServiceAccount
  name: {{ include "queue-autoscaler.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}
