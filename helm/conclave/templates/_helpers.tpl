{{/* Chart name. */}}
{{- define "conclave.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name (release-aware, at most 63 characters). */}}
{{- define "conclave.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "conclave.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "conclave.selectorLabels" -}}
app.kubernetes.io/name: {{ include "conclave.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "conclave.labels" -}}
helm.sh/chart: {{ include "conclave.chart" . }}
{{ include "conclave.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | replace "+" "_" | replace "@" "_" | replace ":" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: conclave
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "conclave.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "conclave.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the pods read CONCLAVE_JWT_SECRET, CONCLAVE_ENCRYPTION_KEYS and the URIs from. */}}
{{- define "conclave.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "conclave.fullname" . }}
{{- end }}
{{- end }}

{{- define "conclave.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The leader-election Lease's name. */}}
{{- define "conclave.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (printf "%s-leader" (include "conclave.fullname" .) | trunc 63 | trimSuffix "-") -}}
{{- end -}}

{{/*
Combinations that render valid objects but cannot work, refused with the reason. Included once,
from the Deployment.
*/}}
{{- define "conclave.validate" -}}
{{- $le := .Values.leaderElection -}}
{{- if and $le.enabled (not .Values.serviceAccount.automountToken) -}}
{{- fail "leaderElection.enabled=true needs serviceAccount.automountToken=true: the pods hold the Lease through the Kubernetes API with their service-account token. Without it no pod ever leads, indexes are never created and no pod turns ready. Set leaderElection.enabled=false to let every pod run the one-per-cluster jobs itself." -}}
{{- end -}}
{{- if and $le.enabled .Values.networkPolicy.enabled (not .Values.networkPolicy.kubeApi.ports) -}}
{{- fail "networkPolicy.kubeApi.ports is empty while leaderElection.enabled=true: the pods could not reach the API server for the Lease (and an empty port list would open every port). List the API server's ports (kubectl get endpoints kubernetes), or set leaderElection.enabled=false." -}}
{{- end -}}
{{- if hasKey .Values.podSecurityContext "enabled" -}}
{{- fail "podSecurityContext.enabled is a Bitnami chart convention this chart does not use: podSecurityContext is rendered as the pod's securityContext as it stands, and Kubernetes has no `enabled` field. Remove the key (to drop a setting, set it to null, e.g. --set podSecurityContext.fsGroup=null)." -}}
{{- end -}}
{{- if hasKey .Values.securityContext "enabled" -}}
{{- fail "securityContext.enabled is a Bitnami chart convention this chart does not use: securityContext is rendered as the container's securityContext as it stands, and Kubernetes has no `enabled` field. Remove the key." -}}
{{- end -}}
{{- end -}}

{{/* The reencrypt Job's pods: not the server's selector labels, so the Service, the PDB and the
     server's NetworkPolicy never select them. */}}
{{- define "conclave.reencryptSelectorLabels" -}}
app.kubernetes.io/name: {{ include "conclave.name" . }}-reencrypt
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
