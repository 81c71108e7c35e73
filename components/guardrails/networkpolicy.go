package guardrails

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Ports the vault chart hard-codes as container ports in
// templates/server-statefulset.yaml: the API and the cluster (Raft and
// request forwarding) port.
const (
	vaultAPIPort     = 8200
	vaultClusterPort = 8201
)

// KubeAPIServicePort is the port of the `kubernetes` Service, which the API
// server publishes on 443 whatever port its endpoints listen on.
const KubeAPIServicePort = 443

// Defaults for the ports of NetworkArgs left at zero.
const (
	// DefaultKubeAPIPort is the port of the API server's endpoints (EKS).
	DefaultKubeAPIPort = 443
	// DefaultVaultMetricsPort: Vault serves /v1/sys/metrics on its API port.
	DefaultVaultMetricsPort = vaultAPIPort
	// DefaultExternalSecretsMetricsPort is the ESO chart's metrics.listen.port
	// (also webhook.metrics.listen.port and certController.metrics.listen.port).
	DefaultExternalSecretsMetricsPort = 8080
	// DefaultExternalSecretsWebhookPort is the ESO chart's webhook.port.
	DefaultExternalSecretsWebhookPort = 10250
)

// awsAPIPort is where KMS, S3 and STS answer (HTTPS).
const awsAPIPort = 443

// NetworkArgs selects the platform's pods by their labels and says where
// they may connect. Everything else is denied by the default-deny policy.
//
// Pods reach the API server through the `kubernetes` Service. Where a
// dataplane matches egress is not the same everywhere: Calico on iptables
// sees it after the Service is translated, to the endpoints (KubeAPICIDRs on
// KubeAPIPort); the AWS VPC CNI's network policy agent sees it before, to
// the Service's ClusterIP on 443, and admits a ClusterIP only through an
// ipBlock that holds it (its workaround for Services covers only Services
// whose selector a rule's podSelector matches, and `kubernetes` has no
// selector). So every egress rule to the API names both: the endpoints and
// KubeAPIClusterIP. Ingress from the API server (the ESO webhook) comes
// from the endpoints' addresses on either dataplane.
type NetworkArgs struct {
	// VaultPodLabels select the Vault server pods (required).
	VaultPodLabels map[string]string
	// ExternalSecretsPodLabels select every ESO pod: controller, webhook and
	// cert-controller (required). They reach the Kubernetes API and serve
	// metrics.
	ExternalSecretsPodLabels map[string]string
	// ExternalSecretsControllerPodLabels select the ESO controller pods, the
	// only ESO pods that call Vault (required).
	ExternalSecretsControllerPodLabels map[string]string
	// ExternalSecretsWebhookPodLabels select the ESO webhook pods, which the
	// API server calls for admission (required).
	ExternalSecretsWebhookPodLabels map[string]string
	// SnapshotPodLabels select the pods of the Raft snapshot CronJob; empty
	// means there is no snapshot job and no policy for it.
	SnapshotPodLabels map[string]string
	// BootstrapPodLabels select the pods of the VaultBootstrap Job, which
	// call every voter and AWS (KMS, S3); empty means there is no bootstrap.
	BootstrapPodLabels map[string]string
	// RolloutPodLabels select the pods of the VaultRollout Job, which call
	// every voter and the Kubernetes API (to read and delete the voters'
	// pods and run the snapshot Job) and nothing else; empty means there is
	// no rollout and no policy for it.
	RolloutPodLabels map[string]string
	// ReconcilePodLabels select the pods of the reconcile CronJob, which
	// call the active voter only; empty means there is none.
	ReconcilePodLabels map[string]string
	// RestoreDrillPodLabels select the pods of the restore drill, which
	// reach S3, KMS and STS and nothing else; empty means there is no drill
	// and no policy for it.
	RestoreDrillPodLabels map[string]string
	// Databases are the databases Vault's database engine connects to:
	// Vault may reach each, and only on its port. Default: none.
	Databases []DatabaseFlow
	// KubeAPICIDRs are the API server endpoint addresses (required).
	KubeAPICIDRs []string
	// KubeAPIPort is the API server endpoints' port; 0 means 443.
	KubeAPIPort int
	// KubeAPIClusterIP is the `kubernetes` Service's ClusterIP, one IPv4
	// or IPv6 address (required).
	KubeAPIClusterIP string
	// MonitoringNamespace may scrape Vault and ESO metrics; "" allows none.
	MonitoringNamespace string
	// VaultMetricsPort is where Vault serves metrics; 0 means 8200.
	VaultMetricsPort int
	// ExternalSecretsMetricsPort is where ESO pods serve metrics; 0 means 8080.
	ExternalSecretsMetricsPort int
	// ExternalSecretsWebhookPort is the ESO webhook's container port; 0
	// means 10250.
	ExternalSecretsWebhookPort int
}

// DatabaseFlow is where one database Vault manages listens: its pods in
// the namespace (PodLabels) or its addresses outside the cluster (CIDRs,
// such as RDS), exactly one of them, and its port.
type DatabaseFlow struct {
	// Name names the policies.
	Name string
	// PodLabels select the database's pods in the namespace.
	PodLabels map[string]string
	// CIDRs are its addresses outside the cluster.
	CIDRs []string
	// Port is the port it listens on.
	Port int
}

// databasePolicies let Vault reach each database on its port: both ends'
// policies for pods of the namespace, Vault's egress for addresses outside.
func databasePolicies(name string, vault map[string]string, dbs []DatabaseFlow) ([]policy, error) {
	var ps []policy
	for _, d := range dbs {
		port := tcp(d.Port)
		if err := checkPort(port); err != nil {
			return nil, fmt.Errorf("guardrails: Network.Databases %s: %w", d.Name, err)
		}
		pname := name + "-vault-to-database-" + d.Name
		switch {
		case len(d.PodLabels) > 0 && len(d.CIDRs) == 0:
			ps = append(ps, flow(pname, vault, d.PodLabels, port)...)
		case len(d.CIDRs) > 0 && len(d.PodLabels) == 0:
			if err := checkCIDRs("Databases "+d.Name+" CIDRs", d.CIDRs); err != nil {
				return nil, err
			}
			ps = append(ps, egressPolicy(pname+"-egress", vault, cidrPeers(d.CIDRs), port))
		default:
			return nil, fmt.Errorf("guardrails: Network.Databases %s: give PodLabels or CIDRs, exactly one", d.Name)
		}
	}
	return ps, nil
}

// policy is one NetworkPolicy to create, in plain Go values.
type policy struct {
	name    string
	pods    map[string]string // selected pods; empty selects every pod
	types   []string
	ingress []rule
	egress  []rule
}

type rule struct {
	peers []peer
	ports []Port
}

// peer is exactly one of: pods of this namespace, a whole namespace, a CIDR.
type peer struct {
	pods      map[string]string
	namespace string
	cidr      string
}

var bothTypes = []string{"Ingress", "Egress"}

func egressPolicy(name string, pods map[string]string, peers []peer, ports ...Port) policy {
	return policy{name: name, pods: pods, types: []string{"Egress"}, egress: []rule{{peers, ports}}}
}

func ingressPolicy(name string, pods map[string]string, peers []peer, ports ...Port) policy {
	return policy{name: name, pods: pods, types: []string{"Ingress"}, ingress: []rule{{peers, ports}}}
}

// flow allows from -> to inside the namespace: both ends must allow it.
func flow(name string, from, to map[string]string, ports ...Port) []policy {
	return []policy{
		egressPolicy(name+"-egress", from, []peer{{pods: to}}, ports...),
		ingressPolicy(name+"-ingress", to, []peer{{pods: from}}, ports...),
	}
}

func egressRulesPolicy(name string, pods map[string]string, rules ...rule) policy {
	return policy{name: name, pods: pods, types: []string{"Egress"}, egress: rules}
}

// hostCIDR is the prefix of exactly one address: /32 or /128.
func hostCIDR(ip netip.Addr) string {
	return netip.PrefixFrom(ip, ip.BitLen()).String()
}

func cidrPeers(cidrs []string) []peer {
	out := make([]peer, 0, len(cidrs))
	for _, c := range cidrs {
		out = append(out, peer{cidr: c})
	}
	return out
}

func tcp(port int) Port { return Port{Port: port, Protocol: "TCP"} }

// networkPolicies plans the default deny and every allow, named after the
// component name so that two instances never collide.
func networkPolicies(name string, n NetworkArgs, c Config) ([]policy, error) {
	for _, l := range []struct {
		field  string
		labels map[string]string
	}{
		{"VaultPodLabels", n.VaultPodLabels},
		{"ExternalSecretsPodLabels", n.ExternalSecretsPodLabels},
		{"ExternalSecretsControllerPodLabels", n.ExternalSecretsControllerPodLabels},
		{"ExternalSecretsWebhookPodLabels", n.ExternalSecretsWebhookPodLabels},
	} {
		// An empty selector would select every pod of the namespace.
		if len(l.labels) == 0 {
			return nil, fmt.Errorf("guardrails: Network.%s is required", l.field)
		}
	}
	if len(n.KubeAPICIDRs) == 0 {
		return nil, errors.New("guardrails: Network.KubeAPICIDRs is required")
	}
	if err := checkCIDRs("KubeAPICIDRs", n.KubeAPICIDRs); err != nil {
		return nil, err
	}
	clusterIP, err := netip.ParseAddr(n.KubeAPIClusterIP)
	if err != nil || clusterIP.Zone() != "" {
		return nil, fmt.Errorf("guardrails: Network.KubeAPIClusterIP %q is not one IP address: the `kubernetes` Service's ClusterIP is required", n.KubeAPIClusterIP)
	}
	kubeAPI := tcp(orDefault(n.KubeAPIPort, DefaultKubeAPIPort))
	vaultMetrics := tcp(orDefault(n.VaultMetricsPort, DefaultVaultMetricsPort))
	esoMetrics := tcp(orDefault(n.ExternalSecretsMetricsPort, DefaultExternalSecretsMetricsPort))
	webhook := tcp(orDefault(n.ExternalSecretsWebhookPort, DefaultExternalSecretsWebhookPort))
	for _, p := range []Port{kubeAPI, vaultMetrics, esoMetrics, webhook} {
		if err := checkPort(p); err != nil {
			return nil, fmt.Errorf("guardrails: Network: %w", err)
		}
	}
	vault, eso := n.VaultPodLabels, n.ExternalSecretsPodLabels
	// Egress to the API server: its endpoints, and the Service's ClusterIP
	// for dataplanes that match before translation (see NetworkArgs).
	toKubeAPI := func(policyName string, pods map[string]string) policy {
		return egressRulesPolicy(policyName, pods,
			rule{cidrPeers(n.KubeAPICIDRs), []Port{kubeAPI}},
			rule{[]peer{{cidr: hostCIDR(clusterIP)}}, []Port{tcp(KubeAPIServicePort)}})
	}

	ps := []policy{
		{name: name + "-default-deny", types: bothTypes},
		egressPolicy(name+"-dns-egress", nil, []peer{{namespace: "kube-system"}},
			Port{Port: 53, Protocol: "UDP"}, Port{Port: 53, Protocol: "TCP"}),
		// Raft replication, request forwarding (8201) and joins through
		// the API address (8200) between Vault servers.
		{
			name: name + "-vault-cluster", pods: vault, types: bothTypes,
			ingress: []rule{{[]peer{{pods: vault}}, []Port{tcp(vaultAPIPort), tcp(vaultClusterPort)}}},
			egress:  []rule{{[]peer{{pods: vault}}, []Port{tcp(vaultAPIPort), tcp(vaultClusterPort)}}},
		},
	}
	ps = append(ps, flow(name+"-eso-to-vault", n.ExternalSecretsControllerPodLabels, vault, tcp(vaultAPIPort))...)
	if len(n.SnapshotPodLabels) > 0 {
		ps = append(ps, flow(name+"-snapshot-to-vault", n.SnapshotPodLabels, vault, tcp(vaultAPIPort))...)
	}
	if len(n.BootstrapPodLabels) > 0 {
		ps = append(ps, flow(name+"-bootstrap-to-vault", n.BootstrapPodLabels, vault, tcp(vaultAPIPort))...)
	}
	if len(n.RolloutPodLabels) > 0 {
		ps = append(ps, flow(name+"-rollout-to-vault", n.RolloutPodLabels, vault, tcp(vaultAPIPort))...)
		ps = append(ps, toKubeAPI(name+"-rollout-kube-api-egress", n.RolloutPodLabels))
	}
	if len(n.ReconcilePodLabels) > 0 {
		ps = append(ps, flow(name+"-reconcile-to-vault", n.ReconcilePodLabels, vault, tcp(vaultAPIPort))...)
	}
	ps = append(ps,
		// Vault: Kubernetes auth (TokenReview) and service registration.
		toKubeAPI(name+"-vault-kube-api-egress", vault),
		toKubeAPI(name+"-eso-kube-api-egress", eso),
		// The API server calls the admission webhook; under default deny
		// every ExternalSecret write would fail without this.
		ingressPolicy(name+"-kube-api-to-eso-webhook-ingress", n.ExternalSecretsWebhookPodLabels, cidrPeers(n.KubeAPICIDRs), webhook),
	)
	dbs, err := databasePolicies(name, vault, n.Databases)
	if err != nil {
		return nil, err
	}
	ps = append(ps, dbs...)
	if len(c.AWSCIDRs) > 0 {
		ps = append(ps, egressPolicy(name+"-vault-aws-egress", vault, cidrPeers(c.AWSCIDRs), tcp(awsAPIPort)))
		if len(n.SnapshotPodLabels) > 0 {
			ps = append(ps, egressPolicy(name+"-snapshot-aws-egress", n.SnapshotPodLabels, cidrPeers(c.AWSCIDRs), tcp(awsAPIPort)))
		}
		if len(n.BootstrapPodLabels) > 0 {
			ps = append(ps, egressPolicy(name+"-bootstrap-aws-egress", n.BootstrapPodLabels, cidrPeers(c.AWSCIDRs), tcp(awsAPIPort)))
		}
		// The drill: S3 (the download), KMS and STS (its throwaway Vault's
		// seal). No flow to Vault or the API server: it talks to its own
		// Vault on loopback.
		if len(n.RestoreDrillPodLabels) > 0 {
			ps = append(ps, egressPolicy(name+"-restore-drill-aws-egress", n.RestoreDrillPodLabels, cidrPeers(c.AWSCIDRs), tcp(awsAPIPort)))
		}
	}
	if n.MonitoringNamespace != "" {
		mon := []peer{{namespace: n.MonitoringNamespace}}
		ps = append(ps,
			ingressPolicy(name+"-monitoring-vault-metrics-ingress", vault, mon, vaultMetrics),
			ingressPolicy(name+"-monitoring-eso-metrics-ingress", eso, mon, esoMetrics),
		)
	}
	for _, a := range c.ExtraAllows {
		ps = append(ps, flow(name+"-"+a.Name, a.From, a.To, withProtocols(a.Ports)...)...)
	}

	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.name] {
			return nil, fmt.Errorf("guardrails: two network policies would be named %q; rename the extra allow", p.name)
		}
		seen[p.name] = true
		if errs := validation.IsDNS1123Subdomain(p.name); len(errs) > 0 {
			return nil, fmt.Errorf("guardrails: network policy name %q is not valid: %s", p.name, strings.Join(errs, "; "))
		}
	}
	return ps, nil
}

// withProtocols are the ports with their default protocol, TCP, filled in.
func withProtocols(ports []Port) []Port {
	out := make([]Port, 0, len(ports))
	for _, p := range ports {
		if p.Protocol == "" {
			p.Protocol = "TCP"
		}
		out = append(out, p)
	}
	return out
}

func checkPort(p Port) error {
	if p.Port < 1 || p.Port > 65535 {
		return fmt.Errorf("port %d is not between 1 and 65535", p.Port)
	}
	switch p.Protocol {
	case "TCP", "UDP", "SCTP":
		return nil
	}
	return fmt.Errorf("protocol %q of port %d is not TCP, UDP or SCTP", p.Protocol, p.Port)
}

func checkCIDRs(field string, cidrs []string) error {
	for _, c := range cidrs {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return fmt.Errorf("guardrails: Network.%s: %q is not a CIDR: %w", field, c, err)
		}
	}
	return nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// newNetworkPolicy creates p in the namespace; its Pulumi name is its
// metadata.name.
func newNetworkPolicy(ctx *pulumi.Context, p policy, namespace pulumi.StringOutput, opts ...pulumi.ResourceOption) (*networkingv1.NetworkPolicy, error) {
	spec := &networkingv1.NetworkPolicySpecArgs{
		PodSelector: selector(p.pods),
		PolicyTypes: pulumi.ToStringArray(p.types),
	}
	var ingress networkingv1.NetworkPolicyIngressRuleArray
	for _, r := range p.ingress {
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRuleArgs{From: peersArgs(r.peers), Ports: portsArgs(r.ports)})
	}
	var egress networkingv1.NetworkPolicyEgressRuleArray
	for _, r := range p.egress {
		egress = append(egress, networkingv1.NetworkPolicyEgressRuleArgs{To: peersArgs(r.peers), Ports: portsArgs(r.ports)})
	}
	// Left nil when empty: the default deny must carry no rules at all.
	if ingress != nil {
		spec.Ingress = ingress
	}
	if egress != nil {
		spec.Egress = egress
	}
	np, err := networkingv1.NewNetworkPolicy(ctx, p.name, &networkingv1.NetworkPolicyArgs{
		Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(p.name), Namespace: namespace},
		Spec:     spec,
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating network policy %s: %w", p.name, err)
	}
	return np, nil
}

// selector matches the labels; no labels give the empty selector, which
// selects every pod.
func selector(labels map[string]string) *metav1.LabelSelectorArgs {
	if len(labels) == 0 {
		return &metav1.LabelSelectorArgs{}
	}
	return &metav1.LabelSelectorArgs{MatchLabels: pulumi.ToStringMap(labels)}
}

func peersArgs(peers []peer) networkingv1.NetworkPolicyPeerArray {
	out := make(networkingv1.NetworkPolicyPeerArray, 0, len(peers))
	for _, p := range peers {
		switch {
		case p.cidr != "":
			out = append(out, networkingv1.NetworkPolicyPeerArgs{IpBlock: &networkingv1.IPBlockArgs{Cidr: pulumi.String(p.cidr)}})
		case p.namespace != "":
			// The API server labels every namespace with its name.
			out = append(out, networkingv1.NetworkPolicyPeerArgs{NamespaceSelector: selector(map[string]string{
				"kubernetes.io/metadata.name": p.namespace,
			})})
		default:
			out = append(out, networkingv1.NetworkPolicyPeerArgs{PodSelector: selector(p.pods)})
		}
	}
	return out
}

func portsArgs(ports []Port) networkingv1.NetworkPolicyPortArray {
	out := make(networkingv1.NetworkPolicyPortArray, 0, len(ports))
	for _, p := range ports {
		out = append(out, networkingv1.NetworkPolicyPortArgs{Port: pulumi.Int(p.Port), Protocol: pulumi.String(p.Protocol)})
	}
	return out
}
