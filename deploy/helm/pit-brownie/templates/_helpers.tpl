{{/* The name of every object: the release's, unless it already says pit-brownie. */}}
{{- define "pit-brownie.fullname" -}}
{{- if contains "pit-brownie" .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-pit-brownie" .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pit-brownie.labels" -}}
app.kubernetes.io/name: pit-brownie
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: pit
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
