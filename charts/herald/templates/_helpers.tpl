{{/* The chart's name, or nameOverride. */}}
{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of the release's objects: fullnameOverride, else the release name when it
contains the chart's name (release "herald" gives "herald"), else <release>-<chart>.
Kept at 50 characters so that "<fullname>-webhook-cert" still fits a Kubernetes name.
*/}}
{{- define "herald.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "herald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "herald.labels" -}}
helm.sh/chart: {{ include "herald.chart" . }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the manager's pods. */}}
{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "herald.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Replicas: leader election lets several replicas share the work; without it, one. */}}
{{- define "herald.replicas" -}}
{{- if .Values.leaderElection.enabled }}{{ .Values.leaderElection.replicaCount }}{{ else }}1{{ end }}
{{- end }}

{{/* The Secret with SLACK_URL, SLACK_TOKEN and MSTEAMS_URL, if any. */}}
{{- define "herald.alertsSecret" -}}
{{- if .Values.alertsSecret }}
{{- .Values.alertsSecret }}
{{- else if or .Values.slack.url .Values.slack.token .Values.msteams.url }}
{{- printf "%s-alerts" (include "herald.fullname" .) }}
{{- end }}
{{- end }}
