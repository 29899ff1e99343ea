{{/* The name of every object: the release's, unless it already says pit-lock-manager. */}}
{{- define "pit-lock-manager.fullname" -}}
{{- if contains "pit-lock-manager" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-pit-lock-manager" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pit-lock-manager.selectorLabels" -}}
app.kubernetes.io/name: pit-lock-manager
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pit-lock-manager.labels" -}}
{{ include "pit-lock-manager.selectorLabels" . }}
app.kubernetes.io/part-of: pit
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
