package preflight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
)

// cluster is a fake cluster answering the kubectl calls the checks make,
// the way kubectl answers them: `-o json` of typed objects and lists,
// nothing for --ignore-not-found of an object that does not exist, a
// non-zero exit (an error) with kubectl's message otherwise. Each test
// starts from a healthy cluster and breaks one thing.
type cluster struct {
	t *testing.T
	// contexts and current are the kubeconfig's.
	contexts []string
	current  string
	// unreachable makes every call to the API server fail.
	unreachable bool
	canI        string
	nodes       []corev1.Node
	classes     []storagev1.StorageClass
	csiDrivers  []string
	daemonSets  []appsv1.DaemonSet
	configMaps  []corev1.ConfigMap
	namespaces  []corev1.Namespace
	pods        []corev1.Pod
	crds        []metav1.PartialObjectMetadata
	// monitoringKinds are the kinds monitoring.coreos.com/v1 serves; nil:
	// the group is not served.
	monitoringKinds []string
	prometheuses    []prometheus
	services        []corev1.Service
	deployments     []appsv1.Deployment
	statefulSets    []appsv1.StatefulSet
	// calls records every call, for the read-only test.
	calls [][]string
}

func node(name, zone string) corev1.Node {
	return corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			corev1.LabelHostname: name, corev1.LabelTopologyZone: zone,
		}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
}

// awsNode is the VPC CNI's DaemonSet, its policy agent on or off.
func awsNode(agentOn bool) appsv1.DaemonSet {
	flag := "--enable-network-policy=false"
	if agentOn {
		flag = "--enable-network-policy=true"
	}
	ds := appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "aws-node", Namespace: "kube-system"}}
	ds.Spec.Template.Spec.Containers = []corev1.Container{
		{Name: "aws-node"},
		{Name: "aws-eks-nodeagent", Args: []string{"--enable-ipv6=false", flag}},
	}
	return ds
}

func healthy(t *testing.T) *cluster {
	wait := storagev1.VolumeBindingWaitForFirstConsumer
	empty := &metav1.LabelSelector{}
	release := &metav1.LabelSelector{MatchLabels: map[string]string{"release": "prometheus"}}
	prom := prometheus{ObjectMeta: metav1.ObjectMeta{Name: "prometheus", Namespace: "monitoring"}}
	prom.Spec.ServiceMonitorSelector, prom.Spec.ServiceMonitorNamespaceSelector = release, empty
	prom.Spec.ProbeSelector, prom.Spec.ProbeNamespaceSelector = release, empty
	prom.Spec.RuleSelector, prom.Spec.RuleNamespaceSelector = release, empty
	grafana := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "grafana", Namespace: "monitoring"}}
	grafana.Spec.Template.Spec.Containers = []corev1.Container{
		{Name: "grafana"},
		{Name: "grafana-sc-dashboard", Env: []corev1.EnvVar{{Name: "LABEL", Value: "grafana_dashboard"}, {Name: "LABEL_VALUE", Value: "1"}}},
	}
	return &cluster{
		t:        t,
		contexts: []string{"staging", "production"},
		current:  "staging",
		canI:     "yes",
		nodes:    []corev1.Node{node("ip-10-40-1-1", "eu-west-1a"), node("ip-10-40-2-1", "eu-west-1b"), node("ip-10-40-3-1", "eu-west-1c")},
		classes: []storagev1.StorageClass{
			{ObjectMeta: metav1.ObjectMeta{Name: "gp3"}, Provisioner: ebsCSIDriver, VolumeBindingMode: &wait},
		},
		csiDrivers:      []string{ebsCSIDriver},
		daemonSets:      []appsv1.DaemonSet{awsNode(true), {ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: "kube-system"}}},
		monitoringKinds: []string{"ServiceMonitor", "Probe", "PrometheusRule", "Prometheus", "PodMonitor"},
		prometheuses:    []prometheus{prom},
		services: []corev1.Service{{
			ObjectMeta: metav1.ObjectMeta{Name: "prometheus-blackbox-exporter", Namespace: "monitoring"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 9115}}},
		}},
		deployments: []appsv1.Deployment{grafana},
	}
}

// target is production's, as fromstack derives it (tests/ checks that
// derivation against the real stack).
func target() Target {
	labels := map[string]string{"release": "prometheus"}
	return Target{
		Stack:              "production",
		Context:            "production",
		Namespace:          "production",
		NamespaceLabels:    map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
		StorageClass:       "gp3",
		Voters:             3,
		PrometheusOperator: true,
		Monitors: []Object{
			{Kind: "ServiceMonitor", Namespace: "production", Name: "vault", Labels: labels},
			{Kind: "Probe", Namespace: "production", Name: "vault-tls", Labels: labels},
			{Kind: "PrometheusRule", Namespace: "production", Name: "vault", Labels: labels},
		},
		Dashboards: []Object{{Kind: "ConfigMap", Namespace: "monitoring", Name: "vault-dashboard", Labels: map[string]string{"grafana_dashboard": "1"}}},
		Prober:     &Prober{Address: "prometheus-blackbox-exporter.monitoring.svc:9115", Module: "vault_tls"},
		ESORelease: "external-secrets",
	}
}

func (c *cluster) kubectl(_ context.Context, args ...string) ([]byte, error) {
	c.calls = append(c.calls, args)
	if len(args) >= 2 && args[0] == "config" && args[1] == "view" {
		var cfg kubeconfig
		cfg.CurrentContext = c.current
		for _, name := range c.contexts {
			cfg.Contexts = append(cfg.Contexts, struct {
				Name    string `json:"name"`
				Context struct {
					Cluster string `json:"cluster"`
					User    string `json:"user"`
				} `json:"context"`
			}{Name: name})
		}
		return c.json(cfg)
	}
	// Every other call names the context and a timeout first.
	if len(args) < 4 || args[0] != "--context" || args[2] != "--request-timeout" {
		c.t.Fatalf("kubectl %v: a cluster call without --context and --request-timeout", args)
	}
	if !slices.Contains(c.contexts, args[1]) {
		return nil, fmt.Errorf("error: context %q does not exist", args[1])
	}
	if c.unreachable {
		return nil, kubectlError("Unable to connect to the server: dial tcp 10.40.0.10:443: i/o timeout")
	}
	args = args[4:]
	ignoreNotFound := slices.Contains(args, "--ignore-not-found")
	cmd := strings.Join(slices.DeleteFunc(slices.Clone(args), func(a string) bool {
		return a == "--ignore-not-found" || a == "-o" || a == "json"
	}), " ")
	// one answers a get of a single object.
	one := func(obj any, found bool) ([]byte, error) {
		switch {
		case found:
			return c.json(obj)
		case ignoreNotFound:
			return nil, nil
		}
		return nil, kubectlError("Error from server (NotFound): " + cmd + " not found")
	}
	switch {
	case cmd == "version":
		return c.json(map[string]any{"serverVersion": version.Info{GitVersion: "v1.33.2-eks-1"}})
	case cmd == "auth can-i * * --all-namespaces":
		if c.canI == "yes" {
			return []byte("yes\n"), nil
		}
		return []byte(c.canI + "\n"), errors.New("exit status 1")
	case cmd == "get nodes":
		return c.json(corev1.NodeList{Items: c.nodes})
	case cmd == "get storageclasses":
		return c.json(storagev1.StorageClassList{Items: c.classes})
	case strings.HasPrefix(cmd, "get storageclass "):
		i := slices.IndexFunc(c.classes, func(s storagev1.StorageClass) bool { return s.Name == args[2] })
		if i < 0 {
			return one(nil, false)
		}
		return one(c.classes[i], true)
	case strings.HasPrefix(cmd, "get csidriver "):
		return one(storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: args[2]}}, slices.Contains(c.csiDrivers, args[2]))
	case cmd == "get daemonsets --all-namespaces":
		return c.json(appsv1.DaemonSetList{Items: c.daemonSets})
	case strings.HasPrefix(cmd, "get configmap "):
		i := slices.IndexFunc(c.configMaps, func(m corev1.ConfigMap) bool { return m.Name == args[2] && m.Namespace == args[4] })
		if i < 0 {
			return one(nil, false)
		}
		return one(c.configMaps[i], true)
	case strings.HasPrefix(cmd, "get namespace "):
		i := slices.IndexFunc(c.namespaces, func(n corev1.Namespace) bool { return n.Name == args[2] })
		if i < 0 {
			return one(nil, false)
		}
		return one(c.namespaces[i], true)
	case strings.HasPrefix(cmd, "get pods --namespace "):
		return c.json(corev1.PodList{Items: slices.DeleteFunc(slices.Clone(c.pods), func(p corev1.Pod) bool { return p.Namespace != args[3] })})
	case strings.HasPrefix(cmd, "get customresourcedefinition "):
		i := slices.IndexFunc(c.crds, func(m metav1.PartialObjectMetadata) bool { return m.Name == args[2] })
		if i < 0 {
			return one(nil, false)
		}
		return one(c.crds[i], true)
	case cmd == "get --raw /apis/monitoring.coreos.com/v1":
		if slices.Contains(args, "-o") {
			c.t.Fatal("kubectl rejects --raw with --output")
		}
		if c.monitoringKinds == nil {
			return nil, kubectlError("Error from server (NotFound): the server could not find the requested resource")
		}
		list := metav1.APIResourceList{GroupVersion: "monitoring.coreos.com/v1"}
		for _, k := range c.monitoringKinds {
			list.APIResources = append(list.APIResources, metav1.APIResource{Kind: k, Name: strings.ToLower(k) + "s"})
		}
		return c.json(list)
	case cmd == "get prometheuses.monitoring.coreos.com --all-namespaces":
		if c.monitoringKinds == nil {
			return nil, errors.New(`error: the server doesn't have a resource type "prometheuses"`)
		}
		return c.json(map[string]any{"apiVersion": "v1", "kind": "List", "items": c.prometheuses})
	case strings.HasPrefix(cmd, "get service "):
		i := slices.IndexFunc(c.services, func(s corev1.Service) bool { return s.Name == args[2] && s.Namespace == args[4] })
		if i < 0 {
			return one(nil, false)
		}
		return one(c.services[i], true)
	case cmd == "get deployments --all-namespaces":
		return c.json(appsv1.DeploymentList{Items: c.deployments})
	case cmd == "get statefulsets --all-namespaces":
		return c.json(appsv1.StatefulSetList{Items: c.statefulSets})
	}
	c.t.Fatalf("unexpected kubectl call: %v", args)
	return nil, nil
}

// kubectlError is an error as kubectl words it (capitalised).
func kubectlError(msg string) error { return errors.New(msg) }

func (c *cluster) json(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	return raw, nil
}

// result runs every check on c and returns the one named check.
func result(t *testing.T, c *cluster, tgt Target, check string) Result {
	t.Helper()
	results := Run(context.Background(), c.kubectl, tgt)
	for _, r := range results {
		if r.Check == check {
			return r
		}
	}
	t.Fatalf("no result for %q in %+v", check, results)
	return Result{}
}

func TestAHealthyClusterPassesEveryCheck(t *testing.T) {
	c := healthy(t)
	results := Run(context.Background(), c.kubectl, target())
	if len(results) != 12 {
		t.Errorf("got %d results, want 12 (every check ran): %+v", len(results), results)
	}
	for _, r := range results {
		if r.Status != OK {
			t.Errorf("%s: %s, want ok: %s", r.Check, r.Status, r.Detail)
		}
	}
	if Failed(results) {
		t.Error("Failed is true for a healthy cluster")
	}
	// Read-only: every call is config view, version, auth can-i or get.
	for _, call := range c.calls {
		verb := call[0]
		if verb == "--context" {
			verb = call[4]
		}
		if !slices.Contains([]string{"config", "version", "auth", "get"}, verb) {
			t.Errorf("kubectl %v is not a read", call)
		}
	}
}

// Each case breaks one thing of a healthy cluster (or the target) and
// names the check that must see it, the status it must report and a piece
// of what it must say.
func TestEachCheckSeesWhatIsMissing(t *testing.T) {
	immediate := storagev1.VolumeBindingImmediate
	cases := []struct {
		name    string
		breakIt func(c *cluster, tgt *Target)
		check   string
		status  Status
		says    string
	}{
		{"the stack's context is not in the kubeconfig", func(c *cluster, _ *Target) { c.contexts = []string{"staging"} }, "kube context", Missing, `kubernetes.context is "production", which the kubeconfig does not have (it has staging)`},
		{"no context named: the current one is used", func(_ *cluster, tgt *Target) { tgt.Context = "" }, "kube context", Warn, `deploys to whatever context is current (now "staging")`},
		{"no context named and none current", func(c *cluster, tgt *Target) { tgt.Context, c.current = "", "" }, "kube context", Missing, "no current context"},
		{"the API server does not answer", func(c *cluster, _ *Target) { c.unreachable = true }, "API server", Missing, "i/o timeout"},
		{"not cluster-admin", func(c *cluster, _ *Target) { c.canI = "no" }, "cluster-admin", Missing, "AmazonEKSClusterAdminPolicy"},
		{"two nodes for three voters", func(c *cluster, _ *Target) { c.nodes = c.nodes[:2] }, "nodes", Missing, "2 schedulable node(s)"},
		{"a cordoned node does not count", func(c *cluster, _ *Target) { c.nodes[2].Spec.Unschedulable = true }, "nodes", Missing, "not schedulable (cordoned, not Ready or tainted): ip-10-40-3-1"},
		{"a tainted node does not count", func(c *cluster, _ *Target) {
			c.nodes[0].Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
		}, "nodes", Missing, "2 schedulable node(s)"},
		{"a node that is not Ready does not count", func(c *cluster, _ *Target) {
			c.nodes[1].Status.Conditions[0].Status = corev1.ConditionFalse
		}, "nodes", Missing, "2 schedulable node(s)"},
		{"three nodes in one zone", func(c *cluster, _ *Target) {
			for i := range c.nodes {
				c.nodes[i].Labels[corev1.LabelTopologyZone] = "eu-west-1a"
			}
		}, "nodes", Warn, "all in one zone"},
		{"the named storage class does not exist", func(c *cluster, _ *Target) { c.classes[0].Name = "gp2" }, "storage class", Missing, `vault.storageClass is "gp3", which the cluster does not have`},
		{"no class named and no default", func(_ *cluster, tgt *Target) { tgt.StorageClass = "" }, "storage class", Missing, "no default storage class"},
		{"no class named, a default exists", func(c *cluster, tgt *Target) {
			tgt.StorageClass = ""
			c.classes[0].Annotations = map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}
		}, "storage class", OK, "gp3 (provisioner ebs.csi.aws.com)"},
		{"the EBS CSI driver is not installed", func(c *cluster, _ *Target) { c.csiDrivers = nil }, "storage class", Missing, "the EBS CSI driver is not installed"},
		{"the class binds immediately", func(c *cluster, _ *Target) { c.classes[0].VolumeBindingMode = &immediate }, "storage class", Warn, "Immediate"},
		{"the VPC CNI's policy agent is off", func(c *cluster, _ *Target) { c.daemonSets[0] = awsNode(false) }, "network policy", Missing, "would do nothing"},
		{"the VPC CNI without its agent container", func(c *cluster, _ *Target) {
			c.daemonSets[0].Spec.Template.Spec.Containers = c.daemonSets[0].Spec.Template.Spec.Containers[:1]
		}, "network policy", Missing, "enableNetworkPolicy"},
		{"Calico beside a VPC CNI without its agent", func(c *cluster, _ *Target) {
			c.daemonSets = append(c.daemonSets, appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "calico-node", Namespace: "calico-system"}})
			c.daemonSets[0] = awsNode(false)
		}, "network policy", OK, "Calico (DaemonSet calico-system/calico-node)"},
		{"Cilium", func(c *cluster, _ *Target) {
			c.daemonSets = []appsv1.DaemonSet{{ObjectMeta: metav1.ObjectMeta{Name: "cilium", Namespace: "kube-system"}}}
		}, "network policy", OK, "Cilium"},
		{"EKS Auto Mode with the controller on", func(c *cluster, _ *Target) {
			c.daemonSets = nil
			c.configMaps = []corev1.ConfigMap{{ObjectMeta: metav1.ObjectMeta{Name: "amazon-vpc-cni", Namespace: "kube-system"}, Data: map[string]string{"enable-network-policy-controller": "true"}}}
		}, "network policy", OK, "EKS Auto Mode"},
		{"no engine at all", func(c *cluster, _ *Target) { c.daemonSets = c.daemonSets[1:] }, "network policy", Missing, "no known network policy engine"},
		{"the namespace exists with pods", func(c *cluster, _ *Target) {
			c.namespaces = []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "production"}}}
			c.pods = []corev1.Pod{
				{ObjectMeta: metav1.ObjectMeta{Name: "legacy-api-0", Namespace: "production"}},
				{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "default"}},
			}
		}, "namespace", Warn, "production exists with 1 pod(s) (legacy-api-0)"},
		{"another release owns the ESO CRDs", func(c *cluster, _ *Target) {
			c.crds = []metav1.PartialObjectMetadata{{ObjectMeta: metav1.ObjectMeta{Name: "externalsecrets.external-secrets.io", Annotations: map[string]string{
				"meta.helm.sh/release-name": "external-secrets", "meta.helm.sh/release-namespace": "external-secrets",
			}}}}
		}, "external-secrets CRDs", Missing, "belongs to release external-secrets/external-secrets, not to production/external-secrets"},
		{"no release owns the ESO CRDs", func(c *cluster, _ *Target) {
			c.crds = []metav1.PartialObjectMetadata{{ObjectMeta: metav1.ObjectMeta{Name: "externalsecrets.external-secrets.io"}}}
		}, "external-secrets CRDs", Missing, "belongs to no Helm release"},
		{"our own release's CRDs, kept", func(c *cluster, _ *Target) {
			c.crds = []metav1.PartialObjectMetadata{{ObjectMeta: metav1.ObjectMeta{Name: "externalsecrets.external-secrets.io", Annotations: map[string]string{
				"meta.helm.sh/release-name": "external-secrets", "meta.helm.sh/release-namespace": "production",
			}}}}
		}, "external-secrets CRDs", OK, "belongs to this stack's release"},
		{"no Prometheus Operator API", func(c *cluster, _ *Target) { c.monitoringKinds = nil }, "Prometheus Operator API", Missing, "does not serve ServiceMonitor, Probe, PrometheusRule"},
		{"an operator too old for Probes", func(c *cluster, _ *Target) { c.monitoringKinds = []string{"ServiceMonitor", "PrometheusRule"} }, "Prometheus Operator API", Missing, "does not serve Probe"},
		{"the operator's API is there but unused", func(_ *cluster, tgt *Target) { tgt.PrometheusOperator, tgt.Monitors = false, nil }, "Prometheus Operator API", Warn, "observability.prometheusOperator is false"},
		{"no operator and none wanted", func(c *cluster, tgt *Target) {
			c.monitoringKinds, tgt.PrometheusOperator, tgt.Monitors = nil, false, nil
		}, "Prometheus Operator API", OK, "not needed"},
		{"Prometheus selects another release label", func(c *cluster, _ *Target) {
			c.prometheuses[0].Spec.ServiceMonitorSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"release": "kube-prometheus-stack"}}
		}, "Prometheus selects us", Warn, "monitoring/prometheus misses ServiceMonitor vault"},
		{"a nil rule selector picks up no rules", func(c *cluster, _ *Target) { c.prometheuses[0].Spec.RuleSelector = nil }, "Prometheus selects us", Warn, "misses PrometheusRule vault"},
		{"a nil namespace selector looks only in Prometheus's namespace", func(c *cluster, _ *Target) {
			c.prometheuses[0].Spec.ProbeNamespaceSelector = nil
		}, "Prometheus selects us", Warn, "misses Probe vault-tls"},
		{"a namespace selector on a label the namespace has", func(c *cluster, _ *Target) {
			c.prometheuses[0].Spec.ServiceMonitorNamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}
		}, "Prometheus selects us", OK, "monitoring/prometheus picks up every monitor"},
		{"a namespace selector on the namespace's name", func(c *cluster, _ *Target) {
			c.prometheuses[0].Spec.RuleNamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "production"}}
		}, "Prometheus selects us", OK, "picks up every monitor"},
		{"no Prometheus at all", func(c *cluster, _ *Target) { c.prometheuses = nil }, "Prometheus selects us", Warn, "no Prometheus object"},
		{"no blackbox exporter", func(c *cluster, _ *Target) { c.services = nil }, "blackbox exporter", Warn, "no Service monitoring/prometheus-blackbox-exporter"},
		{"the exporter on another port", func(c *cluster, _ *Target) { c.services[0].Spec.Ports[0].Port = 9116 }, "blackbox exporter", Warn, "has no port 9115"},
		{"no Grafana sidecar", func(c *cluster, _ *Target) { c.deployments = nil }, "Grafana dashboard sidecar", Warn, "no Grafana sidecar loads ConfigMaps labelled grafana_dashboard=1 in namespace monitoring"},
		{"a sidecar watching another label value", func(c *cluster, _ *Target) {
			c.deployments[0].Spec.Template.Spec.Containers[1].Env[1].Value = "2"
		}, "Grafana dashboard sidecar", Warn, "no Grafana sidecar"},
		{"a sidecar in another namespace watching it", func(c *cluster, _ *Target) {
			c.deployments[0].Namespace = "grafana"
			c.deployments[0].Spec.Template.Spec.Containers[1].Env = append(c.deployments[0].Spec.Template.Spec.Containers[1].Env, corev1.EnvVar{Name: "NAMESPACE", Value: "grafana,monitoring"})
		}, "Grafana dashboard sidecar", OK, "Deployment grafana/grafana"},
		{"a sidecar in another namespace not watching it", func(c *cluster, _ *Target) { c.deployments[0].Namespace = "grafana" }, "Grafana dashboard sidecar", Warn, "no Grafana sidecar"},
		{"a StatefulSet Grafana watching ALL", func(c *cluster, _ *Target) {
			sts := appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "grafana", Namespace: "grafana"}}
			sts.Spec.Template.Spec = c.deployments[0].Spec.Template.Spec
			sts.Spec.Template.Spec.Containers[1].Env = append(sts.Spec.Template.Spec.Containers[1].Env, corev1.EnvVar{Name: "NAMESPACE", Value: "ALL"})
			c.deployments, c.statefulSets = nil, []appsv1.StatefulSet{sts}
		}, "Grafana dashboard sidecar", OK, "StatefulSet grafana/grafana"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, tgt := healthy(t), target()
			tc.breakIt(c, &tgt)
			r := result(t, c, tgt, tc.check)
			if r.Status != tc.status || !strings.Contains(r.Detail, tc.says) {
				t.Errorf("%s: got %s %q, want %s saying %q", tc.check, r.Status, r.Detail, tc.status, tc.says)
			}
			if Failed([]Result{r}) != (tc.status == Missing) {
				t.Errorf("Failed disagrees with status %s", r.Status)
			}
		})
	}
}

// Without a context or an API server, the cluster checks do not run.
func TestNoClusterSkipsTheClusterChecks(t *testing.T) {
	for name, breakIt := range map[string]func(*cluster){
		"no context":  func(c *cluster) { c.contexts = nil },
		"unreachable": func(c *cluster) { c.unreachable = true },
	} {
		t.Run(name, func(t *testing.T) {
			c := healthy(t)
			breakIt(c)
			results := Run(context.Background(), c.kubectl, target())
			last := results[len(results)-1]
			if last.Check != "cluster checks" || last.Status != Skipped {
				t.Errorf("last result %+v, want the cluster checks skipped", last)
			}
			if !Failed(results) {
				t.Error("Failed is false without a cluster")
			}
		})
	}
}

// The checks use the context the stack names, not the current one.
func TestChecksUseTheStacksContext(t *testing.T) {
	c := healthy(t)
	Run(context.Background(), c.kubectl, target())
	for _, call := range c.calls {
		if call[0] == "--context" && call[1] != "production" {
			t.Errorf("kubectl %v: context %s, want production (the current context is %s)", call, call[1], c.current)
		}
	}
}

func TestSkipOverrulesAHeuristic(t *testing.T) {
	c := healthy(t)
	c.daemonSets = c.daemonSets[1:]
	results := Skip(Run(context.Background(), c.kubectl, target()), []string{"network-policy"})
	if Failed(results) {
		t.Errorf("still failed after --skip network-policy: %+v", results)
	}
	i := slices.IndexFunc(results, func(r Result) bool { return r.Check == "network policy" })
	if results[i].Status != Skipped || !strings.Contains(results[i].Detail, "no known network policy engine") {
		t.Errorf("network policy: %+v, want skipped with what it saw", results[i])
	}
	if got := Skip([]Result{{"nodes", OK, "3"}}, []string{"nodes"}); got[0].Status != OK {
		t.Errorf("Skip turned an ok result into %s", got[0].Status)
	}
}
