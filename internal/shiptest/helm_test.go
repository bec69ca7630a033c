package shiptest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/kongbot/kongbot/config"
)

const (
	storeDir   = "/var/lib/kongbot"
	configDir  = "/etc/kongbot"
	configKey  = "config.yaml"
	botUID     = int64(65532)
	httpPortNm = "http"
)

var (
	helmOnce   sync.Once
	helmPath   string
	helmErr    error
	helmStderr string
)

// noProxy matches the go command's complaints when modules cannot be
// downloaded: the one situation in which the chart tests skip.
var noProxy = regexp.MustCompile(`(?i)dial tcp|no such host|connection refused|i/o timeout|proxy|GOPROXY=off|TLS handshake|network is unreachable`)

// helm returns the path of the helm binary scripts/helm-check.sh builds once
// per machine (into ~/.cache/kongbot-tools) from helm's Go module.
func helm(t *testing.T) string {
	t.Helper()
	if os.Getenv("KONGBOT_SKIP_HELM") == "1" {
		t.Skip("KONGBOT_SKIP_HELM=1: helm chart checks skipped")
	}
	root := repoRoot(t)
	helmOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "helm-check.sh"))
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "KONGBOT_HELM_PATH_ONLY=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		helmStderr = stderr.String()
		helmPath = strings.TrimSpace(string(out))
		helmErr = err
	})
	if helmErr != nil {
		if noProxy.MatchString(helmStderr) {
			t.Skipf("helm cannot be built here (no Go module proxy?): %v\n%s", helmErr, helmStderr)
		}
		t.Fatalf("building helm with scripts/helm-check.sh: %v\n%s", helmErr, helmStderr)
	}
	return helmPath
}

// manifests is one rendering of the chart, decoded strictly into API types.
type manifests struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	serviceAccounts []*corev1.ServiceAccount
	claims          []*corev1.PersistentVolumeClaim
	ingresses       []*networkingv1.Ingress
	serviceMonitors []*monitoringv1.ServiceMonitor
	kinds           []string
}

// decodeStrict decodes one JSON document into obj, refusing unknown fields,
// duplicate fields and field names in the wrong case: a typo in a template
// must fail here rather than be silently dropped by the API server.
func decodeStrict(js []byte, obj any) error {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return err
	}
	strictErrs, err := sigsjson.UnmarshalStrict(js, obj)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

func decodeManifests(t *testing.T, rendered []byte) manifests {
	t.Helper()
	var m manifests
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(rendered)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("splitting rendered manifests: %v", err)
		}
		js, err := sigsyaml.YAMLToJSONStrict(doc)
		if err != nil {
			t.Fatalf("rendered document is not strict YAML: %v\n%s", err, doc)
		}
		if s := string(bytes.TrimSpace(js)); s == "null" || s == "" {
			continue // a template that rendered nothing, or only comments
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			t.Fatalf("reading apiVersion/kind: %v\n%s", err, doc)
		}
		gvk := tm.APIVersion + " " + tm.Kind
		var obj any
		switch gvk {
		case "apps/v1 Deployment":
			d := &appsv1.Deployment{}
			m.deployments, obj = append(m.deployments, d), d
		case "v1 Service":
			s := &corev1.Service{}
			m.services, obj = append(m.services, s), s
		case "v1 ConfigMap":
			c := &corev1.ConfigMap{}
			m.configMaps, obj = append(m.configMaps, c), c
		case "v1 ServiceAccount":
			sa := &corev1.ServiceAccount{}
			m.serviceAccounts, obj = append(m.serviceAccounts, sa), sa
		case "v1 PersistentVolumeClaim":
			c := &corev1.PersistentVolumeClaim{}
			m.claims, obj = append(m.claims, c), c
		case "networking.k8s.io/v1 Ingress":
			i := &networkingv1.Ingress{}
			m.ingresses, obj = append(m.ingresses, i), i
		case "monitoring.coreos.com/v1 ServiceMonitor":
			s := &monitoringv1.ServiceMonitor{}
			m.serviceMonitors, obj = append(m.serviceMonitors, s), s
		default:
			t.Fatalf("the chart rendered an unexpected kind %q:\n%s", gvk, doc)
		}
		if err := decodeStrict(js, obj); err != nil {
			t.Fatalf("%s does not decode strictly: %v\n%s", gvk, err, doc)
		}
		m.kinds = append(m.kinds, tm.Kind)
	}
	sort.Strings(m.kinds)
	return m
}

// chartCase is one set of values and what its rendering must contain.
type chartCase struct {
	name      string
	args      []string // extra helm template arguments (-f, --set)
	mode      string   // socket | http
	kinds     []string // sorted
	claimName string   // the claim the store is mounted from
	secret    map[string][2]string
}

var baseKinds = []string{"ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"}

func withKinds(extra ...string) []string {
	k := append(slices.Clone(baseKinds), extra...)
	sort.Strings(k)
	return k
}

func chartCases(root string) []chartCase {
	httpValues := filepath.Join(root, "helm", "kongbot", "values-http.yaml")
	socketSecrets := map[string][2]string{
		"KONGBOT_SLACK_BOT_TOKEN": {"kongbot", "KONGBOT_SLACK_BOT_TOKEN"},
		"KONGBOT_SLACK_APP_TOKEN": {"kongbot", "KONGBOT_SLACK_APP_TOKEN"},
		"KONGBOT_PROD_PG_DSN":     {"kongbot", "KONGBOT_PROD_PG_DSN"},
	}
	return []chartCase{
		{
			name: "default values (socket mode)", mode: "socket",
			kinds: withKinds(), claimName: "kongbot-store", secret: socketSecrets,
		},
		{
			name: "values-http.yaml", args: []string{"-f", httpValues}, mode: "http",
			kinds: withKinds("Ingress", "ServiceMonitor"), claimName: "kongbot-store",
			secret: map[string][2]string{
				"KONGBOT_SLACK_BOT_TOKEN":      {"kongbot", "KONGBOT_SLACK_BOT_TOKEN"},
				"KONGBOT_SLACK_SIGNING_SECRET": {"kongbot", "KONGBOT_SLACK_SIGNING_SECRET"},
				"KONGBOT_PROD_PG_DSN":          {"kongbot", "KONGBOT_PROD_PG_DSN"},
			},
		},
		{
			name: "socket mode with a ServiceMonitor", args: []string{"--set", "serviceMonitor.enabled=true"}, mode: "socket",
			kinds: withKinds("ServiceMonitor"), claimName: "kongbot-store", secret: socketSecrets,
		},
		{
			name: "existing claim, secret and keys",
			args: []string{
				"--set", "persistence.existingClaim=kongbot-data",
				"--set", "secrets.existingSecret=kong-creds",
				"--set", "secrets.keys.KONGBOT_PROD_PG_DSN.key=prod-dsn",
				"--set", "secrets.keys.KONGBOT_SLACK_BOT_TOKEN.secret=slack",
				"--set", "secrets.keys.KONGBOT_SLACK_BOT_TOKEN.key=bot",
				"--set", "secrets.extraEnv={TRAFFIC_TOKEN}",
			},
			mode: "socket", claimName: "kongbot-data",
			kinds: []string{"ConfigMap", "Deployment", "Service", "ServiceAccount"},
			secret: map[string][2]string{
				"KONGBOT_SLACK_BOT_TOKEN": {"slack", "bot"},
				"KONGBOT_SLACK_APP_TOKEN": {"kong-creds", "KONGBOT_SLACK_APP_TOKEN"},
				"KONGBOT_PROD_PG_DSN":     {"kong-creds", "prod-dsn"},
				"TRAFFIC_TOKEN":           {"kong-creds", "TRAFFIC_TOKEN"},
			},
		},
	}
}

func helmTemplate(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"template", "kongbot", filepath.Join(root, "helm", "kongbot"), "--namespace", "kongbot"}, args...)
	cmd := exec.CommandContext(ctx, helm(t), full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(full, " "), err, stderr.String())
	}
	return out, nil
}

// TestChartInvariants renders the chart for each value set with the real
// helm and checks what kongbot needs from its Kubernetes objects.
func TestChartInvariants(t *testing.T) {
	root := repoRoot(t)
	helm(t) // skips when helm cannot be built
	img := readImage(t)
	for _, tc := range chartCases(root) {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helmTemplate(t, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			checkManifests(t, tc, img, decodeManifests(t, out))
		})
	}
}

// TestHelmCheckScript runs CI's chart check (lint and template with the
// default and HTTP-mode values) and holds its rendered files to the same
// invariants.
func TestHelmCheckScript(t *testing.T) {
	root := repoRoot(t)
	helm(t) // skips when helm cannot be built
	img := readImage(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "helm-check.sh"), out)
	cmd.Dir = root
	logs, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/helm-check.sh: %v\n%s", err, logs)
	}
	cases := chartCases(root)
	for file, tc := range map[string]chartCase{"default.yaml": cases[0], "http.yaml": cases[1]} {
		t.Run(file, func(t *testing.T) {
			checkManifests(t, tc, img, decodeManifests(t, mustRead(t, filepath.Join(out, file))))
		})
	}
}

func checkManifests(t *testing.T, tc chartCase, img image, m manifests) {
	t.Helper()
	if !slices.Equal(m.kinds, tc.kinds) {
		t.Fatalf("rendered kinds %v, want %v", m.kinds, tc.kinds)
	}
	d := m.deployments[0]
	svc := m.services[0]
	cm := m.configMaps[0]
	sa := m.serviceAccounts[0]

	// One writer for the bbolt file, even during a rollout.
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %s, want 1", fmtPtr(d.Spec.Replicas))
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy = %q, want Recreate", d.Spec.Strategy.Type)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		t.Fatalf("deployment selector: %v", err)
	}
	podLabels := d.Spec.Template.Labels
	if sel.Empty() || !sel.Matches(labels.Set(podLabels)) {
		t.Errorf("deployment selector %v does not select its pod labels %v", d.Spec.Selector, podLabels)
	}

	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != sa.Name {
		t.Errorf("pod runs as service account %q, the chart created %q", pod.ServiceAccountName, sa.Name)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("pod mounts a service account token; kongbot never calls the Kubernetes API")
	}
	psc := pod.SecurityContext
	if psc == nil || !isTrue(psc.RunAsNonRoot) || !isInt(psc.RunAsUser, botUID) ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot, runAsUser %d, seccomp RuntimeDefault", psc, botUID)
	}
	if want := img.user; psc != nil && psc.RunAsUser != nil && fmt.Sprintf("%d:%d", *psc.RunAsUser, *psc.RunAsGroup) != want {
		t.Errorf("pod runs as %d:%d, the image's USER is %s", *psc.RunAsUser, *psc.RunAsGroup, want)
	}

	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || !isTrue(sc.RunAsNonRoot) || !isInt(sc.RunAsUser, botUID) || !isTrue(sc.ReadOnlyRootFilesystem) ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || isTrue(sc.Privileged) ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext %+v: want non-root %d, read-only root fs, no privilege escalation, all capabilities dropped, seccomp RuntimeDefault", sc, botUID)
	}
	if got := strings.Join(c.Args, " "); got != strings.Join(img.cmd, " ") {
		t.Errorf("container args %q differ from the image's CMD %q", got, img.cmd)
	}
	if len(c.Command) > 0 {
		t.Errorf("container overrides the image ENTRYPOINT with %q", c.Command)
	}

	// The HTTP port: probes, Slack HTTP mode, metrics.
	var port *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].Name == httpPortNm {
			port = &c.Ports[i]
		}
	}
	if port == nil {
		t.Fatalf("container has no port named %q: %+v", httpPortNm, c.Ports)
	}
	if fmt.Sprint(port.ContainerPort) != img.port {
		t.Errorf("containerPort %d, the image EXPOSEs %s", port.ContainerPort, img.port)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe %+v: want an HTTP GET of %s", p.name, p.probe, p.path)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != httpPortNm {
			t.Errorf("%s probe GET %s on port %s, want %s on port %s", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path, httpPortNm)
		}
	}

	// Secrets only through secretKeyRef, never a literal value.
	if len(c.EnvFrom) > 0 {
		t.Errorf("envFrom %+v: the chart names each secret variable explicitly", c.EnvFrom)
	}
	env := map[string][2]string{}
	for _, e := range c.Env {
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("env %s is not from a secretKeyRef (value %q, valueFrom %+v)", e.Name, e.Value, e.ValueFrom)
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if isTrue(ref.Optional) {
			t.Errorf("env %s: secretKeyRef is optional; a missing secret must stop the pod, not start a bot without it", e.Name)
		}
		env[e.Name] = [2]string{ref.Name, ref.Key}
	}
	if fmt.Sprint(env) != fmt.Sprint(tc.secret) {
		t.Errorf("secret env (variable: [secret key]) = %v, want %v", env, tc.secret)
	}

	// Volumes: the store on the claim, the config from the ConfigMap.
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	storeMount, ok := mounts[storeDir]
	if !ok || storeMount.ReadOnly {
		t.Errorf("no writable mount at %s: %+v", storeDir, c.VolumeMounts)
	} else if pvc := volumes[storeMount.Name].PersistentVolumeClaim; pvc == nil || pvc.ClaimName != tc.claimName {
		t.Errorf("volume %q at %s is %+v, want claim %q", storeMount.Name, storeDir, volumes[storeMount.Name], tc.claimName)
	}
	if storeDir != img.volume {
		t.Errorf("store mounted at %s, the image's VOLUME is %s", storeDir, img.volume)
	}
	if len(m.claims) > 0 {
		pvc := m.claims[0]
		if pvc.Name != tc.claimName {
			t.Errorf("chart creates claim %q, the pod mounts %q", pvc.Name, tc.claimName)
		}
		if !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
			t.Errorf("claim access modes %v, want [ReadWriteOnce]", pvc.Spec.AccessModes)
		}
		if q := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; q.IsZero() {
			t.Errorf("claim requests no storage")
		}
		if pvc.Annotations["helm.sh/resource-policy"] != "keep" {
			t.Errorf("claim is deleted on helm uninstall; it holds the audit log")
		}
	}
	cfgMount, ok := mounts[configDir]
	if !ok || !cfgMount.ReadOnly {
		t.Fatalf("no read-only mount at %s: %+v", configDir, c.VolumeMounts)
	}
	if v := volumes[cfgMount.Name].ConfigMap; v == nil || v.Name != cm.Name {
		t.Errorf("volume %q at %s is %+v, want ConfigMap %q", cfgMount.Name, configDir, volumes[cfgMount.Name], cm.Name)
	}
	if want := configDir + "/" + configKey; !slices.Contains(c.Args, want) {
		t.Errorf("container args %q do not name %s", c.Args, want)
	}
	if _, ok := mounts["/tmp"]; !ok {
		t.Errorf("no writable /tmp under a read-only root filesystem")
	}
	checkConfig(t, tc, cm, env, storeMount.MountPath, port.ContainerPort)

	// Service: the http port, selecting exactly this pod.
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != httpPortNm || svc.Spec.Ports[0].TargetPort.String() != httpPortNm {
		t.Errorf("service ports %+v, want one port named %q targeting the container's %q port", svc.Spec.Ports, httpPortNm, httpPortNm)
	}
	if len(svc.Spec.Selector) == 0 || !labels.Set(svc.Spec.Selector).AsSelector().Matches(labels.Set(podLabels)) {
		t.Errorf("service selector %v does not select the pod labels %v", svc.Spec.Selector, podLabels)
	}

	// Ingress only in HTTP mode, and only Slack's paths.
	if tc.mode == "http" && len(m.ingresses) != 1 {
		t.Errorf("HTTP mode renders %d ingresses, want 1", len(m.ingresses))
	}
	if tc.mode == "socket" && len(m.ingresses) != 0 {
		t.Errorf("Socket Mode renders an ingress")
	}
	for _, ing := range m.ingresses {
		if len(ing.Spec.TLS) == 0 {
			t.Errorf("ingress has no TLS; Slack only posts to https URLs")
		}
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil || len(rule.HTTP.Paths) == 0 {
				t.Errorf("ingress rule %q has no paths", rule.Host)
				continue
			}
			for _, p := range rule.HTTP.Paths {
				if !strings.HasPrefix(p.Path, "/slack/") || p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix {
					t.Errorf("ingress exposes path %q (type %s); only the /slack/ prefix may be public", p.Path, fmtPtr(p.PathType))
				}
				if b := p.Backend.Service; b == nil || b.Name != svc.Name || b.Port.Name != httpPortNm {
					t.Errorf("ingress path %s goes to %+v, want service %s port %s", p.Path, p.Backend.Service, svc.Name, httpPortNm)
				}
			}
		}
	}

	// ServiceMonitor only when enabled, scraping /metrics on the service.
	for _, smon := range m.serviceMonitors {
		msel, err := metav1.LabelSelectorAsSelector(&smon.Spec.Selector)
		if err != nil || msel.Empty() || !msel.Matches(labels.Set(svc.Labels)) {
			t.Errorf("service monitor selector %v does not select the service's labels %v", smon.Spec.Selector, svc.Labels)
		}
		if len(smon.Spec.Endpoints) != 1 || smon.Spec.Endpoints[0].Port != httpPortNm || smon.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("service monitor endpoints %+v, want /metrics on port %s", smon.Spec.Endpoints, httpPortNm)
		}
	}
}

// checkConfig decodes the ConfigMap's file with kongbot's own config
// package and runs its check with only the variables the pod gets from
// secrets: the config must be valid and name no secret the pod lacks.
func checkConfig(t *testing.T, tc chartCase, cm *corev1.ConfigMap, env map[string][2]string, storeMount string, httpPort int32) {
	t.Helper()
	raw, ok := cm.Data[configKey]
	if !ok || len(cm.Data) != 1 {
		t.Fatalf("ConfigMap keys %v, want only %s", mapKeys(cm.Data), configKey)
	}
	cfg, err := config.Parse([]byte(raw))
	if err != nil {
		t.Fatalf("the ConfigMap's %s is not a kongbot config: %v\n%s", configKey, err, raw)
	}
	dsnVars := map[string]bool{}
	for _, g := range cfg.Gateways {
		dsnVars[g.Datastore.DSNEnv] = true
	}
	lookup := func(name string) (string, bool) {
		if _, ok := env[name]; !ok {
			return "", false
		}
		if dsnVars[name] {
			return "postgres://kong:secret@pg.kong.svc:5432/kong?sslmode=require", true
		}
		return "from-secret", true
	}
	if ps := cfg.CheckEnv(lookup); len(ps) > 0 {
		t.Errorf("config check with the pod's secret variables: %v", ps)
	}
	if cfg.Slack.Mode != tc.mode {
		t.Errorf("config slack.mode %q, want %q", cfg.Slack.Mode, tc.mode)
	}
	if filepath.Dir(cfg.Store.Path) != storeMount {
		t.Errorf("config store.path %s is not in the store volume at %s", cfg.Store.Path, storeMount)
	}
	for _, p := range listenProblems(cfg, httpPort) {
		t.Error(p)
	}
	for _, tell := range []string{"xoxb-", "xoxp-", "xapp-", "postgres://", "postgresql://"} {
		if strings.Contains(raw, tell) {
			t.Errorf("the ConfigMap holds what looks like a secret (%q); secrets come from the Secret", tell)
		}
	}
}

// listenProblems says where the config's listeners miss the container's
// http port, which the probes, the Service (metrics) and, in HTTP mode, the
// Ingress (Slack) reach: http.listen serves /healthz, /readyz and /metrics
// (in HTTP mode slack.listen does when http.listen is empty), and in HTTP
// mode Slack's requests are on that port only when slack.listen is the same
// address as http.listen (the bot shares one listener only then).
func listenProblems(cfg *config.Config, httpPort int32) []string {
	var out []string
	onPort := func(field, addr string) {
		if _, p, err := net.SplitHostPort(addr); err != nil || p != fmt.Sprint(httpPort) {
			out = append(out, fmt.Sprintf("config %s %q does not listen on the container's http port %d", field, addr, httpPort))
		}
	}
	switch {
	case cfg.HTTP.Listen != "":
		onPort("http.listen", cfg.HTTP.Listen)
	case cfg.Slack.Mode != "http":
		out = append(out, fmt.Sprintf("config http.listen is empty: nothing serves /healthz, /readyz and /metrics on the container's http port %d", httpPort))
	}
	if cfg.Slack.Mode == "http" {
		onPort("slack.listen", cfg.Slack.Listen)
		if cfg.HTTP.Listen != "" && cfg.Slack.Listen != cfg.HTTP.Listen {
			out = append(out, fmt.Sprintf("config slack.listen %q is not http.listen %q: the bot would open a second listener beside the container's http port", cfg.Slack.Listen, cfg.HTTP.Listen))
		}
	}
	return out
}

func TestListenProblems(t *testing.T) {
	tests := []struct {
		name              string
		mode, http, slack string
		want              []string
	}{
		{"socket, on the port", "socket", ":8080", "", nil},
		{"socket, on another port", "socket", ":9090", "", []string{`http.listen ":9090" does not listen on the container's http port 8080`}},
		{"socket, no http listener", "socket", "", "", []string{"http.listen is empty"}},
		{"http, one shared listener", "http", ":8080", ":8080", nil},
		{"http, slack listener alone", "http", "", ":8080", nil},
		{"http, probes on another port", "http", "127.0.0.1:9090", ":8080", []string{`http.listen "127.0.0.1:9090" does not listen`, "is not http.listen"}},
		{"http, same port, other address", "http", "0.0.0.0:8080", ":8080", []string{`slack.listen ":8080" is not http.listen "0.0.0.0:8080"`}},
		{"http, slack on another port", "http", "", ":3000", []string{`slack.listen ":3000" does not listen`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{}
			cfg.Slack.Mode, cfg.HTTP.Listen, cfg.Slack.Listen = tc.mode, tc.http, tc.slack
			got := listenProblems(cfg, 8080)
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %d like %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

// TestChartHTTPListenOffPort: a chart rendered with http.listen away from
// httpPort is caught (the probes would fail and /metrics go unscraped).
func TestChartHTTPListenOffPort(t *testing.T) {
	helm(t) // skips when helm cannot be built
	out, err := helmTemplate(t, "--set", "config.http.listen=:9090")
	if err != nil {
		t.Fatal(err)
	}
	m := decodeManifests(t, out)
	cfg, err := config.Parse([]byte(m.configMaps[0].Data[configKey]))
	if err != nil {
		t.Fatal(err)
	}
	var port int32
	for _, p := range m.deployments[0].Spec.Template.Spec.Containers[0].Ports {
		if p.Name == httpPortNm {
			port = p.ContainerPort
		}
	}
	if port == 0 || port == 9090 {
		t.Fatalf("container http port %d, want the chart's default", port)
	}
	if ps := listenProblems(cfg, port); len(ps) != 1 || !strings.Contains(ps[0], `http.listen ":9090"`) {
		t.Fatalf("problems %q, want http.listen :9090 named", ps)
	}
}

// TestChartRefuses checks that values the bot cannot run with fail at
// render time with a message saying why, instead of deploying a broken pod.
func TestChartRefuses(t *testing.T) {
	helm(t) // skips when helm cannot be built
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"ingress in socket mode", []string{"--set", "ingress.enabled=true", "--set", "ingress.hosts={bot.example.com}"}, "needs no Ingress"},
		{"ingress without hosts", []string{"--set", "config.slack.mode=http", "--set", "ingress.enabled=true"}, "ingress.hosts is empty"},
		{"store outside the volume", []string{"--set", "config.store.path=/data/kongbot.db"}, "must be a file under /var/lib/kongbot/"},
		{"unknown slack mode", []string{"--set", "config.slack.mode=rtm"}, `"rtm" is not socket or http`},
		{"secret value instead of a variable name", []string{"--set", "config.slack.bot_token_env=xoxb-1234-abcd"}, "is not an environment variable name"},
		{"a key for a variable the config does not name", []string{"--set", "secrets.keys.KONGBOT_STAGING_PG_DSN.key=dsn"}, "secrets.keys.KONGBOT_STAGING_PG_DSN: the config names no such secret variable"},
		// One replica is not a value (bbolt has one writer); the values
		// schema refuses the usual spelling instead of ignoring it.
		{"a replica count", []string{"--set", "replicaCount=2"}, "additional properties 'replicaCount' not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := helmTemplate(t, tt.args...)
			if err == nil {
				t.Fatalf("helm template succeeded, want a failure mentioning %q:\n%s", tt.want, out)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("helm template failed with %v, want a message containing %q", err, tt.want)
			}
		})
	}
}

func fmtPtr[T any](p *T) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}

func isTrue(b *bool) bool             { return b != nil && *b }
func isInt(p *int64, want int64) bool { return p != nil && *p == want }

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
