package preflight

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/version"
)

// apiServer asks the API server for its version.
func (c *checker) apiServer() Result {
	const name = "API server"
	var v struct {
		ServerVersion *version.Info `json:"serverVersion"`
	}
	if err := c.get(&v, "version"); err != nil {
		return Result{name, Missing, fmt.Sprintf("no answer from the API server of context %s: %v", c.context, err)}
	}
	if v.ServerVersion == nil {
		return Result{name, Missing, fmt.Sprintf("kubectl reported no server version for context %s", c.context)}
	}
	return Result{name, OK, "Kubernetes " + v.ServerVersion.GitVersion}
}

// clusterAdmin asks whether the deployer may do anything anywhere: the
// program creates the namespace, and the charts cluster-scoped objects
// (CRDs, cluster roles and their bindings).
func (c *checker) clusterAdmin(Target) Result {
	const name = "cluster-admin"
	out, err := c.run("auth", "can-i", "*", "*", "--all-namespaces")
	switch strings.TrimSpace(string(out)) {
	case "yes":
		return Result{name, OK, "the deployer may do anything in every namespace"}
	case "no":
		return Result{name, Missing, "the deployer is not cluster-admin: on EKS, give its IAM principal an access entry with AmazonEKSClusterAdminPolicy, cluster scope (README, \"Deploying for real\")"}
	}
	return Result{name, Missing, fmt.Sprintf("`kubectl auth can-i '*' '*' --all-namespaces` did not answer yes or no: %v", err)}
}

// schedulable reports whether pods without tolerations (the voters set
// none) can be placed on node.
func schedulable(node corev1.Node) bool {
	if node.Spec.Unschedulable {
		return false
	}
	ready := slices.ContainsFunc(node.Status.Conditions, func(c corev1.NodeCondition) bool {
		return c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
	})
	tainted := slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	})
	return ready && !tainted
}

// nodes counts the nodes a voter can run on: the voters' anti-affinity is
// required per kubernetes.io/hostname, so each needs a node of its own.
func (c *checker) nodes(t Target) Result {
	const name = "nodes"
	var list corev1.NodeList
	if err := c.get(&list, "get", "nodes"); err != nil {
		return Result{name, Missing, fmt.Sprintf("cannot list nodes: %v", err)}
	}
	hosts := map[string]bool{}
	zones := map[string]bool{}
	var skipped []string
	for _, node := range list.Items {
		if !schedulable(node) {
			skipped = append(skipped, node.Name)
			continue
		}
		host := node.Labels[corev1.LabelHostname]
		if host == "" {
			host = node.Name
		}
		hosts[host] = true
		if zone := node.Labels[corev1.LabelTopologyZone]; zone != "" {
			zones[zone] = true
		}
	}
	seen := fmt.Sprintf("%d schedulable node(s) in %d zone(s)", len(hosts), len(zones))
	if len(skipped) > 0 {
		seen += fmt.Sprintf("; not schedulable (cordoned, not Ready or tainted): %s", strings.Join(skipped, ", "))
	}
	if len(hosts) < t.Voters {
		return Result{name, Missing, fmt.Sprintf("%s; vault.replicas is %d and the voters' required anti-affinity puts each on a node of its own, so a voter would stay Pending", seen, t.Voters)}
	}
	if len(zones) == 1 {
		return Result{name, Warn, seen + "; all in one zone, so losing that zone loses every voter"}
	}
	return Result{name, OK, seen}
}

// ebsCSIDriver is the EBS CSI driver's name, the provisioner of EBS storage
// classes; the in-tree provisioner's volumes are migrated to it.
const ebsCSIDriver = "ebs.csi.aws.com"

// storageClass finds the class the voters' claims will use and the driver
// that provisions it.
func (c *checker) storageClass(t Target) Result {
	const name = "storage class"
	var class storagev1.StorageClass
	if t.StorageClass != "" {
		found, err := c.getOptional(&class, "get", "storageclass", t.StorageClass)
		if err != nil {
			return Result{name, Missing, fmt.Sprintf("cannot read storage class %s: %v", t.StorageClass, err)}
		}
		if !found {
			return Result{name, Missing, fmt.Sprintf("vault.storageClass is %q, which the cluster does not have: the voters' claims would stay Pending; create it (EBS CSI, gp3) or name an existing class", t.StorageClass)}
		}
	} else {
		var list storagev1.StorageClassList
		if err := c.get(&list, "get", "storageclasses"); err != nil {
			return Result{name, Missing, fmt.Sprintf("cannot list storage classes: %v", err)}
		}
		i := slices.IndexFunc(list.Items, func(s storagev1.StorageClass) bool {
			return s.Annotations["storageclass.kubernetes.io/is-default-class"] == "true"
		})
		if i < 0 {
			return Result{name, Missing, "vault.storageClass is empty and the cluster has no default storage class (EKS clusters created since 1.30 have none): the voters' claims would stay Pending; set vault.storageClass"}
		}
		class = list.Items[i]
	}
	seen := fmt.Sprintf("%s (provisioner %s)", class.Name, class.Provisioner)
	if class.Provisioner == ebsCSIDriver || class.Provisioner == "kubernetes.io/aws-ebs" {
		var driver storagev1.CSIDriver
		found, err := c.getOptional(&driver, "get", "csidriver", ebsCSIDriver)
		if err != nil {
			return Result{name, Missing, fmt.Sprintf("%s; cannot read CSIDriver %s: %v", seen, ebsCSIDriver, err)}
		}
		if !found {
			return Result{name, Missing, seen + "; the EBS CSI driver is not installed (CSIDriver " + ebsCSIDriver + " is missing): install the aws-ebs-csi-driver add-on with its IAM role"}
		}
	}
	if class.VolumeBindingMode == nil || *class.VolumeBindingMode == storagev1.VolumeBindingImmediate {
		return Result{name, Warn, seen + "; binds volumes before pods are scheduled (Immediate): a voter can get a volume in a zone where no node is free for it; WaitForFirstConsumer avoids that"}
	}
	return Result{name, OK, seen}
}

// networkPolicy looks for an engine that enforces NetworkPolicy: without
// one, the namespace's default-deny policies are accepted and do nothing.
// The signs are heuristic (names of well-known DaemonSets, a flag, a
// ConfigMap key); they show the engine is configured, not that it works.
func (c *checker) networkPolicy(Target) Result {
	const name = "network policy"
	var list appsv1.DaemonSetList
	if err := c.get(&list, "get", "daemonsets", "--all-namespaces"); err != nil {
		return Result{name, Missing, fmt.Sprintf("cannot list DaemonSets: %v", err)}
	}
	var awsNode *appsv1.DaemonSet
	for i, ds := range list.Items {
		switch {
		case ds.Name == "calico-node":
			return Result{name, OK, fmt.Sprintf("Calico (DaemonSet %s/calico-node)", ds.Namespace)}
		case ds.Name == "cilium":
			return Result{name, OK, fmt.Sprintf("Cilium (DaemonSet %s/cilium)", ds.Namespace)}
		case ds.Name == "aws-node" && ds.Namespace == "kube-system":
			awsNode = &list.Items[i]
		}
	}
	if awsNode != nil {
		agent := slices.IndexFunc(awsNode.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "aws-eks-nodeagent" })
		if agent >= 0 && slices.Contains(awsNode.Spec.Template.Spec.Containers[agent].Args, "--enable-network-policy=true") {
			return Result{name, OK, "Amazon VPC CNI with its network policy agent on (aws-node's aws-eks-nodeagent runs with --enable-network-policy=true)"}
		}
		return Result{name, Missing, "Amazon VPC CNI without network policy enforcement (aws-node's aws-eks-nodeagent does not run with --enable-network-policy=true): the default-deny policies would do nothing; set enableNetworkPolicy: \"true\" in the vpc-cni add-on's configuration values, or install Calico"}
	}
	// EKS Auto Mode runs no aws-node DaemonSet; its policy controller is
	// switched on by this ConfigMap key.
	var cm corev1.ConfigMap
	found, err := c.getOptional(&cm, "get", "configmap", "amazon-vpc-cni", "--namespace", "kube-system")
	if err != nil {
		return Result{name, Missing, fmt.Sprintf("cannot read ConfigMap kube-system/amazon-vpc-cni: %v", err)}
	}
	if found && cm.Data["enable-network-policy-controller"] == "true" {
		return Result{name, OK, "EKS network policy controller on (kube-system/amazon-vpc-cni enable-network-policy-controller: \"true\", EKS Auto Mode)"}
	}
	return Result{name, Missing, "no known network policy engine (VPC CNI with its agent on, Calico, Cilium, or EKS Auto Mode's controller): the default-deny policies would do nothing; if another engine enforces NetworkPolicy here, skip this check (--skip network-policy)"}
}

// namespace reports what already runs in the platform's namespace: the
// program creates it, so on a first install it must not exist.
func (c *checker) namespace(t Target) Result {
	const name = "namespace"
	var ns corev1.Namespace
	found, err := c.getOptional(&ns, "get", "namespace", t.Namespace)
	if err != nil {
		return Result{name, Missing, fmt.Sprintf("cannot read namespace %s: %v", t.Namespace, err)}
	}
	if !found {
		return Result{name, OK, t.Namespace + " does not exist yet; the stack creates it"}
	}
	var pods corev1.PodList
	if err := c.get(&pods, "get", "pods", "--namespace", t.Namespace); err != nil {
		return Result{name, Missing, fmt.Sprintf("cannot list the pods of %s: %v", t.Namespace, err)}
	}
	names := make([]string, 0, len(pods.Items))
	for _, p := range pods.Items {
		names = append(names, p.Name)
	}
	return Result{name, Warn, fmt.Sprintf("%s exists with %d pod(s) (%s). Fine if this stack created it. Otherwise the first `pulumi up` fails to create it (AlreadyExists), and once the stack owns it, the restricted Pod Security level rejects new pods that do not meet it, the quota counts what runs there, the default-deny policies cut every other workload's traffic, and `pulumi destroy` deletes the namespace with everything in it", t.Namespace, len(names), list(names))}
}

// esoCRDs checks that the external-secrets chart can install its CRDs: it
// renders them as templates, and Helm refuses to adopt an existing object
// that another release (or no release) owns.
func (c *checker) esoCRDs(t Target) Result {
	const name = "external-secrets CRDs"
	const crd = "externalsecrets.external-secrets.io"
	var meta metav1.PartialObjectMetadata
	found, err := c.getOptional(&meta, "get", "customresourcedefinition", crd)
	if err != nil {
		return Result{name, Missing, fmt.Sprintf("cannot read CRD %s: %v", crd, err)}
	}
	if !found {
		return Result{name, OK, "not installed yet; the external-secrets chart installs them"}
	}
	release := meta.Annotations["meta.helm.sh/release-name"]
	releaseNS := meta.Annotations["meta.helm.sh/release-namespace"]
	if release == t.ESORelease && releaseNS == t.Namespace {
		return Result{name, OK, fmt.Sprintf("%s belongs to this stack's release %s/%s", crd, releaseNS, release)}
	}
	owner := "no Helm release"
	if release != "" {
		owner = fmt.Sprintf("release %s/%s", releaseNS, release)
	}
	return Result{name, Missing, fmt.Sprintf("%s exists and belongs to %s, not to %s/%s: the chart's install would fail (invalid ownership metadata); another External Secrets Operator runs in this cluster", crd, owner, t.Namespace, t.ESORelease)}
}

// monitoringGroupVersion is the Prometheus Operator's API.
const monitoringGroupVersion = "monitoring.coreos.com/v1"

// monitoringAPI checks that the kinds the stack creates are served when
// observability.prometheusOperator is on.
func (c *checker) monitoringAPI(t Target) Result {
	const name = "Prometheus Operator API"
	// --raw prints the API's discovery document as JSON (it takes no -o).
	var resources metav1.APIResourceList
	raw, err := c.run("get", "--raw", "/apis/"+monitoringGroupVersion)
	if err == nil {
		err = json.Unmarshal(raw, &resources)
	}
	served := map[string]bool{}
	if err == nil {
		for _, r := range resources.APIResources {
			served[r.Kind] = true
		}
	}
	if !t.PrometheusOperator {
		if len(served) > 0 {
			return Result{name, Warn, monitoringGroupVersion + " is served, but observability.prometheusOperator is false: the stack creates no monitors, alerts or dashboards"}
		}
		return Result{name, OK, "not needed (observability.prometheusOperator is false)"}
	}
	if err != nil && !notFound(err) {
		return Result{name, Missing, fmt.Sprintf("cannot read %s: %v", monitoringGroupVersion, err)}
	}
	var missing []string
	for _, kind := range kinds(t.Monitors) {
		if !served[kind] {
			missing = append(missing, kind)
		}
	}
	if len(missing) > 0 {
		return Result{name, Missing, fmt.Sprintf("%s does not serve %s: install the Prometheus Operator's CRDs (e.g. the kube-prometheus-stack chart) or set observability.prometheusOperator: false", monitoringGroupVersion, strings.Join(missing, ", "))}
	}
	return Result{name, OK, fmt.Sprintf("%s serves %s", monitoringGroupVersion, strings.Join(kinds(t.Monitors), ", "))}
}

// notFound reports whether kubectl said the resource does not exist.
func notFound(err error) bool {
	return strings.Contains(err.Error(), "NotFound") || strings.Contains(err.Error(), "the server could not find the requested resource")
}

// kinds lists the kinds of objs, each once, in order.
func kinds(objs []Object) []string {
	var out []string
	for _, o := range objs {
		if !slices.Contains(out, o.Kind) {
			out = append(out, o.Kind)
		}
	}
	return out
}

// prometheus is the part of a monitoring.coreos.com/v1 Prometheus the
// checks read: which objects, in which namespaces, it picks up.
type prometheus struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ServiceMonitorSelector          *metav1.LabelSelector `json:"serviceMonitorSelector"`
		ServiceMonitorNamespaceSelector *metav1.LabelSelector `json:"serviceMonitorNamespaceSelector"`
		ProbeSelector                   *metav1.LabelSelector `json:"probeSelector"`
		ProbeNamespaceSelector          *metav1.LabelSelector `json:"probeNamespaceSelector"`
		RuleSelector                    *metav1.LabelSelector `json:"ruleSelector"`
		RuleNamespaceSelector           *metav1.LabelSelector `json:"ruleNamespaceSelector"`
	} `json:"spec"`
}

// selects reports whether p picks up obj, whose namespace carries
// nsLabels. As the operator's API documents: a nil object selector matches
// nothing, an empty one everything; a nil namespace selector matches only
// the Prometheus's own namespace, an empty one every namespace.
func (p prometheus) selects(obj Object, nsLabels map[string]string) (bool, error) {
	var sel, nsSel *metav1.LabelSelector
	switch obj.Kind {
	case "ServiceMonitor":
		sel, nsSel = p.Spec.ServiceMonitorSelector, p.Spec.ServiceMonitorNamespaceSelector
	case "Probe":
		sel, nsSel = p.Spec.ProbeSelector, p.Spec.ProbeNamespaceSelector
	case "PrometheusRule":
		sel, nsSel = p.Spec.RuleSelector, p.Spec.RuleNamespaceSelector
	default:
		return false, fmt.Errorf("no selector for kind %s", obj.Kind)
	}
	if sel == nil {
		return false, nil
	}
	objects, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, err
	}
	if !objects.Matches(labels.Set(obj.Labels)) {
		return false, nil
	}
	if nsSel == nil {
		return obj.Namespace == p.Namespace, nil
	}
	namespaces, err := metav1.LabelSelectorAsSelector(nsSel)
	if err != nil {
		return false, err
	}
	return namespaces.Matches(labels.Set(nsLabels)), nil
}

// prometheusSelects finds a Prometheus that picks up every monitor and rule
// the stack creates, judged by the labels they and the namespace will have.
func (c *checker) prometheusSelects(t Target) Result {
	const name = "Prometheus selects us"
	if !t.PrometheusOperator || len(t.Monitors) == 0 {
		return Result{name, Skipped, "the stack creates no monitors"}
	}
	var list struct {
		Items []prometheus `json:"items"`
	}
	if err := c.get(&list, "get", "prometheuses.monitoring.coreos.com", "--all-namespaces"); err != nil {
		return Result{name, Warn, fmt.Sprintf("cannot list Prometheus objects: %v", err)}
	}
	nsLabels := map[string]string{corev1.LabelMetadataName: t.Namespace}
	for k, v := range t.NamespaceLabels {
		nsLabels[k] = v
	}
	var seen []string
	for _, p := range list.Items {
		var missed []string
		for _, obj := range t.Monitors {
			ok, err := p.selects(obj, nsLabels)
			if err != nil {
				return Result{name, Warn, fmt.Sprintf("Prometheus %s/%s: %v", p.Namespace, p.Name, err)}
			}
			if !ok {
				missed = append(missed, obj.Kind+" "+obj.Name)
			}
		}
		if len(missed) == 0 {
			return Result{name, OK, fmt.Sprintf("Prometheus %s/%s picks up every monitor and rule of the stack (labels %s)", p.Namespace, p.Name, labels.Set(t.Monitors[0].Labels))}
		}
		seen = append(seen, fmt.Sprintf("%s/%s misses %s", p.Namespace, p.Name, strings.Join(missed, ", ")))
	}
	if len(seen) == 0 {
		return Result{name, Warn, "no Prometheus object in the cluster: nothing will scrape Vault or evaluate the alerts"}
	}
	return Result{name, Warn, fmt.Sprintf("no Prometheus picks up all of the stack's monitors and rules (labels %s, namespace %s): %s", labels.Set(t.Monitors[0].Labels), t.Namespace, strings.Join(seen, "; "))}
}

// blackboxExporter looks for the Service the Probe sends its probes to.
func (c *checker) blackboxExporter(t Target) Result {
	const name = "blackbox exporter"
	if t.Prober == nil {
		return Result{name, Skipped, "the stack creates no Probe"}
	}
	host, port, _ := strings.Cut(t.Prober.Address, ":")
	parts := strings.Split(host, ".")
	if len(parts) < 2 {
		return Result{name, Warn, fmt.Sprintf("the Probe's prober %s is not <service>.<namespace>...: not checked", t.Prober.Address)}
	}
	var svc corev1.Service
	found, err := c.getOptional(&svc, "get", "service", parts[0], "--namespace", parts[1])
	if err != nil {
		return Result{name, Warn, fmt.Sprintf("cannot read Service %s/%s: %v", parts[1], parts[0], err)}
	}
	if !found {
		return Result{name, Warn, fmt.Sprintf("no Service %s/%s (the Probe's prober %s): the certificate expiry probe would fail; install the prometheus-blackbox-exporter chart there with a %q module (docs/runbooks/tls-rotation.md)", parts[1], parts[0], t.Prober.Address, t.Prober.Module)}
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return fmt.Sprint(p.Port) == port }) {
		return Result{name, Warn, fmt.Sprintf("Service %s/%s has no port %s", parts[1], parts[0], port)}
	}
	return Result{name, OK, fmt.Sprintf("Service %s/%s port %s; its config must define the %q module (not checked)", parts[1], parts[0], port, t.Prober.Module)}
}

// grafanaSidecar looks for a Grafana dashboard sidecar that loads the
// stack's dashboard ConfigMaps: a container with the LABEL (and
// LABEL_VALUE) environment of the grafana chart's k8s-sidecar watching
// their namespace. Heuristic: it recognises that sidecar only.
func (c *checker) grafanaSidecar(t Target) Result {
	const name = "Grafana dashboard sidecar"
	if len(t.Dashboards) == 0 {
		return Result{name, Skipped, "the stack creates no dashboards"}
	}
	var deployments appsv1.DeploymentList
	if err := c.get(&deployments, "get", "deployments", "--all-namespaces"); err != nil {
		return Result{name, Warn, fmt.Sprintf("cannot list Deployments: %v", err)}
	}
	var statefulSets appsv1.StatefulSetList
	if err := c.get(&statefulSets, "get", "statefulsets", "--all-namespaces"); err != nil {
		return Result{name, Warn, fmt.Sprintf("cannot list StatefulSets: %v", err)}
	}
	type workload struct {
		ref  string
		ns   string
		spec corev1.PodSpec
	}
	var workloads []workload
	for _, d := range deployments.Items {
		workloads = append(workloads, workload{"Deployment " + d.Namespace + "/" + d.Name, d.Namespace, d.Spec.Template.Spec})
	}
	for _, s := range statefulSets.Items {
		workloads = append(workloads, workload{"StatefulSet " + s.Namespace + "/" + s.Name, s.Namespace, s.Spec.Template.Spec})
	}
	dash := t.Dashboards[0]
	for _, w := range workloads {
		for _, ctr := range w.spec.Containers {
			if sidecarLoads(ctr, w.ns, dash) {
				return Result{name, OK, fmt.Sprintf("container %s of %s loads ConfigMaps labelled like the dashboards in %s", ctr.Name, w.ref, dash.Namespace)}
			}
		}
	}
	return Result{name, Warn, fmt.Sprintf("no Grafana sidecar loads ConfigMaps labelled %s in namespace %s: the dashboards would not appear (grafana chart: sidecar.dashboards.enabled, label and searchNamespace)", labels.Set(dash.Labels), dash.Namespace)}
}

// sidecarLoads reports whether ctr, a k8s-sidecar in namespace ns, loads
// the ConfigMap obj: LABEL is one of its labels, LABEL_VALUE (when set)
// that label's value, and NAMESPACE (its own namespace when unset) is ALL
// or lists obj's namespace.
func sidecarLoads(ctr corev1.Container, ns string, obj Object) bool {
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = e.Value
	}
	label, ok := env["LABEL"]
	if !ok {
		return false
	}
	value, has := obj.Labels[label]
	if !has {
		return false
	}
	if want, set := env["LABEL_VALUE"]; set && want != value {
		return false
	}
	namespaces, set := env["NAMESPACE"]
	if !set || namespaces == "" {
		return obj.Namespace == ns
	}
	return namespaces == "ALL" || slices.Contains(strings.Split(namespaces, ","), obj.Namespace)
}
