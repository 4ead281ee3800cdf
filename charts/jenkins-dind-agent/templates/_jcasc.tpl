{{/*
The JCasC document (jenkins.yaml). Brace-style variables are resolved by JCasC from the files of
the admin Secret mounted at $SECRETS (never inline, never in environment variables).
*/}}
{{- define "jda.jcasc" -}}
{{- $agentNs := include "jda.agentNamespace" . -}}
{{- $a := .Values.agent -}}
jenkins:
  systemMessage: "jenkins-dind-agent: builds run in Kubernetes agent pods labelled '{{ $a.label }}' with their own dockerd"
  numExecutors: {{ .Values.controller.numExecutors }}
  mode: EXCLUSIVE
  slaveAgentPort: {{ .Values.controller.agentListener.port }}
  securityRealm:
    local:
      allowsSignup: false
      users:
        - id: "${jda-admin-user}"
          password: "${jda-admin-password}"
  authorizationStrategy:
    loggedInUsersCanDoAnything:
      allowAnonymousRead: false
  # DefaultCrumbIssuer ("standard") takes no attributes since its excludeClientIPFromCrumb was deprecated.
  crumbIssuer: standard
  clouds:
    - kubernetes:
        name: kubernetes
        namespace: {{ $agentNs }}
        jenkinsUrl: {{ include "jda.controllerUrl" . }}
        {{- if .Values.controller.websocket }}
        webSocket: true
        {{- else }}
        jenkinsTunnel: {{ include "jda.agentTunnel" . }}
        {{- end }}
        containerCapStr: "{{ $a.containerCap }}"
        podRetention: {{ $a.podRetention }}
        templates:
          - name: {{ $a.label }}
            label: {{ $a.label }}
            namespace: {{ $agentNs }}
            instanceCap: {{ $a.instanceCap }}
            idleMinutes: {{ $a.idleMinutes }}
            podRetention: {{ $a.podRetention }}
            yamlMergeStrategy: override
            yaml: |-
              apiVersion: v1
              kind: Pod
              metadata:
                labels:
                  {{- include "jda.agentSelectorLabels" . | nindent 18 }}
                annotations:
                  {{- include "jda.agentPodAnnotations" . | nindent 18 }}
              spec:
                {{- include "jda.agentPodSpec" (dict "root" . "mode" "agent") | nindent 16 }}
unclassified:
  location:
    url: {{ default (printf "%s/" (include "jda.controllerUrl" .)) .Values.controller.url | quote }}
{{- if .Values.exampleJob.enabled }}
jobs:
  - script: |
      {{- include "jda.exampleJobDsl" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* Job DSL for the example pipeline. The Jenkinsfile and the sample Dockerfile come from
files/ verbatim, inside single-quoted Groovy strings. */}}
{{- define "jda.exampleJobDsl" -}}
{{- $jenkinsfile := .Files.Get "files/Jenkinsfile" | replace "label 'dind'" (printf "label '%s'" .Values.agent.label) -}}
pipelineJob('{{ .Values.exampleJob.name }}') {
  description('Builds the multi-stage sample in a dind agent pod (label {{ .Values.agent.label }}); pushes when PUSH is set.')
  parameters {
    stringParam('IMAGE', '{{ include "jda.exampleImage" . }}', 'Image reference to build')
    booleanParam('PUSH', {{ .Values.agent.registry.push }}, 'Push IMAGE to the registry')
    stringParam('BASE_IMAGE', '{{ .Values.exampleJob.baseImage }}', 'Base image of both stages')
    textParam('DOCKERFILE', '''{{ .Files.Get "files/sample/Dockerfile" }}''', 'Multi-stage Dockerfile to build')
  }
  definition {
    cps {
      script('''{{ $jenkinsfile }}''')
      sandbox()
    }
  }
}
{{- end -}}
