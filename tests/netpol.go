package tests

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
)

// A flow evaluator over k8s.io/api NetworkPolicies: it says whether a
// connection gets through the policies a program registered, under the
// NetworkPolicy API's rules, as seen by two kinds of dataplane.

// Dataplane is where a network policy engine sees a connection to a
// Service's ClusterIP.
type Dataplane string

const (
	// PostDNAT engines (kube-proxy's iptables with Calico, Cilium, ...)
	// match egress after the Service is translated: the destination is the
	// backend's IP and port.
	PostDNAT Dataplane = "post-DNAT"
	// PreDNAT is the AWS VPC CNI's network policy agent: its eBPF probes sit
	// on the pod's veth and see egress before the Service is translated, so
	// the destination is the ClusterIP and the Service's port. Its
	// controller admits a ClusterIP only through an ipBlock that contains
	// it, or through a pod or namespace peer whose podSelector matches the
	// Service's selector (aws/amazon-network-policy-controller-k8s,
	// pkg/resolvers/endpoints.go, getMatchingServiceClusterIPs); a Service
	// without a selector, such as `kubernetes`, is reached only by ipBlock.
	// Ingress is seen on the backend's veth, after translation, as with
	// PostDNAT.
	PreDNAT Dataplane = "pre-DNAT (AWS VPC CNI)"
)

// Endpoint is one end of a connection: a pod (Namespace set) or an address
// outside the pod network (Namespace empty).
type Endpoint struct {
	// Name names it in messages.
	Name string
	// Namespace is the pod's namespace; "" for an address outside the
	// cluster's pods (the API server's ENIs, a VPC endpoint, the internet).
	Namespace string
	// Labels are the pod's labels.
	Labels map[string]string
	// IP is its address; ipBlock peers match it, whether it is a pod or
	// not (the VPC CNI gives pods VPC addresses, which ipBlocks do match).
	IP string
	// NamedPorts are the pod's container ports by name, for policies and
	// Services that name ports.
	NamedPorts map[string]int32
}

// Flow is a connection from a client to a backend.
type Flow struct {
	From, To Endpoint
	// Port and Protocol are the backend's (after translation).
	Port     int32
	Protocol corev1.Protocol
	// Via is the Service the client dials, if any; nil for a direct
	// connection (a pod IP, a headless Service's pod, an outside address).
	Via *corev1.Service
}

func (f Flow) String() string {
	via := ""
	if f.Via != nil {
		via = " via Service " + f.Via.Namespace + "/" + f.Via.Name
	}
	return fmt.Sprintf("%s -> %s:%d/%s%s", f.From.Name, f.To.Name, f.Port, f.Protocol, via)
}

// Network is the NetworkPolicies of a cluster, and the labels of its
// namespaces.
type Network struct {
	Policies []networkingv1.NetworkPolicy
	// NamespaceLabels are labels of namespaces beside
	// kubernetes.io/metadata.name, which every namespace carries.
	NamespaceLabels map[string]map[string]string
}

// NetworkPolicies decodes every NetworkPolicy the program registered.
func NetworkPolicies(t testing.TB, resources []recorder.Resource) []networkingv1.NetworkPolicy {
	t.Helper()
	var out []networkingv1.NetworkPolicy
	for _, r := range resources {
		if r.Type != "kubernetes:networking.k8s.io/v1:NetworkPolicy" {
			continue
		}
		var np networkingv1.NetworkPolicy
		Decode(t, r.Inputs, &np)
		out = append(out, np)
	}
	return out
}

// Allowed says whether the flow gets through under the dataplane: nil when
// both its egress (on the client) and its ingress (on the backend) are
// allowed, otherwise an error that names the side that denies it.
func (n Network) Allowed(f Flow, d Dataplane) error {
	if f.Via != nil && (f.Via.Spec.ClusterIP == "" || f.Via.Spec.ClusterIP == corev1.ClusterIPNone) {
		return fmt.Errorf("the Service %s/%s is headless: its clients dial the pods, so the flow has no Via", f.Via.Namespace, f.Via.Name)
	}
	if err := n.egress(f, d); err != nil {
		return err
	}
	return n.ingress(f)
}

// target is where an egress rule sees the connection go.
type target struct {
	ip    string
	port  int32
	proto corev1.Protocol
	// svc is the Service whose ClusterIP ip is, under PreDNAT.
	svc *corev1.Service
}

func (n Network) egress(f Flow, d Dataplane) error {
	dst := target{ip: f.To.IP, port: f.Port, proto: f.Protocol}
	if f.Via != nil && d == PreDNAT {
		port, err := servicePortFor(f.Via, f.Port, f.Protocol, f.To)
		if err != nil {
			return err
		}
		dst = target{ip: f.Via.Spec.ClusterIP, port: port, proto: f.Protocol, svc: f.Via}
	}
	isolating, err := n.isolating(f.From, networkingv1.PolicyTypeEgress)
	if err != nil || len(isolating) == 0 {
		return err
	}
	for _, np := range isolating {
		for _, r := range np.Spec.Egress {
			ok, err := n.egressRuleAdmits(np.Namespace, r, f.To, dst)
			if err != nil {
				return fmt.Errorf("policy %s: %w", np.Name, err)
			}
			if ok {
				return nil
			}
		}
	}
	return fmt.Errorf("egress denied: %s reaches %s:%d/%s, which no egress rule of %s admits", f.From.Name, dst.ip, dst.port, dst.proto, names(isolating))
}

func (n Network) ingress(f Flow) error {
	isolating, err := n.isolating(f.To, networkingv1.PolicyTypeIngress)
	if err != nil || len(isolating) == 0 {
		return err
	}
	for _, np := range isolating {
		for _, r := range np.Spec.Ingress {
			portOK, err := portsAdmit(r.Ports, f.Port, f.Protocol, f.To)
			if err != nil {
				return fmt.Errorf("policy %s: %w", np.Name, err)
			}
			if !portOK {
				continue
			}
			ok, err := n.peersAdmit(np.Namespace, r.From, f.From)
			if err != nil {
				return fmt.Errorf("policy %s: %w", np.Name, err)
			}
			if ok {
				return nil
			}
		}
	}
	return fmt.Errorf("ingress denied: %s from %s (%s) on %d/%s, which no ingress rule of %s admits", f.To.Name, f.From.Name, f.From.IP, f.Port, f.Protocol, names(isolating))
}

// isolating are the policies of the direction that select the pod; none
// means the pod is not isolated in that direction (or is not a pod).
func (n Network) isolating(e Endpoint, dir networkingv1.PolicyType) ([]networkingv1.NetworkPolicy, error) {
	if e.Namespace == "" {
		return nil, nil
	}
	var out []networkingv1.NetworkPolicy
	for _, np := range n.Policies {
		if np.Namespace != e.Namespace || !hasPolicyType(np, dir) {
			continue
		}
		ok, err := selects(&np.Spec.PodSelector, e.Labels)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", np.Name, err)
		}
		if ok {
			out = append(out, np)
		}
	}
	return out, nil
}

// hasPolicyType applies the API's default: a policy without policyTypes
// is an Ingress policy, and an Egress one too if it has egress rules.
func hasPolicyType(np networkingv1.NetworkPolicy, dir networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return dir == networkingv1.PolicyTypeIngress || len(np.Spec.Egress) > 0
	}
	for _, pt := range np.Spec.PolicyTypes {
		if pt == dir {
			return true
		}
	}
	return false
}

func (n Network) egressRuleAdmits(policyNS string, r networkingv1.NetworkPolicyEgressRule, to Endpoint, dst target) (bool, error) {
	if dst.svc == nil {
		portOK, err := portsAdmit(r.Ports, dst.port, dst.proto, to)
		if err != nil || !portOK {
			return false, err
		}
		return n.peersAdmit(policyNS, r.To, to)
	}
	// Pre-DNAT, to a ClusterIP. No peers: every destination, on the
	// rule's numeric ports (the agent cannot resolve named ones).
	if len(r.To) == 0 {
		return cidrPortsAdmit(r.Ports, dst), nil
	}
	for _, peer := range r.To {
		if peer.IPBlock != nil {
			in, err := inIPBlock(peer.IPBlock, dst.ip)
			if err != nil {
				return false, err
			}
			if in && cidrPortsAdmit(r.Ports, dst) {
				return true, nil
			}
			continue
		}
		ok, err := n.serviceWorkaroundAdmits(policyNS, peer, r.Ports, to, dst)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// cidrPortsAdmit are the ports of an ipBlock (or peerless) rule as the VPC
// CNI agent keeps them: numeric ones only.
func cidrPortsAdmit(ports []networkingv1.NetworkPolicyPort, dst target) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if protocolOf(p) != dst.proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		if p.Port.Type == intstr.Int && inRange(dst.port, p.Port.IntVal, p.EndPort) {
			return true
		}
	}
	return false
}

// serviceWorkaroundAdmits is the agent's workaround for ClusterIPs: a pod or
// namespace peer admits the ClusterIP of a Service, not headless, in one of
// the peer's namespaces whose selector (as a label set) the peer's
// podSelector matches, on the Service ports that target the rule's ports.
func (n Network) serviceWorkaroundAdmits(policyNS string, peer networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort, to Endpoint, dst target) (bool, error) {
	svc := dst.svc
	nsOK, err := n.namespaceMatches(policyNS, peer.NamespaceSelector, svc.Namespace)
	if err != nil || !nsOK {
		return false, err
	}
	podSel := peer.PodSelector
	if podSel == nil {
		podSel = &metav1.LabelSelector{}
	}
	ok, err := selects(podSel, svc.Spec.Selector)
	if err != nil || !ok {
		return false, err
	}
	if len(ports) == 0 {
		return true, nil
	}
	for _, p := range ports {
		proto := protocolOf(p)
		if proto != dst.proto {
			continue
		}
		if p.Port == nil {
			return true, nil
		}
		listen, ok := serviceListenPort(svc, *p.Port, proto, to)
		if ok && inRange(dst.port, listen, p.EndPort) {
			return true, nil
		}
	}
	return false, nil
}

// serviceListenPort is the Service port whose targetPort is the policy's
// port: by equal targetPort, else through the backend's container ports
// (pkg/k8s/service_utils.go of the agent's controller).
func serviceListenPort(svc *corev1.Service, npPort intstr.IntOrString, proto corev1.Protocol, backend Endpoint) (int32, bool) {
	for _, sp := range svc.Spec.Ports {
		if protocolOrTCP(sp.Protocol) == proto && sp.TargetPort.Type == npPort.Type && sp.TargetPort.String() == npPort.String() {
			return sp.Port, true
		}
	}
	container, name, ok := containerPort(backend, npPort)
	if !ok {
		return 0, false
	}
	for _, sp := range svc.Spec.Ports {
		if protocolOrTCP(sp.Protocol) != proto {
			continue
		}
		if (sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal == name) ||
			(sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal == container) {
			return sp.Port, true
		}
	}
	return 0, false
}

// servicePortFor is the port of svc the client dials to reach the
// backend's port.
func servicePortFor(svc *corev1.Service, port int32, proto corev1.Protocol, backend Endpoint) (int32, error) {
	for _, sp := range svc.Spec.Ports {
		if protocolOrTCP(sp.Protocol) != proto {
			continue
		}
		target := sp.TargetPort.IntVal
		if sp.TargetPort.Type == intstr.String {
			target = backend.NamedPorts[sp.TargetPort.StrVal]
		} else if target == 0 {
			target = sp.Port // targetPort defaults to port
		}
		if target == port {
			return sp.Port, nil
		}
	}
	return 0, fmt.Errorf("the Service %s/%s has no port that targets %d/%s", svc.Namespace, svc.Name, port, proto)
}

// containerPort resolves a policy's port against the pod's container
// ports: a number stands for itself, a name for the port of that name.
func containerPort(e Endpoint, p intstr.IntOrString) (int32, string, bool) {
	if p.Type == intstr.Int {
		for name, v := range e.NamedPorts {
			if v == p.IntVal {
				return v, name, true
			}
		}
		return p.IntVal, "", true
	}
	v, ok := e.NamedPorts[p.StrVal]
	return v, p.StrVal, ok
}

// portsAdmit applies a rule's ports to the backend's port: none means
// every port; a named port is the backend's container port of that name.
func portsAdmit(ports []networkingv1.NetworkPolicyPort, port int32, proto corev1.Protocol, backend Endpoint) (bool, error) {
	if len(ports) == 0 {
		return true, nil
	}
	for _, p := range ports {
		if protocolOf(p) != proto {
			continue
		}
		switch {
		case p.Port == nil:
			return true, nil
		case p.Port.Type == intstr.String:
			if p.EndPort != nil {
				return false, fmt.Errorf("endPort %d with the named port %q", *p.EndPort, p.Port.StrVal)
			}
			if v, ok := backend.NamedPorts[p.Port.StrVal]; ok && v == port {
				return true, nil
			}
		default:
			if inRange(port, p.Port.IntVal, p.EndPort) {
				return true, nil
			}
		}
	}
	return false, nil
}

func inRange(port, start int32, end *int32) bool {
	if end == nil {
		return port == start
	}
	return port >= start && port <= *end
}

// peersAdmit applies a rule's peers to the other end: none means every
// peer.
func (n Network) peersAdmit(policyNS string, peers []networkingv1.NetworkPolicyPeer, other Endpoint) (bool, error) {
	if len(peers) == 0 {
		return true, nil
	}
	for _, peer := range peers {
		if peer.IPBlock != nil {
			if peer.PodSelector != nil || peer.NamespaceSelector != nil {
				return false, fmt.Errorf("a peer with an ipBlock and a selector is invalid")
			}
			if other.IP == "" {
				continue
			}
			in, err := inIPBlock(peer.IPBlock, other.IP)
			if err != nil || in {
				return in, err
			}
			continue
		}
		if other.Namespace == "" {
			continue
		}
		nsOK, err := n.namespaceMatches(policyNS, peer.NamespaceSelector, other.Namespace)
		if err != nil {
			return false, err
		}
		if !nsOK {
			continue
		}
		if peer.PodSelector == nil {
			return true, nil
		}
		ok, err := selects(peer.PodSelector, other.Labels)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// namespaceMatches: no namespaceSelector means the policy's own namespace.
func (n Network) namespaceMatches(policyNS string, sel *metav1.LabelSelector, ns string) (bool, error) {
	if sel == nil {
		return ns == policyNS, nil
	}
	l := map[string]string{"kubernetes.io/metadata.name": ns}
	for k, v := range n.NamespaceLabels[ns] {
		l[k] = v
	}
	return selects(sel, l)
}

func inIPBlock(b *networkingv1.IPBlock, ip string) (bool, error) {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false, fmt.Errorf("address %q: %w", ip, err)
	}
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return false, fmt.Errorf("ipBlock.cidr %q: %w", b.CIDR, err)
	}
	if !cidr.Contains(addr) {
		return false, nil
	}
	for _, e := range b.Except {
		except, err := netip.ParsePrefix(e)
		if err != nil {
			return false, fmt.Errorf("ipBlock.except %q: %w", e, err)
		}
		if except.Contains(addr) {
			return false, nil
		}
	}
	return true, nil
}

// selects applies a label selector (matchLabels and matchExpressions) the
// way the API server does.
func selects(sel *metav1.LabelSelector, l map[string]string) (bool, error) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, fmt.Errorf("selector %v: %w", sel, err)
	}
	return s.Matches(labels.Set(l)), nil
}

func protocolOf(p networkingv1.NetworkPolicyPort) corev1.Protocol {
	if p.Protocol == nil {
		return corev1.ProtocolTCP
	}
	return *p.Protocol
}

func protocolOrTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

func names(nps []networkingv1.NetworkPolicy) string {
	out := make([]string, 0, len(nps))
	for _, np := range nps {
		out = append(out, np.Name)
	}
	return strings.Join(out, ", ")
}
