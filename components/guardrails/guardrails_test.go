package guardrails_test

import (
	"fmt"
	"strings"
	"testing"

	corev1sdk "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1sdk "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"

	"github.com/secrets-platform/secrets-platform/components/guardrails"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

const (
	namespaceType = "kubernetes:core/v1:Namespace"
	quotaType     = "kubernetes:core/v1:ResourceQuota"
	limitsType    = "kubernetes:core/v1:LimitRange"
	policyType    = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
)

// The production quota of the seed document (flux/infrastructure/resource-quota.yaml):
// CPU 8 requests / 12 limits, memory 16Gi / 24Gi, 50 pods, 50Gi storage.
var seedQuota = map[string]string{
	"requests.cpu":     "8",
	"limits.cpu":       "12",
	"requests.memory":  "16Gi",
	"limits.memory":    "24Gi",
	"pods":             "50",
	"requests.storage": "50Gi",
}

// Pod labels of the charts for releases named "vault" and
// "external-secrets": vault-helm templates/server-statefulset.yaml, and the
// selector labels of the external-secrets chart's _helpers.tpl.
var (
	vaultPods         = map[string]string{"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": "vault", "component": "server"}
	esoControllerPods = map[string]string{"app.kubernetes.io/name": "external-secrets", "app.kubernetes.io/instance": "external-secrets"}
	esoWebhookPods    = map[string]string{"app.kubernetes.io/name": "external-secrets-webhook", "app.kubernetes.io/instance": "external-secrets"}
	esoCertPods       = map[string]string{"app.kubernetes.io/name": "external-secrets-cert-controller", "app.kubernetes.io/instance": "external-secrets"}
	snapshotPods      = map[string]string{"app.kubernetes.io/name": "vault-snapshot", "app.kubernetes.io/instance": "vault"}
	bootstrapPods     = map[string]string{"app.kubernetes.io/name": "vault-bootstrap"}
	rolloutPods       = map[string]string{"app.kubernetes.io/name": "vault-rollout"}
	drillPods         = map[string]string{"app.kubernetes.io/name": "vault-restore-drill", "app.kubernetes.io/instance": "vault"}
	appPods           = map[string]string{"app": "billing"}
	postgresPods      = map[string]string{"app": "postgres"}
)

func productionArgs(namespace string) *guardrails.NamespaceGuardrailsArgs {
	c := guardrails.DefaultConfig()
	c.Quota = seedQuota
	c.AWSCIDRs = []string{"10.0.128.0/24"}
	c.ExtraAllows = []guardrails.Allow{{
		Name: "app-to-postgres", From: appPods, To: postgresPods,
		Ports: []guardrails.Port{{Port: 5432}},
	}}
	return &guardrails.NamespaceGuardrailsArgs{
		Config:    c,
		Namespace: namespace,
		Network: guardrails.NetworkArgs{
			VaultPodLabels:                     vaultPods,
			ExternalSecretsPodLabels:           map[string]string{"app.kubernetes.io/instance": "external-secrets"},
			ExternalSecretsControllerPodLabels: esoControllerPods,
			ExternalSecretsWebhookPodLabels:    esoWebhookPods,
			SnapshotPodLabels:                  snapshotPods,
			BootstrapPodLabels:                 bootstrapPods,
			RolloutPodLabels:                   rolloutPods,
			RestoreDrillPodLabels:              drillPods,
			KubeAPICIDRs:                       []string{"10.0.0.0/28"},
			KubeAPIClusterIP:                   "172.20.0.1",
			MonitoringNamespace:                "monitoring",
		},
	}
}

func runProduction(t *testing.T) (*recorder.Monitor, recorder.Resource) {
	t.Helper()
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		_, err := guardrails.NewNamespaceGuardrails(ctx, "prod-guardrails", productionArgs("production"))
		return err
	})
	return mon, tests.MustFind(t, mon, guardrails.TypeToken, "prod-guardrails")
}

func TestNamespacePodSecurityLabels(t *testing.T) {
	mon, _ := runProduction(t)
	namespaces := mon.ByType(namespaceType)
	if len(namespaces) != 1 {
		t.Fatalf("want exactly one Namespace, got %d", len(namespaces))
	}
	var ns corev1.Namespace
	tests.Decode(t, namespaces[0].Inputs, &ns)
	if ns.Name != "production" {
		t.Errorf("namespace name = %q, want production", ns.Name)
	}
	for _, mode := range []string{"enforce", "audit", "warn"} {
		key := "pod-security.kubernetes.io/" + mode
		if got := ns.Labels[key]; got != "restricted" {
			t.Errorf("%s = %q, want restricted", key, got)
		}
		if got := ns.Labels[key+"-version"]; got != "v1.33" {
			t.Errorf("%s-version = %q, want v1.33", key, got)
		}
		// The admission plugin must understand what we wrote.
		if _, err := psaapi.ParseLevel(ns.Labels[key]); err != nil {
			t.Errorf("%s: %v", key, err)
		}
		if _, err := psaapi.ParseVersion(ns.Labels[key+"-version"]); err != nil {
			t.Errorf("%s-version: %v", key, err)
		}
	}
}

func TestQuotaIsTheSeedQuota(t *testing.T) {
	mon, _ := runProduction(t)
	quotas := mon.ByType(quotaType)
	if len(quotas) != 1 {
		t.Fatalf("want one ResourceQuota, got %d", len(quotas))
	}
	var quota corev1.ResourceQuota
	tests.Decode(t, quotas[0].Inputs, &quota)
	if quota.Namespace != "production" {
		t.Errorf("quota namespace = %q", quota.Namespace)
	}
	want := map[corev1.ResourceName]string{
		corev1.ResourceRequestsCPU:     "8",
		corev1.ResourceLimitsCPU:       "12",
		corev1.ResourceRequestsMemory:  "16Gi",
		corev1.ResourceLimitsMemory:    "24Gi",
		corev1.ResourcePods:            "50",
		corev1.ResourceRequestsStorage: "50Gi",
	}
	if len(quota.Spec.Hard) != len(want) {
		t.Errorf("quota has %d hard limits, want %d: %v", len(quota.Spec.Hard), len(want), quota.Spec.Hard)
	}
	for res, value := range want {
		got, ok := quota.Spec.Hard[res]
		if !ok {
			t.Errorf("quota misses %s", res)
			continue
		}
		if got.Cmp(resource.MustParse(value)) != 0 {
			t.Errorf("quota %s = %s, want %s", res, got.String(), value)
		}
	}
}

func TestLimitRangeGivesContainersDefaults(t *testing.T) {
	mon, _ := runProduction(t)
	ranges := mon.ByType(limitsType)
	if len(ranges) != 1 {
		t.Fatalf("want one LimitRange, got %d", len(ranges))
	}
	var lr corev1.LimitRange
	tests.Decode(t, ranges[0].Inputs, &lr)
	if lr.Namespace != "production" || len(lr.Spec.Limits) != 1 {
		t.Fatalf("LimitRange in %q with %d items, want production with 1", lr.Namespace, len(lr.Spec.Limits))
	}
	item := lr.Spec.Limits[0]
	if item.Type != corev1.LimitTypeContainer {
		t.Errorf("type = %q, want Container", item.Type)
	}
	check := func(what string, list corev1.ResourceList, res corev1.ResourceName, want string) {
		q, ok := list[res]
		if !ok || q.Cmp(resource.MustParse(want)) != 0 {
			t.Errorf("%s %s = %v, want %s", what, res, list[res], want)
		}
	}
	check("defaultRequest", item.DefaultRequest, corev1.ResourceCPU, "100m")
	check("defaultRequest", item.DefaultRequest, corev1.ResourceMemory, "128Mi")
	check("default", item.Default, corev1.ResourceCPU, "500m")
	check("default", item.Default, corev1.ResourceMemory, "512Mi")
	// The API server rejects a LimitRange whose default request exceeds
	// its default limit.
	for res, q := range item.Default {
		if limit, ok := item.DefaultRequest[res]; ok && limit.Cmp(q) > 0 {
			t.Errorf("defaultRequest %s %s exceeds default limit %s", res, limit.String(), q.String())
		}
	}
}

func policies(t *testing.T, mon *recorder.Monitor) map[string]networkingv1.NetworkPolicy {
	t.Helper()
	out := map[string]networkingv1.NetworkPolicy{}
	for _, r := range mon.ByType(policyType) {
		var np networkingv1.NetworkPolicy
		tests.Decode(t, r.Inputs, &np)
		out[np.Name] = np
	}
	return out
}

func TestDefaultDenySelectsEveryPod(t *testing.T) {
	mon, _ := runProduction(t)
	np, ok := policies(t, mon)["prod-guardrails-default-deny"]
	if !ok {
		t.Fatalf("no default-deny policy; registered:\n%s", mon.Tree())
	}
	// spec.podSelector is required by the API: it must be sent, empty.
	raw := tests.PlainMap(tests.MustFind(t, mon, policyType, "prod-guardrails-default-deny").Inputs)
	if sel, ok := tests.Path(raw, "spec", "podSelector").(map[string]any); !ok || len(sel) != 0 {
		t.Errorf("spec.podSelector = %#v, want {}", tests.Path(raw, "spec", "podSelector"))
	}
	if np.Namespace != "production" {
		t.Errorf("default deny in namespace %q", np.Namespace)
	}
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || !sel.Empty() {
		t.Errorf("podSelector %v does not select every pod (err %v)", np.Spec.PodSelector, err)
	}
	types := map[networkingv1.PolicyType]bool{}
	for _, pt := range np.Spec.PolicyTypes {
		types[pt] = true
	}
	if len(np.Spec.PolicyTypes) != 2 || !types[networkingv1.PolicyTypeIngress] || !types[networkingv1.PolicyTypeEgress] {
		t.Errorf("policyTypes = %v, want Ingress and Egress", np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 0 {
		t.Errorf("default deny has rules: ingress %v egress %v", np.Spec.Ingress, np.Spec.Egress)
	}
}

func TestAllowsAreNarrow(t *testing.T) {
	mon, _ := runProduction(t)
	all := policies(t, mon)
	if len(all) < 2 {
		t.Fatalf("only %d network policies", len(all))
	}
	for name, np := range all {
		if name == "prod-guardrails-default-deny" {
			continue
		}
		if np.Namespace != "production" {
			t.Errorf("%s: namespace %q", name, np.Namespace)
		}
		if len(np.Spec.Ingress)+len(np.Spec.Egress) == 0 {
			t.Errorf("%s allows nothing", name)
		}
		checkRule := func(dir string, i int, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) {
			// A rule without peers or ports allows every peer or port.
			if len(peers) == 0 {
				t.Errorf("%s %s rule %d names no peer", name, dir, i)
			}
			if len(ports) == 0 {
				t.Errorf("%s %s rule %d names no port", name, dir, i)
			}
			for _, p := range ports {
				if p.Port == nil || p.Port.IntValue() == 0 || p.Protocol == nil || *p.Protocol == "" {
					t.Errorf("%s %s rule %d: port %+v lacks a number or protocol", name, dir, i, p)
				}
			}
		}
		for i, r := range np.Spec.Ingress {
			checkRule("ingress", i, r.From, r.Ports)
		}
		for i, r := range np.Spec.Egress {
			checkRule("egress", i, r.To, r.Ports)
		}
	}
}

// endpoint is one side of a connection: a pod or an address outside the
// cluster's pods.
type endpoint = tests.Endpoint

func pod(namespace string, l map[string]string) endpoint {
	return endpoint{Name: fmt.Sprint(namespace, l), Namespace: namespace, Labels: l}
}

func address(ip string) endpoint { return endpoint{Name: ip, IP: ip} }

// allowed evaluates the recorded policies with the tests package's flow
// evaluator, for a direct connection (no Service in between).
func allowed(t *testing.T, pols map[string]networkingv1.NetworkPolicy, src, dst endpoint, port int32, proto corev1.Protocol) bool {
	t.Helper()
	net := tests.Network{}
	for _, np := range pols {
		net.Policies = append(net.Policies, np)
	}
	return net.Allowed(tests.Flow{From: src, To: dst, Port: port, Protocol: proto}, tests.PostDNAT) == nil
}

func TestPlatformFlows(t *testing.T) {
	mon, _ := runProduction(t)
	pols := policies(t, mon)
	const ns = "production"
	var (
		vault      = pod(ns, vaultPods)
		controller = pod(ns, esoControllerPods)
		webhook    = pod(ns, esoWebhookPods)
		certCtl    = pod(ns, esoCertPods)
		snapshot   = pod(ns, snapshotPods)
		boot       = pod(ns, bootstrapPods)
		rollout    = pod(ns, rolloutPods)
		drill      = pod(ns, drillPods)
		app        = pod(ns, appPods)
		postgres   = pod(ns, postgresPods)
		coreDNS    = pod("kube-system", map[string]string{"k8s-app": "kube-dns"})
		prometheus = pod("monitoring", map[string]string{"app": "prometheus"})
		otherNS    = pod("default", map[string]string{"app": "prometheus"})
		apiServer  = address("10.0.0.5")
		kmsVPCE    = address("10.0.128.10")
		internet   = address("203.0.113.7")
		tcp, udp   = corev1.ProtocolTCP, corev1.ProtocolUDP
	)
	cases := []struct {
		what     string
		src, dst endpoint
		port     int32
		proto    corev1.Protocol
		want     bool
	}{
		{"vault raft", vault, vault, 8201, tcp, true},
		{"vault api between servers", vault, vault, 8200, tcp, true},
		{"vault replication port stays closed", vault, vault, 8202, tcp, false},
		{"eso controller reads vault", controller, vault, 8200, tcp, true},
		{"eso webhook does not reach vault", webhook, vault, 8200, tcp, false},
		{"eso controller does not reach raft", controller, vault, 8201, tcp, false},
		{"snapshot job reads vault", snapshot, vault, 8200, tcp, true},
		{"other pods do not reach vault", app, vault, 8200, tcp, false},
		{"dns over udp", app, coreDNS, 53, udp, true},
		{"dns over tcp", vault, coreDNS, 53, tcp, true},
		{"nothing else in kube-system", vault, coreDNS, 9153, tcp, false},
		{"vault to kube api", vault, apiServer, 443, tcp, true},
		{"eso controller to kube api", controller, apiServer, 443, tcp, true},
		{"eso cert controller to kube api", certCtl, apiServer, 443, tcp, true},
		{"snapshot job not to kube api", snapshot, apiServer, 443, tcp, false},
		{"api server calls the eso webhook", apiServer, webhook, 10250, tcp, true},
		{"api server does not call vault", apiServer, vault, 8200, tcp, false},
		{"vault to kms", vault, kmsVPCE, 443, tcp, true},
		{"snapshot job to s3", snapshot, kmsVPCE, 443, tcp, true},
		{"bootstrap job reaches every voter", boot, vault, 8200, tcp, true},
		{"bootstrap job not to raft", boot, vault, 8201, tcp, false},
		{"bootstrap job to kms and s3", boot, kmsVPCE, 443, tcp, true},
		{"bootstrap job not to kube api", boot, apiServer, 443, tcp, false},
		{"bootstrap job not to the internet", boot, internet, 443, tcp, false},
		{"rollout job reaches every voter", rollout, vault, 8200, tcp, true},
		{"rollout job not to raft", rollout, vault, 8201, tcp, false},
		{"rollout job to the kube api", rollout, apiServer, 443, tcp, true},
		{"rollout job resolves names", rollout, coreDNS, 53, udp, true},
		{"rollout job not to aws", rollout, kmsVPCE, 443, tcp, false},
		{"rollout job not to the internet", rollout, internet, 443, tcp, false},
		{"rollout job not to eso", rollout, controller, 8080, tcp, false},
		{"nothing reaches the rollout job", vault, rollout, 8200, tcp, false},
		{"eso not to aws", controller, kmsVPCE, 443, tcp, false},
		{"restore drill to s3, kms and sts", drill, kmsVPCE, 443, tcp, true},
		{"restore drill resolves names", drill, coreDNS, 53, udp, true},
		{"restore drill does not reach vault", drill, vault, 8200, tcp, false},
		{"restore drill not to kube api", drill, apiServer, 443, tcp, false},
		{"restore drill not to the internet", drill, internet, 443, tcp, false},
		{"nothing reaches the restore drill", app, drill, 8200, tcp, false},
		{"vault not to the internet", vault, internet, 443, tcp, false},
		{"monitoring scrapes vault", prometheus, vault, 8200, tcp, true},
		{"monitoring scrapes eso", prometheus, controller, 8080, tcp, true},
		{"monitoring scrapes the eso webhook", prometheus, webhook, 8080, tcp, true},
		{"other namespaces do not scrape", otherNS, vault, 8200, tcp, false},
		{"extra allow", app, postgres, 5432, tcp, true},
		{"extra allow is one way", postgres, app, 5432, tcp, false},
		{"extra allow names its port", app, postgres, 5433, tcp, false},
	}
	for _, c := range cases {
		if got := allowed(t, pols, c.src, c.dst, c.port, c.proto); got != c.want {
			t.Errorf("%s: allowed = %v, want %v", c.what, got, c.want)
		}
	}
}

func TestChildrenAreParentedToTheComponent(t *testing.T) {
	mon, comp := runProduction(t)
	children := 0
	for _, r := range mon.Resources() {
		if r.URN == comp.URN {
			continue
		}
		children++
		if r.Parent != comp.URN {
			t.Errorf("%s %s has parent %q, want the component", r.Type, r.Name, r.Parent)
		}
	}
	if children < 4 {
		t.Errorf("only %d children:\n%s", children, mon.Tree())
	}
}

func TestNamespaceOutputWaitsForGuardrails(t *testing.T) {
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		g, err := guardrails.NewNamespaceGuardrails(ctx, "prod-guardrails", productionArgs("production"))
		if err != nil {
			return err
		}
		_, err = corev1sdk.NewConfigMap(ctx, "workload", &corev1sdk.ConfigMapArgs{
			Metadata: &metav1sdk.ObjectMetaArgs{Namespace: g.Namespace},
		})
		return err
	})
	cm := tests.MustFind(t, mon, "kubernetes:core/v1:ConfigMap", "workload")
	var obj corev1.ConfigMap
	tests.Decode(t, cm.Inputs, &obj)
	if obj.Namespace != "production" {
		t.Errorf("Namespace output = %q, want production", obj.Namespace)
	}
	deps := map[string]bool{}
	for _, d := range cm.DependsOn {
		deps[d] = true
	}
	for _, want := range []recorder.Resource{
		tests.MustFind(t, mon, namespaceType, "prod-guardrails-namespace"),
		tests.MustFind(t, mon, quotaType, "prod-guardrails-quota"),
		tests.MustFind(t, mon, limitsType, "prod-guardrails-limits"),
		tests.MustFind(t, mon, policyType, "prod-guardrails-default-deny"),
		tests.MustFind(t, mon, policyType, "prod-guardrails-eso-to-vault-ingress"),
	} {
		if !deps[want.URN] {
			t.Errorf("a workload in the namespace does not depend on %s %s; depends on %v", want.Type, want.Name, cm.DependsOn)
		}
	}
}

func TestTwoInstancesDoNotCollide(t *testing.T) {
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		if _, err := guardrails.NewNamespaceGuardrails(ctx, "prod", productionArgs("production")); err != nil {
			return err
		}
		_, err := guardrails.NewNamespaceGuardrails(ctx, "staging", productionArgs("staging"))
		return err
	})
	if n := len(mon.ByType(guardrails.TypeToken)); n != 2 {
		t.Fatalf("want two components, got %d", n)
	}
	names := map[string]bool{}
	objects := map[string]bool{}
	for _, r := range mon.Resources() {
		key := r.Type + " " + r.Name
		if names[key] {
			t.Errorf("duplicate registration %s", key)
		}
		names[key] = true
		if !strings.HasPrefix(r.Type, "kubernetes:") {
			continue
		}
		var meta struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		tests.Decode(t, r.Inputs, &meta)
		kind := r.Type[strings.LastIndex(r.Type, ":")+1:]
		obj := kind + " " + meta.Metadata.Namespace + "/" + meta.Metadata.Name
		if meta.Metadata.Name == "" || objects[obj] {
			t.Errorf("duplicate or unnamed Kubernetes object %q", obj)
		}
		objects[obj] = true
	}
	if n := len(mon.ByType(namespaceType)); n != 2 {
		t.Errorf("want two namespaces, got %d", n)
	}
}

func TestInvalidArgs(t *testing.T) {
	cases := []struct {
		what   string
		mutate func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs
		want   string
	}{
		{"nil args", func(*guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs { return nil }, "args are required"},
		{"no namespace", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.Namespace = ""
			return a
		}, "Namespace: is required"},
		{"privileged", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.PodSecurityLevel = "privileged"
			return a
		}, `g.podSecurityLevel: "privileged" is not allowed`},
		{"unpinned-looking version", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.PodSecurityVersion = "1.33"
			return a
		}, `g.podSecurityVersion: "1.33" is not a Pod Security version`},
		{"namespace not a DNS label", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.Namespace = "Production"
			return a
		}, `Namespace: "Production" is not a DNS label`},
		{"extra allow name not DNS", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.ExtraAllows = []guardrails.Allow{{Name: "App_DB", From: appPods, To: postgresPods, Ports: []guardrails.Port{{Port: 1}}}}
			return a
		}, `g.extraAllows[0].name: "App_DB" is not a DNS label`},
		{"bad quantity", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.Quota = map[string]string{"requests.cpu": "eight"}
			return a
		}, `g.quota.requests.cpu: "eight" is not a Kubernetes quantity`},
		{"cpu quota without cpu default", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.DefaultRequest, a.DefaultLimit = nil, map[string]string{"memory": "1Gi"}
			return a
		}, "g.defaultRequest: must set cpu"},
		{"no vault labels", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.Network.VaultPodLabels = nil
			return a
		}, "Network.VaultPodLabels is required"},
		{"no api cidrs", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.Network.KubeAPICIDRs = nil
			return a
		}, "KubeAPICIDRs is required"},
		{"no api cluster ip", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.Network.KubeAPIClusterIP = ""
			return a
		}, "KubeAPIClusterIP \"\" is not one IP address"},
		{"api cluster ip as a cidr", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.Network.KubeAPIClusterIP = "172.20.0.0/16"
			return a
		}, "KubeAPIClusterIP \"172.20.0.0/16\" is not one IP address"},
		{"bad cidr", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.AWSCIDRs = []string{"10.0.0.1"}
			return a
		}, `g.awsCidrs[0]: "10.0.0.1" is not a CIDR`},
		{"extra allow selecting every pod", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.ExtraAllows = []guardrails.Allow{{Name: "open", From: appPods, Ports: []guardrails.Port{{Port: 80}}}}
			return a
		}, "g.extraAllows[0]: from and to must both select pods by label"},
		{"extra allow without ports", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.ExtraAllows = []guardrails.Allow{{Name: "any", From: appPods, To: postgresPods}}
			return a
		}, "g.extraAllows[0].ports: required: every allow names its ports"},
		{"extra allow with a bad protocol", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.ExtraAllows = []guardrails.Allow{{Name: "x", From: appPods, To: postgresPods, Ports: []guardrails.Port{{Port: 1, Protocol: "ICMP"}}}}
			return a
		}, `g.extraAllows[0].ports[0].protocol: "ICMP" is not allowed`},
		{"extra allow shadowing a built-in", func(a *guardrails.NamespaceGuardrailsArgs) *guardrails.NamespaceGuardrailsArgs {
			a.ExtraAllows = []guardrails.Allow{{Name: "eso-to-vault", From: appPods, To: postgresPods, Ports: []guardrails.Port{{Port: 1}}}}
			return a
		}, `named "g-eso-to-vault-egress"`},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			args := c.mutate(productionArgs("production"))
			mon, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
				_, err := guardrails.NewNamespaceGuardrails(ctx, "g", args)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want one containing %q", err, c.want)
			}
			if n := len(mon.Resources()); n != 0 {
				t.Errorf("%d resources registered before the error:\n%s", n, mon.Tree())
			}
		})
	}
}

func TestBaselineAndOptionalPolicies(t *testing.T) {
	mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
		args := productionArgs("dev")
		args.PodSecurityLevel, args.PodSecurityVersion = "baseline", "latest"
		args.Network.SnapshotPodLabels, args.AWSCIDRs, args.Network.MonitoringNamespace = nil, nil, ""
		args.Network.BootstrapPodLabels, args.Network.RestoreDrillPodLabels = nil, nil
		args.Network.RolloutPodLabels = nil
		args.ExtraAllows = nil
		_, err := guardrails.NewNamespaceGuardrails(ctx, "dev", args)
		return err
	})
	var ns corev1.Namespace
	tests.Decode(t, tests.MustFind(t, mon, namespaceType, "dev-namespace").Inputs, &ns)
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "baseline" || ns.Labels["pod-security.kubernetes.io/enforce-version"] != "latest" {
		t.Errorf("labels = %v, want baseline/latest", ns.Labels)
	}
	pols := policies(t, mon)
	for name := range pols {
		for _, absent := range []string{"snapshot", "bootstrap", "rollout", "drill", "aws", "monitoring"} {
			if strings.Contains(name, absent) {
				t.Errorf("policy %s exists though its %s input is empty", name, absent)
			}
		}
	}
	// Without a snapshot job, nothing but ESO's controller and Vault itself reach Vault.
	if allowed(t, pols, pod("dev", snapshotPods), pod("dev", vaultPods), 8200, corev1.ProtocolTCP) {
		t.Error("snapshot pods reach Vault although no snapshot job is configured")
	}
}

// TestKubeAPIEgressNamesEndpointsAndClusterIP: every egress rule set to the
// API holds the endpoints on their port and the Service's ClusterIP on 443,
// which is what a pre-DNAT dataplane (the AWS VPC CNI) matches.
func TestKubeAPIEgressNamesEndpointsAndClusterIP(t *testing.T) {
	for _, c := range []struct {
		clusterIP, want string
		port            int
	}{{"172.20.0.1", "172.20.0.1/32", 0}, {"fd12:3456::1", "fd12:3456::1/128", 6443}} {
		mon := tests.RunComponent(t, func(ctx *pulumi.Context) error {
			args := productionArgs("production")
			args.Network.KubeAPIClusterIP, args.Network.KubeAPIPort = c.clusterIP, c.port
			_, err := guardrails.NewNamespaceGuardrails(ctx, "g", args)
			return err
		})
		endpointPort := c.port
		if endpointPort == 0 {
			endpointPort = guardrails.DefaultKubeAPIPort
		}
		pols := policies(t, mon)
		for _, name := range []string{"g-vault-kube-api-egress", "g-eso-kube-api-egress"} {
			np, ok := pols[name]
			if !ok {
				t.Fatalf("no policy %s", name)
			}
			type rule struct {
				cidrs string
				port  int
			}
			var got []rule
			for _, r := range np.Spec.Egress {
				var cidrs []string
				for _, p := range r.To {
					if p.IPBlock == nil || p.PodSelector != nil || p.NamespaceSelector != nil || len(p.IPBlock.Except) > 0 {
						t.Errorf("%s: peer %+v is not a plain ipBlock", name, p)
						continue
					}
					cidrs = append(cidrs, p.IPBlock.CIDR)
				}
				if len(r.Ports) != 1 || *r.Ports[0].Protocol != corev1.ProtocolTCP {
					t.Fatalf("%s: ports %+v, want one TCP port", name, r.Ports)
				}
				got = append(got, rule{strings.Join(cidrs, ","), r.Ports[0].Port.IntValue()})
			}
			want := []rule{{"10.0.0.0/28", endpointPort}, {c.want, guardrails.KubeAPIServicePort}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s egress = %v, want %v", name, got, want)
			}
		}
	}
}
