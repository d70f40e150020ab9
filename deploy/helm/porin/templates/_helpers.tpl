{{/* The name of every object: the release name, prefixed unless it already says porin. */}}
{{- define "porin.fullname" -}}
{{- if contains "porin" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-porin" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "porin.selectorLabels" -}}
app.kubernetes.io/name: porin
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "porin.labels" -}}
{{ include "porin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "porin.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
