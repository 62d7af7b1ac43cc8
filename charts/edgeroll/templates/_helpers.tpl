{{- define "edgeroll.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "edgeroll.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "edgeroll.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "edgeroll.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "edgeroll.fullname" .) .Values.serviceAccount.name }}
{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{- define "edgeroll.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "edgeroll.s3SecretName" -}}
{{- if .Values.s3.existingSecret -}}{{ .Values.s3.existingSecret }}
{{- else if .Values.s3.accessKeyId -}}{{ include "edgeroll.fullname" . }}-s3{{- end -}}
{{- end -}}

{{/* The Secret with the edge caches' key (EDGEROLL_EDGE_S3_*); empty: workload identity. */}}
{{- define "edgeroll.s3EdgeSecretName" -}}
{{- if .Values.s3.edgeCredentialsSecret -}}{{ .Values.s3.edgeCredentialsSecret }}
{{- else if or .Values.s3.edgeAccessKeyId .Values.s3.edgeSecretAccessKey -}}{{ include "edgeroll.fullname" . }}-s3-edge{{- end -}}
{{- end -}}

{{/* Namespaces whose Secrets the operator may read: the release namespace plus .Values.secretNamespaces. */}}
{{- define "edgeroll.secretNamespaces" -}}
{{- $ns := list .Release.Namespace -}}
{{- range .Values.secretNamespaces }}{{- if not (has . $ns) }}{{- $ns = append $ns . -}}{{- end }}{{- end -}}
{{- join "," $ns -}}
{{- end -}}

{{/* The operator's metrics port, "0" for off; 8081 when the values predate metrics.port (an upgrade with
--reuse-values keeps the old release's values, without the chart's new defaults). */}}
{{- define "edgeroll.metricsPort" -}}
{{- $port := (.Values.metrics).port -}}
{{- if kindIs "invalid" $port }}8081{{ else }}{{ int $port }}{{ end -}}
{{- end -}}

{{/* Operator replicas; 2 when the values predate `replicas` (an upgrade with --reuse-values). */}}
{{- define "edgeroll.replicas" -}}
{{- $replicas := .Values.replicas -}}
{{- if kindIs "invalid" $replicas }}2{{ else }}{{ int $replicas }}{{ end -}}
{{- end -}}
