{{/*
Cross-field rules values.schema.json cannot express. Every message names the key.
*/}}
{{/* A Kubernetes quantity ("500m", "2", "1.5Gi", "512M") as a float, for comparisons. */}}
{{- define "jda.quantity" -}}
{{- $q := toString . -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $q -}}
{{- $units := dict "m" 0.001 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 "P" 1000000000000000.0 "E" 1000000000000000000.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 -}}
{{- $suffix := trimPrefix $num $q -}}
{{- mulf (float64 $num) (default 1.0 (get $units $suffix)) -}}
{{- end -}}

{{- define "jda.validate" -}}
{{- $a := .Values.agent -}}
{{- $containers := dict "controller.resources" .Values.controller.resources "agent.jnlp.resources" $a.jnlp.resources "agent.dind.resources" $a.dind.resources "mirror.resources" .Values.mirror.resources "mirror.front.resources" (.Values.mirror.front.resources | default dict) -}}
{{- range $key := keys $containers | sortAlpha -}}
{{- $res := index $containers $key | default dict -}}
{{- $requests := $res.requests | default dict -}}
{{- $limits := $res.limits | default dict -}}
{{- range $r := list "cpu" "memory" "ephemeral-storage" -}}
{{- if and (hasKey $requests $r) (hasKey $limits $r) -}}
{{- if gt (include "jda.quantity" (index $requests $r) | float64) (include "jda.quantity" (index $limits $r) | float64) -}}
{{- fail (printf "%s.requests.%s (%v) is larger than %s.limits.%s (%v): the API server refuses a request above its limit" $key $r (index $requests $r) $key $r (index $limits $r)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq (int .Values.controller.agentListener.port) 8080 -}}
{{- fail "controller.agentListener.port is 8080, the port of Jenkins' own HTTP listener in the controller container: pick another port" -}}
{{- end -}}
{{- if and .Values.mirror.enabled (has (include "jda.mirrorUrl" .) $a.dind.registryMirrors) -}}
{{- fail "agent.dind.registryMirrors lists the chart's own mirror, which mirror.enabled already adds: remove it" -}}
{{- end -}}
{{- with .Values.mirror.registries -}}
{{- if not $.Values.mirror.enabled -}}
{{- fail "mirror.registries is set but mirror.enabled is false: each registry's mirror comes with the chart's Docker Hub mirror; set mirror.enabled" -}}
{{- end -}}
{{- if not (has $a.dind.storageDriver (list "native" "overlayfs")) -}}
{{- fail (printf "mirror.registries needs the containerd image store, but agent.dind.storageDriver is %s: set it to native (or overlayfs). With a graph driver (vfs, overlay2) dockerd 29.7 pulls (docker pull, docker run, compose) through mirrors for Docker Hub only (daemon/pkg/registry/service_v2.go); its containerd image store reads certs.d/<host>/hosts.toml for every registry (daemon/hosts.go)" $a.dind.storageDriver) -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $i, $r := . -}}
{{- if has (lower $r.host) (list "docker.io" "index.docker.io" "registry-1.docker.io") -}}
{{- fail (printf "mirror.registries[%d].host is %s, which is Docker Hub: the chart's mirror already serves it (mirror.upstream)" $i $r.host) -}}
{{- end -}}
{{- if hasKey $seen (lower $r.host) -}}
{{- fail (printf "mirror.registries[%d].host %s is listed twice: one mirror per registry" $i $r.host) -}}
{{- end -}}
{{- $_ := set $seen (lower $r.host) true -}}
{{- if has $r.host $a.dind.insecureRegistries -}}
{{- fail (printf "mirror.registries[%d].host %s is also in agent.dind.insecureRegistries: a hosts.toml replaces dockerd's insecure-registry handling for its host (daemon/hosts.go mergeLegacyConfig), so pushes and direct pulls would ask it over verified HTTPS; mirror only registries that serve verified HTTPS (agent.caCertificates may name their CA)" $i $r.host) -}}
{{- end -}}
{{- end -}}
{{- $names := dict (include "jda.mirrorName" $) "Docker Hub's mirror" -}}
{{- range $i, $r := include "jda.mirrorRegistries" $ | fromJsonArray -}}
{{- if hasKey $names $r.name -}}
{{- fail (printf "mirror.registries[%d].host %s gives the same object name (%s) as %s: rename the release (or set fullnameOverride)" $i $r.host $r.name (get $names $r.name)) -}}
{{- end -}}
{{- $_ := set $names $r.name $r.host -}}
{{- end -}}
{{- end -}}
{{- if and $a.registry.push (not $a.registry.server) -}}
{{- fail "agent.registry.push is true but agent.registry.server is empty: set the registry host[:port] the agents push to" -}}
{{- end -}}
{{- if and $a.registry.push (not $a.registry.secretName) -}}
{{- fail "agent.registry.push is true but agent.registry.secretName is empty: name a kubernetes.io/dockerconfigjson Secret in the push namespace" -}}
{{- end -}}
{{- if and $a.registry.secretName (not $a.registry.push) -}}
{{- fail "agent.registry.secretName is set but agent.registry.push is false: registry credentials reach only the push template's pods; set agent.registry.push=true and agent.registry.pushFolders" -}}
{{- end -}}
{{- if and $a.registry.push (not $a.registry.pushFolders) -}}
{{- fail "agent.registry.push is true but agent.registry.pushFolders is empty: list the folders whose jobs may push (no other job can use the push template)" -}}
{{- end -}}
{{- if and $a.registry.push $a.namespace.sameAsController -}}
{{- fail "agent.registry.push needs the agents in a namespace of their own: agent.namespace.sameAsController is true" -}}
{{- end -}}
{{- if and $a.registry.push (eq (include "jda.pushNamespace" .) (include "jda.agentNamespace" .)) -}}
{{- fail (printf "agent.registry.pushNamespace (%s) is the agent namespace: push pods need a namespace of their own, where no other pod can mount the credentials" (include "jda.pushNamespace" .)) -}}
{{- end -}}
{{- if and $a.registry.push (eq (include "jda.pushNamespace" .) .Release.Namespace) -}}
{{- fail (printf "agent.registry.pushNamespace (%s) is the release namespace: push pods need a namespace of their own" .Release.Namespace) -}}
{{- end -}}
{{- if le (int $a.connectTimeoutSeconds) (int $a.dind.readyTimeoutSeconds) -}}
{{- fail (printf "agent.connectTimeoutSeconds (%d) is not above agent.dind.readyTimeoutSeconds (%d): the plugin would give up on a pod whose dockerd is still allowed to start" (int $a.connectTimeoutSeconds) (int $a.dind.readyTimeoutSeconds)) -}}
{{- end -}}
{{- $job := .Values.exampleJob -}}
{{- if and $job.enabled $a.permittedFolders (not (has $job.folder $a.permittedFolders)) -}}
{{- fail (printf "exampleJob.folder (%q) is not one of agent.permittedFolders %v: the example job could not use the agents (a job at the root never can)" $job.folder $a.permittedFolders) -}}
{{- end -}}
{{- if and $job.enabled $a.registry.push (not (has $job.folder $a.registry.pushFolders)) -}}
{{- fail (printf "exampleJob.folder (%q) is not one of agent.registry.pushFolders %v: the example job pushes from the push template, which only those folders may use" $job.folder $a.registry.pushFolders) -}}
{{- end -}}
{{- if and $a.namespace.sameAsController $a.namespace.name -}}
{{- fail (printf "agent.namespace.name (%s) is set but agent.namespace.sameAsController is true, which runs the agents in the release namespace (%s): set one of them" $a.namespace.name .Release.Namespace) -}}
{{- end -}}
{{- if and (not $a.namespace.sameAsController) (eq $a.namespace.name .Release.Namespace) -}}
{{- fail (printf "agent.namespace.name (%s) is the release namespace: agents beside the controller need agent.namespace.sameAsController=true (and leave name empty); the default gives them a namespace of their own" $a.namespace.name) -}}
{{- end -}}
{{- if and $a.dind.prewarm.enabled (not $a.dind.prewarm.images) -}}
{{- fail "agent.dind.prewarm.enabled is true but agent.dind.prewarm.images is empty: list the images baked into agent.dind.image" -}}
{{- end -}}
{{- if gt (int $a.instanceCap) (int $a.containerCap) -}}
{{- fail (printf "agent.instanceCap (%d) is larger than agent.containerCap (%d): the cloud would never start that many pods" (int $a.instanceCap) (int $a.containerCap)) -}}
{{- end -}}
{{- if and (eq (toString $a.nativeSidecar) "true") (not (semverCompare ">=1.29-0" .Capabilities.KubeVersion.Version)) -}}
{{- fail (printf "agent.nativeSidecar is true but the cluster runs Kubernetes %s; native sidecars need 1.29 or newer (use auto or false)" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- $ids := dict -}}
{{- range .Values.controller.additionalPlugins -}}
{{- $id := index (splitList ":" .) 0 -}}
{{- if hasKey $ids $id -}}
{{- fail (printf "controller.additionalPlugins lists plugin %s twice (%s and %s): keep one pin per plugin" $id (get $ids $id) .) -}}
{{- end -}}
{{- $_ := set $ids $id . -}}
{{- end -}}
{{- if and .Values.controller.persistence.existingClaim (not .Values.controller.persistence.enabled) -}}
{{- fail "controller.persistence.existingClaim is set but controller.persistence.enabled is false: enable persistence or drop the claim" -}}
{{- end -}}
{{- include "jda.validate.controller" . -}}
{{- include "jda.validate.agent" . -}}
{{- include "jda.validate.daemonConfig" . -}}
{{- include "jda.validate.dindLimits" . -}}
{{- end -}}

{{- define "jda.validate.controller" -}}
{{- $c := .Values.controller -}}
{{- if and $c.ingress.enabled (not $c.allowPlainHttp) -}}
{{- $named := list -}}
{{- range $c.ingress.tls }}{{ $named = concat $named (.hosts | default list) }}{{ end -}}
{{- if not $c.ingress.hosts -}}
{{- if not $c.ingress.tls -}}
{{- fail "controller.ingress.tls is empty: the Ingress would serve the UI and the admin login over plain HTTP; add a TLS entry, or set controller.allowPlainHttp=true" -}}
{{- end -}}
{{- end -}}
{{- range $i, $host := $c.ingress.hosts -}}
{{- if not (has $host $named) -}}
{{- fail (printf "controller.ingress.hosts[%d] (%s) is named by no controller.ingress.tls entry: the UI and the admin login would be served over plain HTTP; add it to a tls entry's hosts, or set controller.allowPlainHttp=true" $i $host) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $c.httpRoute.enabled (not $c.allowPlainHttp) (not (hasPrefix "https://" $c.url)) -}}
{{- fail "controller.httpRoute is enabled but controller.url is not https://: the chart cannot see the Gateway listener, so say the route is served over TLS with an https controller.url, or set controller.allowPlainHttp=true" -}}
{{- end -}}
{{- if and $c.jcasc.securityRealm (not $c.jcasc.authorizationStrategy) -}}
{{- fail "controller.jcasc.securityRealm is set but controller.jcasc.authorizationStrategy is empty: the chart's default (loggedInUsersCanDoAnything) would make every user of that realm an administrator; set an authorizationStrategy, e.g. globalMatrix" -}}
{{- end -}}
{{- if hasKey ($c.jcasc.authorizationStrategy | default dict) "unsecured" -}}
{{- fail "controller.jcasc.authorizationStrategy is unsecured: anyone who can reach Jenkins, signed in or not, is an administrator" -}}
{{- end -}}
{{- if and $c.jcasc.securityRealm (hasKey ($c.jcasc.authorizationStrategy | default dict) "loggedInUsersCanDoAnything") -}}
{{- fail "controller.jcasc.authorizationStrategy is loggedInUsersCanDoAnything with controller.jcasc.securityRealm set: every user of that realm would be an administrator (the chart keeps it only with its local realm, whose one user is the admin); use globalMatrix or another strategy" -}}
{{- end -}}
{{- if and (gt (int $c.numExecutors) 0) (not $c.allowBuildsOnController) -}}
{{- fail (printf "controller.numExecutors is %v: builds on the controller run as its own user beside JENKINS_HOME (secrets/, credentials.xml); set controller.allowBuildsOnController=true to accept that, or keep 0" $c.numExecutors) -}}
{{- end -}}
{{- range $key, $labels := dict "controller.podLabels" $c.podLabels "agent.podLabels" .Values.agent.podLabels -}}
{{- range $l := list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" -}}
{{- if hasKey ($labels | default dict) $l -}}
{{- fail (printf "%s sets %s, a label the chart's selectors (Services, NetworkPolicies) rely on: use another label" $key $l) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $files := dict -}}
{{- if include "jda.localRealm" . -}}
{{- $_ := set $files "jda-admin-user" "the chart's admin user" -}}
{{- $_ := set $files "jda-admin-password" "the chart's admin password" -}}
{{- end -}}
{{- range $i, $s := $c.jcasc.secrets -}}
{{- range $s.keys -}}
{{- if hasKey $files . -}}
{{- fail (printf "controller.jcasc.secrets[%d] (%s) key %s collides with %s in $SECRETS: each key becomes one file there" $i $s.name . (get $files .)) -}}
{{- end -}}
{{- $_ := set $files . (printf "controller.jcasc.secrets[%d] (%s)" $i $s.name) -}}
{{- end -}}
{{- end -}}
{{- if and $c.httpRoute.enabled (not $c.httpRoute.parentRefs) -}}
{{- fail "controller.httpRoute.enabled is true but controller.httpRoute.parentRefs is empty: name the Gateway the route attaches to" -}}
{{- end -}}
{{- if and $c.ingress.enabled $c.ingress.path (not (regexMatch "^/([A-Za-z0-9._~-]+/?)*$" $c.ingress.path)) -}}
{{- fail (printf "controller.ingress.path %q is not a plain path prefix such as / or /jenkins" $c.ingress.path) -}}
{{- end -}}
{{- if and $c.jcasc.reload.existingSecret (not $c.jcasc.reload.enabled) -}}
{{- fail "controller.jcasc.reload.existingSecret is set but controller.jcasc.reload.enabled is false: enable reload or drop the Secret name" -}}
{{- end -}}
{{- end -}}

{{- define "jda.validate.agent" -}}
{{- $a := .Values.agent -}}
{{- $eg := .Values.networkPolicy.agentEgress -}}
{{- if and $eg.extraRules (not (and .Values.networkPolicy.enabled $eg.enabled)) -}}
{{- fail "networkPolicy.agentEgress.extraRules is set but networkPolicy.agentEgress.enabled (with networkPolicy.enabled) is off: the rules would open nothing, since egress is not restricted" -}}
{{- end -}}
{{- $denied := include "jda.egressDenied" . | fromJsonArray -}}
{{- $v4 := "^[0-9]{1,3}(\\.[0-9]{1,3}){3}/([0-9]|[12][0-9]|3[0-2])$" -}}
{{- range $i, $rule := $eg.extraRules -}}
{{- if not $rule.to -}}
{{- fail (printf "networkPolicy.agentEgress.extraRules[%d].to is empty: a rule without destinations allows every address (the API server and 169.254.169.254 included); name them, e.g. an ipBlock with except" $i) -}}
{{- end -}}
{{- range $j, $peer := $rule.to -}}
{{- with $peer.ipBlock -}}
{{- $block := . -}}
{{- $key := printf "networkPolicy.agentEgress.extraRules[%d].to[%d].ipBlock" $i $j -}}
{{- if contains ":" $block.cidr -}}
{{- /* IPv6: passed to the API server as written (README: not checked here) */ -}}
{{- else if not (regexMatch $v4 $block.cidr) -}}
{{- fail (printf "%s.cidr (%s) is not an IPv4 CIDR with a prefix length (a.b.c.d/n) or an IPv6 CIDR" $key $block.cidr) -}}
{{- else -}}
{{- $prefix := atoi (index (splitList "/" $block.cidr) 1) -}}
{{- range $k, $ex := ($block.except | default list) -}}
{{- if not (contains ":" $ex) -}}
{{- if not (regexMatch $v4 $ex) -}}
{{- fail (printf "%s.except[%d] (%s) is not an IPv4 CIDR with a prefix length (a.b.c.d/n)" $key $k $ex) -}}
{{- end -}}
{{- $exParts := splitList "/" $ex -}}
{{- if or (le (atoi (index $exParts 1)) $prefix) (not (include "jda.cidrCovers" (dict "cidr" $block.cidr "ip" (index $exParts 0)))) -}}
{{- fail (printf "%s.except[%d] (%s) is not a strict subset of its cidr (%s): the API server refuses it" $key $k $ex $block.cidr) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $ip := $denied -}}
{{- if include "jda.cidrCovers" (dict "cidr" $block.cidr "ip" $ip) -}}
{{- $excepted := false -}}
{{- range ($block.except | default list) }}{{ if and (not (contains ":" .)) (include "jda.cidrCovers" (dict "cidr" . "ip" $ip)) }}{{ $excepted = true }}{{ end }}{{ end -}}
{{- if not $excepted -}}
{{- fail (printf "%s.cidr (%s) covers %s (%s): list it in that ipBlock's except (for example %s/32), so builds cannot reach it" $key $block.cidr $ip (ternary "the link-local metadata address" "an API server address" (eq $ip "169.254.169.254")) $ip) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $a.admissionPolicy.enabled $a.automountServiceAccountToken (include "jda.admissionPolicy" .) -}}
{{- fail "agent.automountServiceAccountToken is true but agent.admissionPolicy refuses every agent pod that mounts a ServiceAccount token: turn one of them off (agent.admissionPolicy.enabled=false gives up the policy)" -}}
{{- end -}}
{{- if and (not $a.hostUsers) (semverCompare "<1.33.0-0" .Capabilities.KubeVersion.Version) -}}
{{- fail (printf "agent.hostUsers is false but Kubernetes %s does not enable user namespaces by default (the UserNamespacesSupport gate is on from 1.33): keep agent.hostUsers true there" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- if and $a.nodePool.value (not $a.nodePool.key) -}}
{{- fail "agent.nodePool.value is set but agent.nodePool.key is empty: name the node label (and taint) key of the build pool" -}}
{{- end -}}
{{- if and $a.nodePool.key (hasKey ($a.nodeSelector | default dict) $a.nodePool.key) -}}
{{- if ne (index $a.nodeSelector $a.nodePool.key) $a.nodePool.value -}}
{{- fail (printf "agent.nodeSelector.%s contradicts agent.nodePool (%s=%s): no node could match both; set the pool in agent.nodePool only" $a.nodePool.key $a.nodePool.key $a.nodePool.value) -}}
{{- end -}}
{{- end -}}
{{- if and (not $a.dind.privileged) (not $a.runtimeClassName) -}}
{{- fail "agent.dind.privileged is false but agent.runtimeClassName is empty: dockerd needs privileges unless a runtime such as Sysbox (sysbox-runc) isolates it; name that RuntimeClass" -}}
{{- end -}}
{{- $pl := .Values.controller.plugins -}}
{{- $uc := $pl.updateCenter -}}
{{- if eq $pl.source "image" -}}
{{- range $k := list "url" "pluginInfoUrl" "downloadUrl" "credentialsSecret" -}}
{{- if index $uc $k -}}
{{- fail (printf "controller.plugins.updateCenter.%s is set but controller.plugins.source is image: nothing is downloaded, so it would be ignored; remove it, or use source updateCenter" $k) -}}
{{- end -}}
{{- end -}}
{{- else if $uc.url -}}
{{- range $k := list "pluginInfoUrl" "downloadUrl" -}}
{{- if not (index $uc $k) -}}
{{- fail (printf "controller.plugins.updateCenter.url names a mirror but controller.plugins.updateCenter.%s is empty: jenkins-plugin-cli would still reach updates.jenkins.io (plugin-versions.json) or the url's host without its path (archives); set it" $k) -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- range $k := list "pluginInfoUrl" "downloadUrl" "credentialsSecret" -}}
{{- if index $uc $k -}}
{{- fail (printf "controller.plugins.updateCenter.%s is set but controller.plugins.updateCenter.url is empty: a mirror is named by url (its update-center.json); set url too" $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $cca := .Values.controller.caCertificates -}}
{{- if and $cca.configMap $cca.secret -}}
{{- fail "controller.caCertificates.configMap and controller.caCertificates.secret are both set: name one of them" -}}
{{- end -}}
{{- if and $cca.keys (not (or $cca.configMap $cca.secret)) -}}
{{- fail "controller.caCertificates.keys is set but neither controller.caCertificates.configMap nor .secret names where the certificates are" -}}
{{- end -}}
{{- if and (or $cca.configMap $cca.secret) (not $cca.keys) -}}
{{- fail "controller.caCertificates names a ConfigMap or Secret but controller.caCertificates.keys is empty: list the keys that hold PEM certificates" -}}
{{- end -}}
{{- $mca := .Values.mirror.caCertificates -}}
{{- if and $mca.configMap $mca.secret -}}
{{- fail "mirror.caCertificates.configMap and mirror.caCertificates.secret are both set: name one of them" -}}
{{- end -}}
{{- if and $mca.keys (not (or $mca.configMap $mca.secret)) -}}
{{- fail "mirror.caCertificates.keys is set but neither mirror.caCertificates.configMap nor .secret names where the certificates are" -}}
{{- end -}}
{{- if and (or $mca.configMap $mca.secret) (not $mca.keys) -}}
{{- fail "mirror.caCertificates names a ConfigMap or Secret but mirror.caCertificates.keys is empty: list the keys that hold PEM certificates" -}}
{{- end -}}
{{- $ca := $a.caCertificates -}}
{{- if and $ca.configMap $ca.secret -}}
{{- fail "agent.caCertificates.configMap and agent.caCertificates.secret are both set: name one of them" -}}
{{- end -}}
{{- if and $ca.hosts (not (or $ca.configMap $ca.secret)) -}}
{{- fail "agent.caCertificates.hosts is set but neither agent.caCertificates.configMap nor .secret names where the certificates are" -}}
{{- end -}}
{{- if and (or $ca.configMap $ca.secret) (not $ca.hosts) -}}
{{- fail "agent.caCertificates names a ConfigMap or Secret but agent.caCertificates.hosts is empty: list which key is the CA of which registry host" -}}
{{- end -}}
{{- $hosts := dict -}}
{{- range $i, $h := $ca.hosts -}}
{{- if hasKey $hosts $h.host -}}
{{- fail (printf "agent.caCertificates.hosts[%d] repeats host %s: one CA file per registry host" $i $h.host) -}}
{{- end -}}
{{- $_ := set $hosts $h.host $i -}}
{{- end -}}
{{- $names := dict $a.label "agent.label (the chart's dind template)" -}}
{{- $labels := dict $a.label "agent.label" -}}
{{- range $i, $t := $a.extraTemplates -}}
{{- $key := printf "agent.extraTemplates[%d]" $i -}}
{{- if hasKey $names $t.name -}}
{{- fail (printf "%s.name %s is taken by %s: template names are unique in the cloud" $key $t.name (get $names $t.name)) -}}
{{- end -}}
{{- $_ := set $names $t.name $key -}}
{{- $label := default $t.name $t.label -}}
{{- if hasKey $labels $label -}}
{{- fail (printf "%s label %s is already the label of %s: a build asking for it would get either pod" $key $label (get $labels $label)) -}}
{{- end -}}
{{- $_ := set $labels $label $key -}}
{{- $containers := dict -}}
{{- range $j, $c := $t.containers -}}
{{- if hasKey $containers $c.name -}}
{{- fail (printf "%s.containers[%d] repeats the container name %s" $key $j $c.name) -}}
{{- end -}}
{{- $_ := set $containers $c.name $j -}}
{{- end -}}
{{- if and (gt (int (default 0 $t.instanceCap)) 0) (gt (int $t.instanceCap) (int $a.containerCap)) -}}
{{- fail (printf "%s.instanceCap (%d) is larger than agent.containerCap (%d): the cloud would never start that many pods" $key (int $t.instanceCap) (int $a.containerCap)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* dockerd refuses a daemon.json key it does not know, and one that a command-line flag also sets
("the following directives are specified both as a flag and in the configuration file"). The schema
lists the known keys (generated from the dockerd facts); here: keys the chart owns, and keys of flags
in the rendered command line. A flag whose value is a named option has another key in the file. */}}
{{- define "jda.dockerdNamedOptions" -}}
add-runtime: runtimes
authorization-plugin: authorization-plugins
cdi-spec-dir: cdi-spec-dirs
default-network-opt: default-network-opts
default-ulimit: default-ulimits
dns-opt: dns-opts
exec-opt: exec-opts
feature: features
host: hosts
host-gateway-ip: host-gateway-ips
insecure-registry: insecure-registries
label: labels
log-opt: log-opts
node-generic-resource: node-generic-resources
registry-mirror: registry-mirrors
storage-opt: storage-opts
{{- end -}}

{{- define "jda.validate.daemonConfig" -}}
{{- $config := .Values.agent.dind.daemonConfig | default dict -}}
{{- $owned := dict
  "hosts" "dockerd listens on tcp://127.0.0.1:2375 and its unix socket only"
  "tls" "the loopback listener runs without TLS" "tlsverify" "the loopback listener runs without TLS"
  "tlscacert" "the loopback listener runs without TLS" "tlscert" "the loopback listener runs without TLS"
  "tlskey" "the loopback listener runs without TLS"
  "storage-driver" "use agent.dind.storageDriver" "data-root" "use agent.dind.dataSizeLimit (/var/lib/docker is the emptyDir)"
  "registry-mirrors" "use agent.dind.registryMirrors or mirror.enabled"
  "insecure-registries" "use agent.dind.insecureRegistries" "mtu" "use agent.dind.mtu"
  "default-network-opts" "dind-start.sh passes the bridge MTU as --default-network-opt (agent.dind.mtu)"
  "http-proxy" "use agent.proxy.httpProxy" "https-proxy" "use agent.proxy.httpsProxy" "no-proxy" "use agent.proxy.noProxy"
  "proxies" "use agent.proxy" "cgroup-parent" "dind-start.sh nests dockerd's containers in the dind container"
  "exec-root" "the entrypoint manages /var/run" "pidfile" "the entrypoint manages /var/run"
  "ip6tables" "the chart disables ip6tables"
-}}
{{- range $key := keys $config | sortAlpha -}}
{{- with get $owned $key -}}
{{- fail (printf "agent.dind.daemonConfig.%s is owned by the chart: %s" $key .) -}}
{{- end -}}
{{- end -}}
{{- if and (ne .Values.agent.dind.storageDriver "auto") (hasKey ($config.features | default dict) "containerd-snapshotter") -}}
{{- fail "agent.dind.daemonConfig.features.containerd-snapshotter is owned by the chart: use agent.dind.storageDriver (auto leaves the image store to dockerd)" -}}
{{- end -}}
{{- $named := include "jda.dockerdNamedOptions" . | fromYaml -}}
{{- range $arg := include "jda.dind.args" . | fromYamlArray -}}
{{- if hasPrefix "--" $arg -}}
{{- $flag := trimPrefix "--" (first (splitList "=" $arg)) -}}
{{- range $key := list $flag (get $named $flag) -}}
{{- if and $key (hasKey $config $key) (ne $key "runtimes") -}}
{{- fail (printf "agent.dind.daemonConfig.%s is also set by the flag --%s (agent.dind.* or agent.dind.extraArgs): dockerd refuses a directive given both ways; keep one" $key $flag) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* dind's limits, the cgroup jda-builds and dockerd's API range (files/dind-start.sh, jda.dind.container). */}}
{{- define "jda.validate.dindLimits" -}}
{{- $d := .Values.agent.dind -}}
{{- $limits := ($d.resources | default dict).limits | default dict -}}
{{- with $limits.memory -}}
{{- if ge (include "jda.quantity" $d.buildMemoryHeadroom | float64) (include "jda.quantity" . | float64) -}}
{{- fail (printf "agent.dind.buildMemoryHeadroom (%v) is not below agent.dind.resources.limits.memory (%v): builds run in the cgroup jda-builds, limited to dind's memory limit minus this headroom for dockerd, so nothing would be left for them; lower the headroom or raise the limit" $d.buildMemoryHeadroom .) -}}
{{- end -}}
{{- end -}}
{{- with (index $limits "ephemeral-storage") -}}
{{- $limit := include "jda.quantity" . | float64 -}}
{{- $volumes := include "jda.quantity" $d.dataSizeLimit | float64 -}}
{{- $named := printf "agent.dind.dataSizeLimit (%v)" $d.dataSizeLimit -}}
{{- with ($.Values.agent.workspaceVolume | default dict).sizeLimit -}}
{{- $volumes = addf $volumes (include "jda.quantity" . | float64) -}}
{{- $named = printf "%s plus agent.workspaceVolume.sizeLimit (%v)" $named . -}}
{{- end -}}
{{- if le $limit $volumes -}}
{{- fail (printf "agent.dind.resources.limits.ephemeral-storage (%v) is not above %s: the kubelet sums the containers' ephemeral-storage limits into the pod's budget for everything it writes on the node, emptyDirs included, and would evict the pod before /var/lib/docker reached its sizeLimit; raise the limit, or remove it (each emptyDir keeps its own sizeLimit)" . $named) -}}
{{- end -}}
{{- end -}}
{{- if and $d.minAPIVersion (hasKey ($d.daemonConfig | default dict) "min-api-version") -}}
{{- fail (printf "agent.dind.daemonConfig.min-api-version is set and so is agent.dind.minAPIVersion (%s): keep one (agent.dind.minAPIVersion, DOCKER_MIN_API_VERSION, also works with dockerd before 29)" $d.minAPIVersion) -}}
{{- end -}}
{{- end -}}
