{{/*
THE agent pod spec. One template, four users:
  - the JCasC pod template embeds it through `yaml:` (mode "agent"); agent.extraTemplates with dind
    inherit it (inheritFrom) and add their containers (jda.extraTemplateSpec),
  - the `helm test` pod includes it (mode "test"),
  - agent.extraTemplates with `dind: false` embed it without dockerd (mode "plain", with "template"),
  - the local Docker runner reads it back from the rendered JCasC.
Call with (dict "root" $ "mode" "agent"|"test"|"plain" ["template" $t]).

Container layout (modes agent and test):
  initContainers: docker-setup (files/docker-setup.sh: the dind image's static docker CLI and plugins
                  for jnlp, dockerd's daemon.json, the CLI's config.json with registry credentials and
                  proxies, the CA bundle), then on Kubernetes >= 1.29 dind as a native sidecar
                  (restartPolicy Always + startupProbe on `docker version`)
  containers:     jnlp (Docker CLI, DOCKER_HOST=tcp://localhost:2375), and on older clusters dind
                  as a regular container with the agent polling for dockerd first.
*/}}

{{/* dockerd arguments. The first argument is "dockerd" on purpose: the docker:dind entrypoint
only adds its own --host=tcp://0.0.0.0:2375 when the first argument is a flag. */}}
{{- define "jda.dind.args" -}}
{{- $d := .Values.agent.dind -}}
- dockerd
- --host=tcp://127.0.0.1:2375
- --host=unix:///var/run/docker.sock
- --tls=false
- --config-file=/etc/docker-jda/daemon.json
- --ip6tables=false
{{- if ne $d.storageDriver "auto" }}
- --storage-driver={{ $d.storageDriver }}
{{- end }}
{{- if gt (int $d.mtu) 0 }}
- --mtu={{ int $d.mtu }}
- --default-network-opt=bridge=com.docker.network.driver.mtu={{ int $d.mtu }}
{{- end }}
{{- if .Values.mirror.enabled }}
- --registry-mirror={{ include "jda.mirrorUrl" . }}
{{- end }}
{{- range $d.registryMirrors }}
- --registry-mirror={{ . }}
{{- end }}
{{- range $d.insecureRegistries }}
- --insecure-registry={{ . }}
{{- end }}
{{- with .Values.agent.proxy.httpProxy }}
- --http-proxy={{ . }}
{{- end }}
{{- with .Values.agent.proxy.httpsProxy }}
- --https-proxy={{ . }}
{{- end }}
{{- if include "jda.agentProxy" . }}
- --no-proxy={{ include "jda.noProxy" . }}
{{- end }}
{{- range $d.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* daemon.json written by docker-setup: agent.dind.daemonConfig plus what the chart owns. A configured
graph driver must not be silently replaced by the containerd image store (the default of fresh Docker
29+ daemons). A snapshotter name (native, overlayfs) needs no feature flag: dockerd 29.7 takes a
--storage-driver that is no registered graph driver as the containerd image store's snapshotter
(daemon/image_store_choice.go). _validate.tpl refuses keys the chart owns or that a flag already sets. */}}
{{- define "jda.dind.daemonJson" -}}
{{- $config := deepCopy (.Values.agent.dind.daemonConfig | default dict) -}}
{{- if has .Values.agent.dind.storageDriver (list "vfs" "overlay2") -}}
{{- $features := get $config "features" | default dict -}}
{{- $_ := set $features "containerd-snapshotter" false -}}
{{- $_ := set $config "features" $features -}}
{{- end -}}
{{- toJson $config -}}
{{- end -}}

{{/* The docker CLI's "proxies" (config.json) for builds and `docker run`, as JSON; empty without a proxy. */}}
{{- define "jda.dockerProxies" -}}
{{- $p := .Values.agent.proxy -}}
{{- if include "jda.agentProxy" . -}}
{{- $default := dict "noProxy" (include "jda.noProxy" .) -}}
{{- with $p.httpProxy }}{{ $_ := set $default "httpProxy" . }}{{ end -}}
{{- with $p.httpsProxy }}{{ $_ := set $default "httpsProxy" . }}{{ end -}}
{{- dict "default" $default | toJson -}}
{{- end -}}
{{- end -}}

{{/* Proxy variables of jnlp and extra containers (both spellings: remoting reads http_proxy and
no_proxy, most tools the upper-case ones). */}}
{{- define "jda.proxyEnv" -}}
{{- $p := .Values.agent.proxy -}}
{{- if include "jda.agentProxy" . -}}
{{- range $name := list "HTTP_PROXY" "http_proxy" }}{{ with $p.httpProxy }}
- name: {{ $name }}
  value: {{ . | quote }}
{{- end }}{{ end }}
{{- range $name := list "HTTPS_PROXY" "https_proxy" }}{{ with $p.httpsProxy }}
- name: {{ $name }}
  value: {{ . | quote }}
{{- end }}{{ end }}
{{- range $name := list "NO_PROXY" "no_proxy" }}
- name: {{ $name }}
  value: {{ include "jda.noProxy" $ | quote }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* Where tools in jnlp find the CA bundle docker-setup writes (system CAs plus agent.caCertificates). */}}
{{- define "jda.caEnv" -}}
{{- if .Values.agent.caCertificates.hosts -}}
{{- range $name := list "SSL_CERT_FILE" "GIT_SSL_CAINFO" "CURL_CA_BUNDLE" }}
- name: {{ $name }}
  value: /usr/local/lib/docker/ca-bundle.crt
{{- end }}
{{- end -}}
{{- end -}}

{{/* dind's /etc/docker/certs.d when the chart mirrors more registries than Docker Hub: each one's
<host>/hosts.toml (from the agent ConfigMap) beside agent.caCertificates' <host>/ca.crt. Empty
otherwise (dind then mounts registry-ca there, if any). */}}
{{- define "jda.dindCertsVolume" -}}
{{- $registries := include "jda.mirrorRegistries" . | fromJsonArray -}}
{{- if and .Values.mirror.enabled $registries -}}
{{- $ca := .Values.agent.caCertificates -}}
- name: registry-hosts
  projected:
    sources:
      - configMap:
          name: {{ include "jda.fullname" . }}-agent
          items:
            {{- range $registries }}
            - key: registry-hosts-{{ .slug }}.toml
              path: {{ .host }}/hosts.toml
            {{- end }}
      {{- if $ca.hosts }}
      - {{ ternary "configMap" "secret" (not (empty $ca.configMap)) }}:
          name: {{ $ca.configMap | default $ca.secret }}
          items:
            {{- range $ca.hosts }}
            - key: {{ .key }}
              path: {{ .host }}/ca.crt
            {{- end }}
      {{- end }}
{{- end -}}
{{- end -}}

{{/* The volume with agent.caCertificates, laid out as <host>/ca.crt (dockerd's certs.d layout). */}}
{{- define "jda.caVolume" -}}
{{- $ca := .Values.agent.caCertificates -}}
- name: registry-ca
  {{- if $ca.configMap }}
  configMap:
    name: {{ $ca.configMap }}
  {{- else }}
  secret:
    secretName: {{ $ca.secret }}
  {{- end }}
    items:
      {{- range $ca.hosts }}
      - key: {{ .key }}
        path: {{ .host }}/ca.crt
      {{- end }}
{{- end -}}

{{/* The shell condition "dockerd is ready": it answers and, when prewarmed, lists every baked-in image. */}}
{{- define "jda.dockerdReady" -}}
{{- $p := .Values.agent.dind.prewarm -}}
docker version >/dev/null 2>&1
{{- if $p.enabled }} && docker image inspect {{ join " " $p.images }} >/dev/null 2>&1{{ end }}
{{- end -}}

{{/* jnlp's start, in both sidecar modes: a fast (0.2 s) poll until dockerd is ready, bounded by
agent.dind.readyTimeoutSeconds of wall-clock time (each check itself at most 10 s: a hung dockerd
cannot stretch it), then exec "$@". Past the bound jnlp exits 1 with a message saying why: the
Kubernetes plugin watches regular containers only, and a terminated jnlp fails the build at once,
with this message in the build log (terminationMessagePolicy FallbackToLogsOnError, and the plugin's
last log lines). Plain $VAR only: JCasC would interpolate brace-style variables. */}}
{{- define "jda.waitForDockerd" -}}
{{- $d := .Values.agent.dind -}}
{{- $t := int $d.readyTimeoutSeconds -}}
{{- $images := $d.prewarm.enabled -}}
start=$(date +%s); until timeout 10 docker version >/dev/null 2>&1{{ if $images }} && timeout 10 docker image inspect {{ join " " $d.prewarm.images }} >/dev/null 2>&1{{ end }}; do if [ $(($(date +%s) - start)) -ge {{ $t }} ]; then {{ if $images }}if timeout 10 docker version >/dev/null 2>&1; then echo "jenkins-dind-agent: dockerd answers on $DOCKER_HOST but still lacks images of agent.dind.prewarm.images ({{ join " " $d.prewarm.images }}) after {{ $t }}s: is agent.dind.image the image scripts/build-prewarmed-dind made? This agent cannot build and stops." >&2; exit 1; fi; {{ end }}echo "jenkins-dind-agent: dockerd did not answer on $DOCKER_HOST within {{ $t }}s (agent.dind.readyTimeoutSeconds): this agent cannot build and stops. See why in the dind container of pod $HOSTNAME: kubectl logs $HOSTNAME -c dind; kubectl describe pod $HOSTNAME (privileged refused, image not pulled, dockerd failing)." >&2; exit 1; fi; sleep 0.2; done; echo "jenkins-dind-agent: dockerd is ready on $DOCKER_HOST"; exec "$@"
{{- end -}}

{{- define "jda.dind.container" -}}
{{- $root := .root -}}
{{- $d := $root.Values.agent.dind -}}
- name: dind
  image: {{ include "jda.image" $d.image | quote }}
  imagePullPolicy: {{ $d.image.pullPolicy }}
  {{- if .native }}
  restartPolicy: Always
  {{- end }}
  {{- if .watchDone }}
  command:
    - /bin/sh
    - -c
    - '/bin/sh /jda-dind/dind-start.sh dockerd-entrypoint.sh "$@" & pid=$!; while [ ! -e /jda-test/done ] && kill -0 $pid 2>/dev/null; do sleep 0.5; done; kill $pid 2>/dev/null; wait $pid; exit 0'
    - jda-dind
  {{- else }}
  # files/dind-start.sh: cgroup nesting and MTU, then the image's own entrypoint
  command: ["/bin/sh", "/jda-dind/dind-start.sh", "dockerd-entrypoint.sh"]
  {{- end }}
  args:
    {{- include "jda.dind.args" $root | nindent 4 }}
  env:
    - name: DOCKER_TLS_CERTDIR
      value: ""
    - name: DOCKER_HOST
      value: tcp://127.0.0.1:2375
    - name: JDA_MTU
      value: {{ if gt (int $d.mtu) 0 }}"static"{{ else }}"auto"{{ end }}
    # dind-start.sh: builds go to the cgroup jda-builds, limited to this container's memory limit (as the
    # kubelet applies it) minus agent.dind.buildMemoryHeadroom (bytes), kept for dockerd and containerd
    - name: JDA_MEMORY_LIMIT
      valueFrom:
        resourceFieldRef:
          resource: limits.memory
    - name: JDA_BUILD_MEMORY_HEADROOM
      value: {{ include "jda.quantity" $d.buildMemoryHeadroom | float64 | int64 | quote }}
    {{- with $d.minAPIVersion }}
    # the oldest Docker API version dockerd accepts from clients (agent.dind.minAPIVersion)
    - name: DOCKER_MIN_API_VERSION
      value: {{ . | quote }}
    {{- end }}
    {{- if $d.prewarm.enabled }}
    - name: JDA_PREWARM
      value: "1"
    - name: JDA_STORAGE_DRIVER
      value: {{ $d.storageDriver | quote }}
    {{- end }}
  securityContext:
    # only dind is privileged; false needs a runtime that isolates dockerd (agent.runtimeClassName)
    privileged: {{ $d.privileged }}
  {{- if $d.prewarm.enabled }}
  lifecycle:
    # Images baked as a data root for this driver are there when dockerd answers (dind-start.sh);
    # otherwise load the baked archives as soon as dockerd answers. The container counts as started
    # (and, as a native sidecar, lets jnlp start) only once this hook has finished.
    postStart:
      exec:
        command:
          - /bin/sh
          - -c
          - 'test -d /var/lib/jda-prewarm/data-root/$JDA_STORAGE_DRIVER && exit 0; n=0; until docker version >/dev/null 2>&1; do n=$((n+1)); [ "$n" -lt 600 ] || exit 1; sleep 0.1; done; for f in /opt/jda-prewarm/*.tar; do [ -e "$f" ] || continue; docker load -q -i "$f" || exit 1; done'
  {{- end }}
  {{- if .native }}
  startupProbe:
    exec:
      {{- if $d.prewarm.enabled }}
      command: ["/bin/sh", "-c", {{ include "jda.dockerdReady" $root | quote }}]
      {{- else }}
      command: ["docker", "version"]
      {{- end }}
    periodSeconds: 1
    timeoutSeconds: 5
    failureThreshold: {{ int $d.readyTimeoutSeconds }}
  {{- end }}
  resources:
    {{- toYaml $d.resources | nindent 4 }}
  volumeMounts:
    - name: agent-dind-datasizelimit
      mountPath: /var/lib/docker
    - name: dind-config
      mountPath: /etc/docker-jda
      readOnly: true
    - name: dind-start
      mountPath: /jda-dind
      readOnly: true
    {{- if include "jda.dindCertsVolume" $root }}
    - name: registry-hosts
      mountPath: /etc/docker/certs.d
      readOnly: true
    {{- else if $root.Values.agent.caCertificates.hosts }}
    - name: registry-ca
      mountPath: /etc/docker/certs.d
      readOnly: true
    {{- end }}
    {{- if .watchDone }}
    - name: test-state
      mountPath: /jda-test
    {{- end }}
{{- end -}}

{{/* The jnlp container. Call with (dict "root" $ "test" bool "native" bool "docker" bool). */}}
{{- define "jda.jnlp.container" -}}
{{- $root := .root -}}
{{- $a := $root.Values.agent -}}
{{- $d := $a.dind -}}
{{- $test := .test -}}
- name: jnlp
  image: {{ include "jda.image" $a.jnlp.image | quote }}
  imagePullPolicy: {{ $a.jnlp.image.pullPolicy }}
  {{- if .docker }}
  # both sidecar modes: bounded wait for dockerd, then the agent (jda.waitForDockerd)
  command:
    - /bin/sh
    - -c
    - {{ include "jda.waitForDockerd" $root | quote }}
    - jda-wait
    {{- if $test }}
    - /bin/sh
    - /jda-test-files/helm-test.sh
    {{- else }}
    - /usr/local/bin/jenkins-agent
    {{- end }}
  # the wait's last words become the container's termination message, which the plugin shows
  terminationMessagePolicy: FallbackToLogsOnError
  {{- end }}
  {{- with include "jda.jnlp.env" . | trim }}
  env:
    {{- . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "jda.agent.securityContext" . | nindent 4 }}
  resources:
    {{- toYaml $a.jnlp.resources | nindent 4 }}
  volumeMounts:
    {{- include "jda.agent.sharedMounts" . | nindent 4 }}
    {{- if $test }}
    - name: test-files
      mountPath: /jda-test-files
      readOnly: true
    {{- if not .native }}
    - name: test-state
      mountPath: /jda-test
    {{- end }}
    {{- end }}
    {{- with $a.jnlp.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{- define "jda.jnlp.env" -}}
{{- $root := .root -}}
{{- if .docker }}
- name: DOCKER_HOST
  value: tcp://localhost:2375
- name: PATH
  value: /usr/local/lib/docker/bin:/opt/java/openjdk/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
{{- with include "jda.caEnv" $root }}
{{ . | trim }}
{{- end }}
{{- end }}
{{- with include "jda.proxyEnv" $root }}
{{ . | trim }}
{{- end }}
{{- if .test }}
- name: EXPECTED_STORAGE_DRIVER
  value: {{ $root.Values.agent.dind.storageDriver | quote }}
- name: BASE_IMAGE
  value: {{ $root.Values.exampleJob.baseImage | quote }}
{{- with $root.Values.helmTest.registry }}
- name: PUSH_REGISTRY
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- with $root.Values.agent.jnlp.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "jda.agent.securityContext" -}}
runAsUser: 1000
runAsGroup: 1000
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Mounts jnlp and extra containers share: the workspace, a writable home (jobs write $HOME: git
config, ssh known_hosts, tool caches) with ~/.docker in memory, /tmp, and with dind the docker CLI. */}}
{{- define "jda.agent.sharedMounts" -}}
- name: workspace-volume
  mountPath: /home/jenkins/agent
- name: home
  mountPath: /home/jenkins
- name: tmp
  mountPath: /tmp
{{- if .docker }}
- name: docker-config
  mountPath: /home/jenkins/.docker
- name: docker-cli
  mountPath: /usr/local/lib/docker
  readOnly: true
{{- end }}
{{- end -}}

{{/* An agent.extraTemplates container with the chart's defaults: uid 1000 (like jnlp, so both can
write the workspace), a read-only root, the shared mounts; with dind also DOCKER_HOST and `docker` on
the image's own PATH (/usr/local/bin/docker). Call with (dict "root" $ "t" $t "c" $c "docker" bool). */}}
{{- define "jda.extraContainer" -}}
{{- $root := .root -}}
{{- $c := .c -}}
{{- $base := omit $c "env" "volumeMounts" "securityContext" "resources" -}}
{{- toYaml (list $base) }}
  env:
    - name: HOME
      value: /home/jenkins
    {{- if .docker }}
    - name: DOCKER_HOST
      value: tcp://localhost:2375
    {{- with include "jda.caEnv" $root }}{{ . | trim | nindent 4 }}{{ end }}
    {{- end }}
    {{- with include "jda.proxyEnv" $root }}{{ . | trim | nindent 4 }}{{ end }}
    {{- with $c.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  securityContext:
    {{- if $c.securityContext }}
    {{- toYaml $c.securityContext | nindent 4 }}
    {{- else }}
    {{- include "jda.agent.securityContext" . | nindent 4 }}
    {{- end }}
  resources:
    {{- toYaml (default (default $root.Values.agent.jnlp.resources .t.resources) $c.resources) | nindent 4 }}
  volumeMounts:
    {{- include "jda.agent.sharedMounts" . | nindent 4 }}
    {{- if .docker }}
    - name: docker-cli
      mountPath: /usr/local/bin/docker
      subPath: bin/docker
      readOnly: true
    {{- end }}
    {{- with $c.volumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* The yaml of an agent.extraTemplates entry with dind: its containers, merged by the Kubernetes
plugin into the inherited pod of the main template. */}}
{{- define "jda.extraTemplateSpec" -}}
{{- $t := .t -}}
{{- with $t.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  {{- range $t.containers }}
  {{- include "jda.extraContainer" (dict "root" $.root "t" $t "c" . "docker" true) | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "jda.agentPodSpec" -}}
{{- $root := .root -}}
{{- $test := eq .mode "test" -}}
{{- $docker := ne .mode "plain" -}}
{{- $native := and $docker (eq (include "jda.nativeSidecar" $root) "true") -}}
{{- $a := $root.Values.agent -}}
{{- $d := $a.dind -}}
{{- /* registry credentials: only the push template's pods (agent.registry.push) */ -}}
{{- $auth := and $docker .push $a.registry.secretName (not $test) -}}
{{- $ca := and $docker $a.caCertificates.hosts -}}
{{- $dindCtx := dict "root" $root "native" $native "watchDone" (and $test (not $native)) -}}
{{- $ctx := dict "root" $root "test" $test "native" $native "docker" $docker -}}
restartPolicy: Never
securityContext:
  # applies to jnlp and docker-setup; the privileged dind container runs unconfined regardless
  seccompProfile:
    type: RuntimeDefault
automountServiceAccountToken: {{ $a.automountServiceAccountToken }}
serviceAccountName: {{ include "jda.agentServiceAccount" $root }}
enableServiceLinks: false
{{- if not $a.hostUsers }}
# a user namespace of its own: root in dind (privileged included) is an unprivileged user on the node
hostUsers: false
{{- end }}
{{- with $a.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with $a.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $a.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $pool := $a.nodePool -}}
{{- $nodeSelector := deepCopy ($a.nodeSelector | default dict) -}}
{{- if eq .mode "plain" }}{{ $nodeSelector = merge (deepCopy (.template.nodeSelector | default dict)) $nodeSelector }}{{ end }}
{{- if $pool.key }}{{ $_ := set $nodeSelector $pool.key $pool.value }}{{ end -}}
{{- with $nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $tolerations := $a.tolerations | default list -}}
{{- if $pool.key }}
{{- $tolerations = append $tolerations (dict "key" $pool.key "operator" "Equal" "value" $pool.value "effect" $pool.taintEffect) -}}
{{- end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $a.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $a.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $docker }}
initContainers:
  - name: docker-setup
    image: {{ include "jda.image" $d.image | quote }}
    imagePullPolicy: {{ $d.image.pullPolicy }}
    command: ["/bin/sh", "/jda-dind/docker-setup.sh"]
    env:
      - name: DAEMON_JSON
        value: {{ include "jda.dind.daemonJson" $root | quote }}
      {{- with include "jda.dockerProxies" $root }}
      - name: DOCKER_PROXIES
        value: {{ . | quote }}
      {{- end }}
    securityContext:
      {{- include "jda.agent.securityContext" . | nindent 6 }}
    resources:
      requests:
        cpu: 50m
        memory: 32Mi
      limits:
        # a burst for the ~120 MB copy; an init container's limit adds nothing to the pod's requests
        cpu: "1"
        memory: 64Mi
    volumeMounts:
      - name: docker-cli
        mountPath: /cli
      - name: dind-config
        mountPath: /dind-config
      - name: docker-config
        mountPath: /docker-config
      - name: dind-start
        mountPath: /jda-dind
        readOnly: true
      {{- if $auth }}
      - name: registry-auth
        mountPath: /run/jda/registry-auth
        readOnly: true
      {{- end }}
      {{- if $ca }}
      - name: registry-ca
        mountPath: /run/jda/ca
        readOnly: true
      {{- end }}
  {{- if $native }}
  {{- include "jda.dind.container" $dindCtx | nindent 2 }}
  {{- end }}
{{- end }}
containers:
  {{- include "jda.jnlp.container" $ctx | nindent 2 }}
  {{- if and $docker (not $native) }}
  {{- include "jda.dind.container" $dindCtx | nindent 2 }}
  {{- end }}
  {{- if eq .mode "plain" }}
  {{- range .template.containers }}
  {{- include "jda.extraContainer" (dict "root" $root "t" $.template "c" . "docker" false) | nindent 2 }}
  {{- end }}
  {{- end }}
volumes:
  - name: workspace-volume
    emptyDir:
      {{- with $a.workspaceVolume.sizeLimit }}
      sizeLimit: {{ . }}
      {{- else }}
      {}
      {{- end }}
  - name: home
    emptyDir:
      sizeLimit: 2Gi
  - name: tmp
    emptyDir:
      sizeLimit: 1Gi
  {{- if $docker }}
  - name: docker-cli
    emptyDir:
      sizeLimit: 256Mi
  - name: docker-config
    # in memory: it holds registry credentials
    emptyDir:
      medium: Memory
      sizeLimit: 16Mi
  - name: dind-config
    emptyDir:
      sizeLimit: 1Mi
  - name: dind-start
    configMap:
      name: {{ include "jda.fullname" $root }}-agent
  - name: agent-dind-datasizelimit
    emptyDir:
      sizeLimit: {{ $d.dataSizeLimit }}
  {{- end }}
  {{- if $auth }}
  - name: registry-auth
    secret:
      secretName: {{ $a.registry.secretName }}
      items:
        - key: .dockerconfigjson
          path: config.json
  {{- end }}
  {{- if $ca }}
  {{- include "jda.caVolume" $root | nindent 2 }}
  {{- end }}
  {{- if $docker }}
  {{- with include "jda.dindCertsVolume" $root }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- end }}
  {{- if $test }}
  - name: test-files
    configMap:
      name: {{ include "jda.fullname" $root }}-helm-test
  {{- if not $native }}
  - name: test-state
    emptyDir:
      sizeLimit: 1Mi
  {{- end }}
  {{- end }}
  {{- with $a.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
