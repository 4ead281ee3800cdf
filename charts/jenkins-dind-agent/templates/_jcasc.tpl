{{/*
The JCasC document (jenkins.yaml). Brace-style variables are resolved by JCasC from the files of
the admin Secret mounted at $SECRETS (never inline, never in environment variables).
*/}}
{{- define "jda.jcasc" -}}
{{- $agentNs := include "jda.agentNamespace" . -}}
{{- $a := .Values.agent -}}
{{- $j := .Values.controller.jcasc -}}
jenkins:
  systemMessage: {{ .Values.controller.systemMessage | quote }}
  numExecutors: {{ .Values.controller.numExecutors }}
  mode: EXCLUSIVE
  slaveAgentPort: {{ .Values.controller.agentListener.port }}
  securityRealm:
  {{- if $j.securityRealm }}
    {{- toYaml $j.securityRealm | nindent 4 }}
  {{- else }}
    local:
      allowsSignup: false
      users:
        - id: "${jda-admin-user}"
          password: "${jda-admin-password}"
  {{- end }}
  authorizationStrategy:
  {{- if $j.authorizationStrategy }}
    {{- toYaml $j.authorizationStrategy | nindent 4 }}
  {{- else }}
    loggedInUsersCanDoAnything:
      allowAnonymousRead: false
  {{- end }}
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
        {{- if $a.permittedFolders }}
        # only jobs in agent.permittedFolders may use this cloud (KubernetesFolderProperty, jobs: below)
        usageRestricted: true
        {{- end }}
        templates:
          - name: {{ $a.label }}
            label: {{ $a.label }}
            namespace: {{ $agentNs }}
            instanceCap: {{ $a.instanceCap }}
            idleMinutes: {{ $a.idleMinutes }}
            slaveConnectTimeout: {{ int $a.connectTimeoutSeconds }}
            podRetention: {{ $a.podRetention }}
            {{- with include "jda.jcasc.workspaceVolume" . }}{{ . | nindent 12 }}{{ end }}
            yamlMergeStrategy: override
            yaml: |-
              apiVersion: v1
              kind: Pod
              metadata:
                labels:
                  {{- include "jda.agentPodLabels" . | nindent 18 }}
                annotations:
                  {{- include "jda.agentPodAnnotations" . | nindent 18 }}
                  {{- with $a.podAnnotations }}
                  {{- toYaml . | nindent 18 }}
                  {{- end }}
              spec:
                {{- include "jda.agentPodSpec" (dict "root" . "mode" "agent") | nindent 16 }}
          {{- range $t := $a.extraTemplates }}
          {{- $dind := ternary $t.dind true (hasKey $t "dind") }}
          - name: {{ $t.name }}
            label: {{ default $t.name $t.label }}
            namespace: {{ $agentNs }}
            instanceCap: {{ default $a.instanceCap $t.instanceCap }}
            idleMinutes: {{ ternary $t.idleMinutes $a.idleMinutes (hasKey $t "idleMinutes") }}
            slaveConnectTimeout: {{ int $a.connectTimeoutSeconds }}
            podRetention: {{ $a.podRetention }}
            {{- with include "jda.jcasc.workspaceVolume" $ }}{{ . | nindent 12 }}{{ end }}
            {{- if $dind }}
            # The chart's dind pod plus these containers (the Kubernetes plugin merges the yaml of the
            # template named in inheritFrom with this one: containers and volumes by name).
            inheritFrom: {{ $a.label }}
            yamlMergeStrategy: merge
            yaml: |-
              spec:
                {{- include "jda.extraTemplateSpec" (dict "root" $ "t" $t "dind" true) | trim | nindent 16 }}
            {{- else }}
            yamlMergeStrategy: override
            yaml: |-
              apiVersion: v1
              kind: Pod
              metadata:
                labels:
                  {{- include "jda.agentPodLabels" $ | nindent 18 }}
                {{- with $a.podAnnotations }}
                annotations:
                  {{- toYaml . | nindent 18 }}
                {{- end }}
              spec:
                {{- include "jda.agentPodSpec" (dict "root" $ "mode" "plain" "template" $t) | nindent 16 }}
            {{- end }}
          {{- end }}
    {{- if $a.registry.push }}
    # The push template: its pods alone get the registry credentials. A second cloud, listed after the
    # first (a podTemplate step without `cloud:` takes the first), usage-restricted to
    # agent.registry.pushFolders, with its own ServiceAccount (a SYSTEM-scoped credential, which jobs
    # cannot read) and a Role in the push namespace only.
    - kubernetes:
        name: kubernetes-push
        namespace: {{ include "jda.pushNamespace" . }}
        credentialsId: jda-push-cloud
        usageRestricted: true
        jenkinsUrl: {{ include "jda.controllerUrl" . }}
        {{- if .Values.controller.websocket }}
        webSocket: true
        {{- else }}
        jenkinsTunnel: {{ include "jda.agentTunnel" . }}
        {{- end }}
        containerCapStr: "{{ $a.instanceCap }}"
        podRetention: {{ $a.podRetention }}
        templates:
          - name: {{ $a.label }}-push
            label: {{ $a.label }}-push
            namespace: {{ include "jda.pushNamespace" . }}
            instanceCap: {{ $a.instanceCap }}
            # never kept for another job: the pod holds registry credentials
            idleMinutes: 0
            slaveConnectTimeout: {{ int $a.connectTimeoutSeconds }}
            podRetention: {{ $a.podRetention }}
            {{- with include "jda.jcasc.workspaceVolume" . }}{{ . | nindent 12 }}{{ end }}
            yamlMergeStrategy: override
            yaml: |-
              apiVersion: v1
              kind: Pod
              metadata:
                labels:
                  {{- include "jda.agentPodLabels" . | nindent 18 }}
                annotations:
                  {{- include "jda.agentPodAnnotations" . | nindent 18 }}
                  {{- with $a.podAnnotations }}
                  {{- toYaml . | nindent 18 }}
                  {{- end }}
              spec:
                {{- include "jda.agentPodSpec" (dict "root" . "mode" "agent" "push" true) | nindent 16 }}
    {{- end }}
{{- if $a.registry.push }}
credentials:
  system:
    domainCredentials:
      - credentials:
          # the push cloud's ServiceAccount token; SYSTEM scope: the cloud finds it, no job can
          - string:
              scope: SYSTEM
              id: jda-push-cloud
              description: "ServiceAccount token of the kubernetes-push cloud (jenkins-dind-agent)"
              secret: "${jda-push-cloud-token}"
{{- end }}
unclassified:
  location:
    url: {{ include "jda.publicUrl" . | quote }}
{{- $folders := include "jda.folders" . | fromJsonArray }}
{{- if or $folders .Values.exampleJob.enabled }}
jobs:
  # one script: the folders first, then the example job (which may live in one of them)
  - script: |
      {{- with $folders }}
      {{- include "jda.foldersDsl" $ | trim | nindent 6 }}
      {{- end }}
      {{- if .Values.exampleJob.enabled }}
      {{- include "jda.exampleJobDsl" . | nindent 6 }}
      {{- end }}
{{- end }}
{{- end -}}

{{/* Job DSL for the folders the chart owns (agent.permittedFolders, agent.registry.pushFolders,
exampleJob.folder): each with the clouds its jobs may use (the Kubernetes plugin's folder property,
symbol `kubernetes`, setter permittedClouds). job-dsl regenerates a folder's whole configuration at
every JCasC apply: settings made in the UI do not survive (folder credentials do). */}}
{{- define "jda.foldersDsl" -}}
{{- range include "jda.folders" . | fromJsonArray }}
folder('{{ .name }}') {
  description('Managed by the jenkins-dind-agent chart: changes made here are replaced at the next configuration apply.')
  {{- with .clouds }}
  properties {
    kubernetes {
      permittedClouds([{{ range $i, $c := . }}{{ if $i }}, {{ end }}'{{ $c }}'{{ end }}])
    }
  }
  {{- end }}
}
{{- end }}
{{- end -}}

{{/* JCasC workspaceVolume of every template: the Kubernetes plugin replaces a pod-yaml volume named
workspace-volume with the one it builds from this. */}}
{{- define "jda.jcasc.workspaceVolume" -}}
{{- with .Values.agent.workspaceVolume.sizeLimit -}}
workspaceVolume:
  emptyDirWorkspaceVolume:
    memory: false
    sizeLimit: {{ . | quote }}
{{- end -}}
{{- end -}}

{{/* The JCasC files CASC_JENKINS_CONFIG (a directory) holds: the chart's jenkins.yaml and one file per
controller.jcasc.configScripts entry. JCasC merges them (errorOnConflict): lists add up, a scalar or a
describable the chart sets must not be set again, which is refused here, naming the value to use. */}}
{{- define "jda.cascFiles" -}}
{{- $owned := dict
  "jenkins.systemMessage" "controller.systemMessage"
  "jenkins.numExecutors" "controller.numExecutors"
  "jenkins.mode" "nothing: agents take only builds that ask for their label (EXCLUSIVE)"
  "jenkins.slaveAgentPort" "controller.agentListener.port"
  "jenkins.securityRealm" "controller.jcasc.securityRealm"
  "jenkins.authorizationStrategy" "controller.jcasc.authorizationStrategy"
  "jenkins.crumbIssuer" "nothing: CSRF protection stays on"
  "unclassified.location.url" "controller.url"
-}}
jenkins.yaml: |
  {{- include "jda.jcasc" . | nindent 2 }}
{{- range $name, $text := .Values.controller.jcasc.configScripts }}
{{- $doc := fromYaml $text }}
{{- if hasKey $doc "Error" }}
{{- fail (printf "controller.jcasc.configScripts.%s is not a YAML mapping: %s" $name $doc.Error) }}
{{- end }}
{{- range $path := keys $owned | sortAlpha }}
{{- $parts := splitList "." $path }}
{{- $node := $doc }}
{{- range $parts }}{{ if and (kindIs "map" $node) (hasKey $node .) }}{{ $node = index $node . }}{{ else }}{{ $node = "jda:absent" }}{{ end }}{{ end }}
{{- if ne (toString $node) "jda:absent" }}
{{- fail (printf "controller.jcasc.configScripts.%s sets %s, which the chart's jenkins.yaml already sets (JCasC refuses the conflict at start): use %s" $name $path (index $owned $path)) }}
{{- end }}
{{- end }}
{{- $clouds := list }}
{{- if kindIs "map" $doc.jenkins }}{{ $clouds = $doc.jenkins.clouds | default list }}{{ end }}
{{- range $i, $cloud := $clouds }}
{{- if and (kindIs "map" $cloud) (kindIs "map" $cloud.kubernetes) (eq (toString $cloud.kubernetes.name) "kubernetes") }}
{{- fail (printf "controller.jcasc.configScripts.%s defines jenkins.clouds[%d] named kubernetes, the chart's cloud: add pod templates with agent.extraTemplates, or give your cloud another name" $name $i) }}
{{- end }}
{{- end }}
{{ $name }}.yaml: |
  {{- $text | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Job DSL for the example pipeline. The Jenkinsfile and the sample Dockerfile come from
files/ verbatim, inside single-quoted Groovy strings. */}}
{{- define "jda.exampleJobDsl" -}}
{{- $label := ternary (printf "%s-push" .Values.agent.label) .Values.agent.label .Values.agent.registry.push -}}
{{- $jenkinsfile := .Files.Get "files/Jenkinsfile" | replace "label 'dind'" (printf "label '%s'" $label) -}}
{{- $job := .Values.exampleJob.name -}}
{{- with .Values.exampleJob.folder }}{{ $job = printf "%s/%s" . $job }}{{ end -}}
pipelineJob('{{ $job }}') {
  description('Builds the multi-stage sample in a dind agent pod (label {{ $label }}); pushes when PUSH is set.')
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
