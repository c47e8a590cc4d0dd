{{/* Names, labels and the checks every template shares. */}}

{{- define "stratum.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stratum.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "stratum.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "stratum.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stratum.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stratum.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "stratum.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "stratum.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "stratum.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "stratum.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* True (non-empty) when the catalog lives in PostgreSQL. */}}
{{- define "stratum.postgres" -}}
{{- if or .Values.postgresql.enabled .Values.database.url .Values.database.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "stratum.databaseSecret" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecret }}{{- else -}}{{ include "stratum.fullname" . }}{{- end -}}
{{- end -}}

{{- define "stratum.databaseSecretKey" -}}
{{- if .Values.database.existingSecret -}}{{ .Values.database.existingSecretKey }}{{- else -}}database-url{{- end -}}
{{- end -}}

{{- define "stratum.authSecret" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecret }}{{- else -}}{{ include "stratum.fullname" . }}{{- end -}}
{{- end -}}

{{- define "stratum.authSecretKey" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecretKey }}{{- else -}}hs256{{- end -}}
{{- end -}}

{{/* A value kept from the installed Secret, or a new random one. */}}
{{- define "stratum.keep" -}}
{{- $secret := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- if and $secret (hasKey $secret.data .key) -}}
{{- index $secret.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}

{{- define "stratum.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "stratum.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Refuses values that cannot work. */}}
{{- define "stratum.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (include "stratum.postgres" .)) -}}
{{- fail "replicaCount > 1 needs PostgreSQL: set postgresql.enabled, database.url or database.existingSecret (SQLite allows one replica)" -}}
{{- end -}}
{{- if and .Values.postgresql.enabled (or .Values.database.url .Values.database.existingSecret) -}}
{{- fail "postgresql.enabled and an external database (database.url / database.existingSecret) exclude each other" -}}
{{- end -}}
{{- if and (not .Values.rbac.clusterWide) (not .Values.rbac.namespaces) .Values.rbac.create -}}
{{- fail "rbac.clusterWide=false needs rbac.namespaces" -}}
{{- end -}}
{{- end -}}

{{/* Read access for the Kubernetes scraper (never Secrets), and the
     ScrapeConfig and Topology resources with their status. */}}
{{- define "stratum.rbacRules" -}}
- apiGroups: [""]
  resources: [namespaces, nodes, pods, services, endpoints, persistentvolumes, persistentvolumeclaims, configmaps, serviceaccounts, replicationcontrollers, events]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [deployments, replicasets, statefulsets, daemonsets]
  verbs: [get, list, watch]
- apiGroups: [batch]
  resources: [jobs, cronjobs]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, networkpolicies]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [get, list, watch]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
- apiGroups: [cert-manager.io, kustomize.toolkit.fluxcd.io, helm.toolkit.fluxcd.io, source.toolkit.fluxcd.io, argoproj.io]
  resources: ["*"]
  verbs: [get, list, watch]
- apiGroups: [stratum.dev]
  resources: [scrapeconfigs, topologies]
  verbs: [get, list, watch]
- apiGroups: [stratum.dev]
  resources: [scrapeconfigs/status, topologies/status]
  verbs: [get, patch, update]
{{- with .Values.rbac.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end -}}
