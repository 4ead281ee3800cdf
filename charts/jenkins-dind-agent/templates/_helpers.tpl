{{/*
Names, labels and the small derived facts every template agrees on.
*/}}
{{- define "jda.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jda.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "jda.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jda.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "jda.labels" -}}
{{ include "jda.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Namespace of the agent pods: a namespace of their own (agent.namespace.name, else
"<release namespace>-<release name>-agents", or "<release namespace>-agents" for a release named after its
namespace; the front is cut to 56 characters so that the name stays a 63-character label), or the release
namespace with agent.namespace.sameAsController. Two releases never share a default agent namespace: each
would claim the Namespace object. */}}
{{- define "jda.agentNamespace" -}}
{{- $ns := .Values.agent.namespace -}}
{{- if $ns.sameAsController -}}
{{- .Release.Namespace -}}
{{- else if $ns.name -}}
{{- $ns.name -}}
{{- else -}}
{{- $front := ternary .Release.Namespace (printf "%s-%s" .Release.Namespace .Release.Name) (eq .Release.Name .Release.Namespace) -}}
{{- printf "%s-agents" (trunc 56 $front | trimSuffix "-") -}}
{{- end -}}
{{- end -}}

{{/* "true" when the chart creates the agent namespace. */}}
{{- define "jda.createsAgentNamespace" -}}
{{- if and .Values.agent.namespace.create (not .Values.agent.namespace.sameAsController) -}}
true
{{- end -}}
{{- end -}}

{{- define "jda.controllerServiceAccount" -}}
{{- include "jda.fullname" . -}}
{{- end -}}

{{- define "jda.agentServiceAccount" -}}
{{- printf "%s-agent" (include "jda.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Namespace of the push pods (agent.registry.push): agent.registry.pushNamespace, else
"<agent namespace>-push". */}}
{{- define "jda.pushNamespace" -}}
{{- default (printf "%s-push" (trunc 58 (include "jda.agentNamespace" .) | trimSuffix "-")) .Values.agent.registry.pushNamespace -}}
{{- end -}}

{{/* The push cloud's ServiceAccount, in the release namespace: a Role in the push namespace only. */}}
{{- define "jda.pushServiceAccount" -}}
{{- include "jda.suffixedName" (dict "root" . "suffix" "push") -}}
{{- end -}}

{{/* Namespaces agent pods run in: the agent namespace, and the push namespace with agent.registry.push. */}}
{{- define "jda.agentNamespaces" -}}
{{- $out := list (include "jda.agentNamespace" .) -}}
{{- if .Values.agent.registry.push }}{{ $out = append $out (include "jda.pushNamespace" .) }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The folders the chart creates (job-dsl), each with the clouds its jobs may use: JSON
[{name, clouds}], from agent.permittedFolders, agent.registry.pushFolders and exampleJob.folder. */}}
{{- define "jda.folders" -}}
{{- $a := .Values.agent -}}
{{- $names := concat ($a.permittedFolders | default list) ($a.registry.pushFolders | default list) -}}
{{- with .Values.exampleJob.folder }}{{ $names = append $names . }}{{ end -}}
{{- $out := list -}}
{{- range $name := $names | uniq -}}
{{- $clouds := list -}}
{{- if has $name ($a.permittedFolders | default list) }}{{ $clouds = append $clouds "kubernetes" }}{{ end -}}
{{- if and $a.registry.push (has $name ($a.registry.pushFolders | default list)) }}{{ $clouds = append $clouds "kubernetes-push" }}{{ end -}}
{{- $out = append $out (dict "name" $name "clouds" $clouds) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{- define "jda.agentServiceName" -}}
{{- include "jda.suffixedName" (dict "root" . "suffix" "agent") -}}
{{- end -}}

{{/* Path prefix Jenkins serves under ("" for the root): controller.ingress.path when the Ingress is on. */}}
{{- define "jda.uriPrefix" -}}
{{- $i := .Values.controller.ingress -}}
{{- if and $i.enabled (ne $i.path "/") -}}
{{- trimSuffix "/" $i.path -}}
{{- end -}}
{{- end -}}

{{/* In-cluster URL of the controller UI Service (with the prefix); agents and Spinnaker use it. */}}
{{- define "jda.controllerUrl" -}}
{{- printf "http://%s.%s.svc.%s:%d%s" (include "jda.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.controller.service.port) (include "jda.uriPrefix" .) -}}
{{- end -}}

{{/* Public URL of the UI, ending in "/": controller.url, else the Ingress's first host (https when a TLS
entry names it), else the in-cluster URL. */}}
{{- define "jda.publicUrl" -}}
{{- $c := .Values.controller -}}
{{- if $c.url -}}
{{- printf "%s/" (trimSuffix "/" $c.url) -}}
{{- else if and $c.ingress.enabled $c.ingress.hosts -}}
{{- $host := first $c.ingress.hosts -}}
{{- $scheme := "http" -}}
{{- range $c.ingress.tls }}{{ if has $host (.hosts | default list) }}{{ $scheme = "https" }}{{ end }}{{ end -}}
{{- printf "%s://%s%s/" $scheme $host (include "jda.uriPrefix" .) -}}
{{- else -}}
{{- printf "%s/" (include "jda.controllerUrl" .) -}}
{{- end -}}
{{- end -}}

{{/* NO_PROXY of agent pods: loopback, the cluster's Services, the registry and agent.proxy.noProxy. */}}
{{- define "jda.noProxy" -}}
{{- $hosts := list "localhost" "127.0.0.1" "::1" ".svc" (printf ".svc.%s" .Values.clusterDomain) -}}
{{- with .Values.agent.registry.server }}{{ $hosts = append $hosts (first (splitList ":" .)) }}{{ end -}}
{{- range splitList "," .Values.agent.proxy.noProxy }}{{ with trim . }}{{ $hosts = append $hosts . }}{{ end }}{{ end -}}
{{- join "," (uniq $hosts) -}}
{{- end -}}

{{/* "true" when agent pods use a proxy. */}}
{{- define "jda.agentProxy" -}}
{{- $p := .Values.agent.proxy -}}
{{- if or $p.httpProxy $p.httpsProxy }}true{{ end -}}
{{- end -}}

{{/* Name of the Secret holding the JCasC reload token. */}}
{{- define "jda.reloadSecretName" -}}
{{- default (printf "%s-casc-reload" (include "jda.fullname" .)) .Values.controller.jcasc.reload.existingSecret -}}
{{- end -}}

{{/* "true" when the chart's local realm (and so the admin Secret) is in use. */}}
{{- define "jda.localRealm" -}}
{{- if not .Values.controller.jcasc.securityRealm }}true{{ end -}}
{{- end -}}

{{/* host:port of the TCP agent listener Service. */}}
{{- define "jda.agentTunnel" -}}
{{- printf "%s.%s.svc.%s:%d" (include "jda.agentServiceName" .) .Release.Namespace .Values.clusterDomain (int .Values.controller.agentListener.port) -}}
{{- end -}}

{{/* A name or label value of at most 63 characters (. = the string): past 63 cut to 54 plus 8
characters of its sha256, so two long names that differ only at the end stay apart. */}}
{{- define "jda.cut63" -}}
{{- if gt (len .) 63 -}}
{{- printf "%s-%s" (. | trunc 54 | trimSuffix "-") (sha256sum . | trunc 8) -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/* <fullname>-<suffix> (. = dict "root" "suffix") for objects beside the controller's, cut by
jda.cut63: a plain cut of a long fullname gives the controller's own name. */}}
{{- define "jda.suffixedName" -}}
{{- include "jda.cut63" (printf "%s-%s" (include "jda.fullname" .root) .suffix) -}}
{{- end -}}

{{/* Docker Hub's mirror. */}}
{{- define "jda.mirrorName" -}}
{{- include "jda.suffixedName" (dict "root" . "suffix" "mirror") -}}
{{- end -}}

{{/* The pull-through mirror as the agents' dockerd uses it (plain HTTP inside the cluster). */}}
{{- define "jda.mirrorUrl" -}}
{{- printf "http://%s.%s.svc.%s:5000" (include "jda.mirrorName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/* mirror.registries as the templates use them, a JSON list in list order: host, upstream (default
https://<host>, no trailing slash: Distribution appends /v2/), upstreamSecret, slug (the host in a
label's alphabet) and name (of its mirror's objects: <fullname>-mirror-<slug>, so a host keeps its
cache claim when the list is reordered); both cut by jda.cut63. */}}
{{- define "jda.mirrorRegistries" -}}
{{- $root := . -}}
{{- $out := list -}}
{{- range $i, $r := .Values.mirror.registries | default list -}}
{{- $slug := include "jda.cut63" ($r.host | lower | replace "." "-" | replace ":" "-") -}}
{{- $name := include "jda.suffixedName" (dict "root" $root "suffix" (printf "mirror-%s" $slug)) -}}
{{- $out = append $out (dict "host" $r.host "upstream" ($r.upstream | default (printf "https://%s" $r.host) | trimSuffix "/") "upstreamSecret" ($r.upstreamSecret | default "") "slug" $slug "name" $name) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* certs.d/<host>/hosts.toml for one entry of jda.mirrorRegistries (. = dict root, r): pulls and
tag resolution go to that registry's mirror first, then to the registry itself (containerd's
hosts.toml, which dockerd reads for its containerd image store and its BuildKit). A hosts.toml
switches off the directory's implicit ca.crt, so a CA of agent.caCertificates for the same host is
named again. */}}
{{- define "jda.mirrorHostsToml" -}}
{{- $root := .root -}}
{{- $r := .r -}}
# {{ $r.host }}: the chart's mirror of {{ $r.upstream }} first, then {{ $r.host }} itself
# (no server key: containerd's default for the host). Written by jenkins-dind-agent.
{{- range $root.Values.agent.caCertificates.hosts | default list }}
{{- if eq .host $r.host }}
ca = "ca.crt"
{{- end }}
{{- end }}
[host.{{ printf "http://%s.%s.svc.%s:5000" $r.name $root.Release.Namespace $root.Values.clusterDomain | quote }}]
  capabilities = ["pull", "resolve"]
{{- end -}}

{{- define "jda.adminSecretName" -}}
{{- default (printf "%s-admin" (include "jda.fullname" .)) .Values.controller.admin.existingSecret -}}
{{- end -}}

{{/* repository:tag, plus @digest when one is pinned. */}}
{{- define "jda.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- with .digest }}@{{ . }}{{ end -}}
{{- end -}}

{{/* The plugins jenkins-plugin-cli installs, one "id:version" per line, sorted: the lock's base set,
its prometheus set when enabled, then controller.additionalPlugins (an id already locked gets the new pin). */}}
{{- define "jda.plugins" -}}
{{- $lock := .Files.Get "files/plugins-lock.yaml" | fromYaml -}}
{{- $set := dict -}}
{{- range $id, $v := $lock.sets.base }}{{ $_ := set $set $id (toString $v) }}{{ end -}}
{{- if .Values.controller.prometheus.enabled -}}
{{- range $id, $v := $lock.sets.prometheus }}{{ $_ := set $set $id (toString $v) }}{{ end -}}
{{- end -}}
{{- range .Values.controller.additionalPlugins -}}
{{- $parts := splitn ":" 2 . -}}
{{- $_ := set $set $parts._0 $parts._1 -}}
{{- end -}}
{{- range $id := keys $set | sortAlpha }}
{{ $id }}:{{ index $set $id }}
{{- end -}}
{{- end -}}

{{/* "true" when dind runs as a native sidecar (initContainer with restartPolicy Always). auto: from
Kubernetes 1.33 on, where SidecarContainers is GA and locked on (no cluster of that version can drop
restartPolicy from an init container); below, the classic container, which works on every version.
On 1.29-1.32 the gate is beta (on unless switched off): native sidecars there only when set to true. */}}
{{- define "jda.nativeSidecar" -}}
{{- $mode := toString .Values.agent.nativeSidecar -}}
{{- if eq $mode "auto" -}}
{{- semverCompare ">=1.33-0" .Capabilities.KubeVersion.Version | toString -}}
{{- else -}}
{{- $mode -}}
{{- end -}}
{{- end -}}

{{/* Full image reference the example job builds (and pushes when a registry is set). */}}
{{- define "jda.exampleImage" -}}
{{- $repo := .Values.exampleJob.imageName -}}
{{- with .Values.agent.registry.server -}}
{{- $repo = printf "%s/%s" . $repo -}}
{{- end -}}
{{- printf "%s:build" $repo -}}
{{- end -}}

{{- define "jda.controller.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "jda.controller.mounts" -}}
- name: jenkins-home
  mountPath: /var/jenkins_home
- name: config
  mountPath: /var/jenkins_config
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* JVM options that make the controller's JVMs (Jenkins, jenkins-plugin-cli) trust the truststore the
plugin installer builds from controller.caCertificates; empty without CAs. The password only guards the
file's integrity: a truststore holds public certificates. */}}
{{- define "jda.controller.trustOpts" -}}
{{- $ca := .Values.controller.caCertificates -}}
{{- if or $ca.configMap $ca.secret -}}
-Djavax.net.ssl.trustStore=/var/jenkins_truststore/truststore.p12 -Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword=changeit
{{- end -}}
{{- end -}}

{{/* Labels that select agent pods (the JCasC template and the helm test pod carry them). */}}
{{- define "jda.agentSelectorLabels" -}}
{{ include "jda.selectorLabels" . }}
app.kubernetes.io/component: agent
{{- end -}}

{{/* Labels of agent pods: the selector labels plus agent.podLabels. */}}
{{- define "jda.agentPodLabels" -}}
{{ include "jda.agentSelectorLabels" . }}
{{- with .Values.agent.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Checkov findings the agent pod accepts on purpose, each with its reason (tests/security checks them). */}}
{{- define "jda.agentPodAnnotations" -}}
checkov.io/skip1: CKV_K8S_16=dind must be privileged to run dockerd; it listens on the pod loopback only
checkov.io/skip2: CKV_K8S_20=dind must be privileged to run dockerd; jnlp and docker-setup forbid escalation
checkov.io/skip3: CKV_K8S_22=dind must be privileged to run dockerd and writes its runtime state; jnlp is read-only
checkov.io/skip4: CKV_K8S_28=dind must be privileged to run dockerd (build networking needs NET_RAW); jnlp drops ALL
checkov.io/skip5: CKV_K8S_37=dind must be privileged to run dockerd; jnlp and docker-setup drop ALL
checkov.io/skip6: CKV_K8S_43=images are pinned by tag in values; digests are the operator's choice
checkov.io/skip7: CKV_K8S_15=images are pinned by tag; IfNotPresent keeps agent start independent of the registry
checkov.io/skip8: CKV_K8S_40=uid 1000 is the jenkins user of the inbound-agent image and owns its home
checkov.io/skip9: CKV_K8S_8=build pods are batch work that ends with the build; dind has a startupProbe
checkov.io/skip10: CKV_K8S_9=build pods receive no traffic; the agent dials out to the controller
checkov.io/skip11: CKV_K8S_23=dind must be privileged to run dockerd as root; jnlp and docker-setup run as uid 1000
{{- end -}}

{{/* Checkov findings the controller accepts on purpose. */}}
{{- define "jda.controllerAnnotations" -}}
checkov.io/skip1: CKV_K8S_38=the Kubernetes plugin uses this token to create agent pods (Role in the agent namespace only)
checkov.io/skip2: CKV_K8S_43=images are pinned by tag in values; digests are the operator's choice
checkov.io/skip3: CKV_K8S_15=images are pinned by tag; IfNotPresent keeps restarts independent of the registry
checkov.io/skip4: CKV_K8S_40=uid 1000 is the jenkins user of the official image and owns JENKINS_HOME
{{- if .Values.controller.jcasc.reload.enabled }}
checkov.io/skip5: CKV_K8S_35=the JCasC reload token; the configuration-as-code plugin reads it only from CASC_RELOAD_TOKEN or a system property (TokenReloadAction)
{{- end }}
{{- end -}}

{{/* Checkov findings the mirror accepts on purpose. */}}
{{- define "jda.mirrorAnnotations" -}}
checkov.io/skip1: CKV_K8S_40=uid 1000 owns the cache volume (fsGroup); no image user to match
{{- if .upstreamSecret }}
checkov.io/skip2: CKV_K8S_35=Distribution takes upstream credentials only from its config or REGISTRY_PROXY_* variables; both come from a Secret
{{- end }}
{{- end -}}

{{/* controller.affinity plus, unless controller.agentAntiAffinity is none, a pod anti-affinity term
against the label the Kubernetes plugin puts on every pod it starts (KubernetesCloud.DEFAULT_POD_LABELS,
jenkins=slave: the chart sets no cloud podLabels), so Jenkinsfile-defined pods count as well. */}}
{{- define "jda.controllerAffinity" -}}
{{- $c := .Values.controller -}}
{{- $affinity := deepCopy ($c.affinity | default dict) -}}
{{- if ne $c.agentAntiAffinity "none" -}}
{{- $term := dict "labelSelector" (dict "matchLabels" (dict "jenkins" "slave")) "namespaces" (list (include "jda.agentNamespace" .)) "topologyKey" "kubernetes.io/hostname" -}}
{{- $anti := $affinity.podAntiAffinity | default dict -}}
{{- if eq $c.agentAntiAffinity "required" -}}
{{- $_ := set $anti "requiredDuringSchedulingIgnoredDuringExecution" (append ($anti.requiredDuringSchedulingIgnoredDuringExecution | default list) $term) -}}
{{- else -}}
{{- $_ := set $anti "preferredDuringSchedulingIgnoredDuringExecution" (append ($anti.preferredDuringSchedulingIgnoredDuringExecution | default list) (dict "weight" 100 "podAffinityTerm" $term)) -}}
{{- end -}}
{{- $_ := set $affinity "podAntiAffinity" $anti -}}
{{- end -}}
{{- with $affinity }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* An IPv4 address as a number. */}}
{{- define "jda.ipv4" -}}
{{- $o := splitList "." . -}}
{{- add (mul (atoi (index $o 0)) 16777216) (mul (atoi (index $o 1)) 65536) (mul (atoi (index $o 2)) 256) (atoi (index $o 3)) -}}
{{- end -}}

{{/* "true" when the IPv4 CIDR .cidr covers the address .ip (both as written in a NetworkPolicy). */}}
{{- define "jda.cidrCovers" -}}
{{- $c := splitList "/" .cidr -}}
{{- $bits := 32 -}}
{{- if eq (len $c) 2 }}{{ $bits = atoi (index $c 1) }}{{ end -}}
{{- $size := 1 -}}
{{- range until (int (sub 32 $bits)) }}{{ $size = mul $size 2 }}{{ end -}}
{{- if eq (div (include "jda.ipv4" (index $c 0) | atoi) $size) (div (include "jda.ipv4" .ip | atoi) $size) }}true{{ end -}}
{{- end -}}

{{/* The addresses agent egress never opens: the link-local metadata address and the API server's
(networkPolicy.agentEgress.apiServerAddresses). Not looked up in the cluster: a lookup in the default
namespace fails the install of anyone who may not read it, and a GitOps render has no cluster. */}}
{{- define "jda.egressDenied" -}}
{{- $out := list "169.254.169.254" -}}
{{- $out = concat $out (.Values.networkPolicy.agentEgress.apiServerAddresses | default list) -}}
{{- toJson (uniq $out) -}}
{{- end -}}

{{/* Which pods are agents, as NetworkPolicy peers (one per entry, JSON {name, namespace, labels}): in a
namespace of their own, every pod there (Jenkinsfile podTemplates included), and every pod of the push
namespace (agent.registry.push); beside the controller, the chart's
agent labels and, separately, the label the Kubernetes plugin puts on every pod it starts
(jenkins=slave, KubernetesCloud.DEFAULT_POD_LABELS). */}}
{{- define "jda.agentSelectors" -}}
{{- $ns := include "jda.agentNamespace" . -}}
{{- if ne $ns .Release.Namespace -}}
{{- $out := list (dict "name" "agents" "namespace" $ns "labels" dict) -}}
{{- if .Values.agent.registry.push -}}
{{- $out = append $out (dict "name" "push" "namespace" (include "jda.pushNamespace" .) "labels" dict) -}}
{{- end -}}
{{- toJson $out -}}
{{- else -}}
{{- toJson (list (dict "name" "agents" "namespace" $ns "labels" (include "jda.agentSelectorLabels" . | fromYaml)) (dict "name" "agents-plugin-pods" "namespace" $ns "labels" (dict "jenkins" "slave"))) -}}
{{- end -}}
{{- end -}}

{{/* NetworkPolicy `from`/`to` peers for the agent pods of jda.agentSelectors. */}}
{{- define "jda.agentPeers" -}}
{{- range include "jda.agentSelectors" . | fromJsonArray }}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace }}
  {{- with .labels }}
  podSelector:
    matchLabels:
      {{- toYaml . | nindent 6 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* "true" when the agent admission policy is rendered: on, the agents in a namespace of their own, and
a Kubernetes that serves ValidatingAdmissionPolicy v1 (1.30+). */}}
{{- define "jda.admissionPolicy" -}}
{{- if and .Values.agent.admissionPolicy.enabled (ne (include "jda.agentNamespace" .) .Release.Namespace) (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version) -}}
true
{{- end -}}
{{- end -}}
