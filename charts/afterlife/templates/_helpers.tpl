{{/* Chart name. */}}
{{- define "afterlife.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name prefix of every object. */}}
{{- define "afterlife.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of a component's objects: dict "root" $ "component" "webhook". */}}
{{- define "afterlife.componentName" -}}
{{- printf "%s-%s" (include "afterlife.fullname" .root) .component -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "afterlife.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "afterlife.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: afterlife
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of a component: dict "root" $ "component" "webhook". */}}
{{- define "afterlife.selectorLabels" -}}
app.kubernetes.io/name: {{ include "afterlife.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of a component's objects. */}}
{{- define "afterlife.componentLabels" -}}
{{ include "afterlife.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Image reference: digest wins over tag; tag defaults to appVersion. */}}
{{- define "afterlife.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Pod security context (non-root, seccomp RuntimeDefault). Argument: root context. */}}
{{- define "afterlife.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurity.runAsUser }}
runAsGroup: {{ .Values.podSecurity.runAsGroup }}
fsGroup: {{ .Values.podSecurity.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container security context: hardened, not configurable. */}}
{{- define "afterlife.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
seccompProfile:
  type: RuntimeDefault
capabilities:
  drop:
    - ALL
{{- end -}}

{{/* Pod scheduling fields of a component: dict "root" $ "component" "webhook" "values" .Values.webhook. */}}
{{- define "afterlife.podScheduling" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- if .values.topologySpread.enabled }}
topologySpreadConstraints:
  {{- range list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
  - maxSkew: 1
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $.values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "afterlife.selectorLabels" (dict "root" $.root "component" $.component) | nindent 8 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Extra env entries from <component>.extraEnv, sorted by name. */}}
{{- define "afterlife.extraEnv" -}}
{{- range $name := keys . | sortAlpha }}
- name: {{ $name }}
  value: {{ index $ $name | toString | quote }}
{{- end }}
{{- end -}}

{{/* Webhook TLS Secret name. */}}
{{- define "afterlife.webhook.tlsSecretName" -}}
{{- if and (not .Values.certManager.enabled) .Values.webhook.tls.existingSecret -}}
{{- .Values.webhook.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "afterlife.componentName" (dict "root" . "component" "webhook")) -}}
{{- end -}}
{{- end -}}

{{/* Fails rendering when the webhook has no TLS source (the schema rejects it too). */}}
{{- define "afterlife.webhook.checkTls" -}}
{{- if and .Values.webhook.enabled (not .Values.certManager.enabled) (not .Values.webhook.tls.autoGenerate) (not .Values.webhook.tls.existingSecret) -}}
{{- fail "webhook.enabled needs a TLS source: set certManager.enabled=true, webhook.tls.autoGenerate=true or webhook.tls.existingSecret (+ webhook.tls.caBundle)" -}}
{{- end -}}
{{- if and .Values.webhook.enabled (not .Values.certManager.enabled) .Values.webhook.tls.existingSecret (not .Values.webhook.tls.caBundle) -}}
{{- fail "webhook.tls.existingSecret needs webhook.tls.caBundle (the PEM CA that signed it)" -}}
{{- end -}}
{{- end -}}

{{/* host:port of the scaler's gRPC service: autoscaler.scalerAddress, else this chart's scaler Service. */}}
{{- define "afterlife.scalerAddress" -}}
{{- if .Values.autoscaler.scalerAddress -}}
{{- .Values.autoscaler.scalerAddress -}}
{{- else -}}
{{- printf "%s.%s.svc:%d" (include "afterlife.componentName" (dict "root" . "component" "scaler")) .Release.Namespace (int .Values.scaler.grpcPort) -}}
{{- end -}}
{{- end -}}

{{/*
Fails rendering when event-scaled revisions would have nobody to scale them:
- the webhook's `afterlife` route gives them the class `afterlife.dev`, which only the autoscaler
  reconciles; without it Knative creates PodAutoscalers nobody owns and the revisions never
  become Ready;
- the autoscaler points every ScaledObject at the scaler; without one (and no scalerAddress)
  KEDA has nothing to ask.
*/}}
{{- define "afterlife.checkScaling" -}}
{{- if and .Values.webhook.enabled (eq .Values.webhook.scalingRoute "afterlife") (not .Values.autoscaler.enabled) -}}
{{- fail "webhook.scalingRoute=afterlife needs autoscaler.enabled=true (revisions of class afterlife.dev are reconciled by nobody else); set webhook.scalingRoute=autoscaler-keda on clusters running knative-extensions/autoscaler-keda, or enable the autoscaler" -}}
{{- end -}}
{{- if and .Values.autoscaler.enabled (not .Values.scaler.enabled) (not .Values.autoscaler.scalerAddress) -}}
{{- fail "autoscaler.enabled needs a scaler for its ScaledObjects: set scaler.enabled=true or autoscaler.scalerAddress (host:port of an Afterlife scaler)" -}}
{{- end -}}
{{- /* The chart's scaler serving TLS: plaintext triggers could never reach it. */ -}}
{{- if and .Values.autoscaler.enabled .Values.scaler.enabled (not .Values.autoscaler.scalerAddress) .Values.scaler.tls.existingSecret (not .Values.autoscaler.scalerTlsAuthentication) -}}
{{- fail "scaler.tls.existingSecret makes the scaler serve TLS: set autoscaler.scalerTlsAuthentication to a KEDA ClusterTriggerAuthentication giving caCert (and tlsClientCert/tlsClientKey with scaler.tls.clientAuth), or the autoscaler's ScaledObjects cannot reach it" -}}
{{- end -}}
{{- /* autoscaler-keda's ScaledObjects name the Service (`function`), so the gateway must count per Service, not per revision. */ -}}
{{- if and .Values.webhook.enabled .Values.gateway.enabled (eq .Values.webhook.scalingRoute "autoscaler-keda") (eq .Values.gateway.discovery.mode "knative") -}}
{{- fail "webhook.scalingRoute=autoscaler-keda needs the gateway to count per Knative Service: set gateway.discovery.mode=label, gateway.discovery.functionLabel=serving.knative.dev/service and gateway.discovery.serviceSelector=networking.internal.knative.dev/serviceType=Private" -}}
{{- end -}}
{{- end -}}
