package tests

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
)

// The production example's cluster, as Pulumi.production.yaml describes
// it: VPC 10.40.0.0/16 with the EKS control plane's ENIs in three /28
// subnets (10.40.0.0/28, .16/28, .32/28), the STS, KMS and S3 interface
// endpoints in three more (10.40.0.64/28, .80/28, .96/28), pods and nodes
// in the rest, and EKS's default Service range for a VPC in 10.0.0.0/8,
// 172.20.0.0/16, whose first address is the `kubernetes` Service's.
var (
	apiENI   = Endpoint{Name: "API server ENI", IP: "10.40.0.21"}
	kmsVPCE  = Endpoint{Name: "KMS endpoint", IP: "10.40.0.70"}
	stsVPCE  = Endpoint{Name: "STS endpoint", IP: "10.40.0.85"}
	s3VPCE   = Endpoint{Name: "S3 endpoint", IP: "10.40.0.101"}
	internet = Endpoint{Name: "internet", IP: "1.1.1.1"}
	coreDNS  = Endpoint{Name: "coredns", Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns", "eks.amazonaws.com/component": "coredns"}, IP: "10.40.70.3"}

	kubernetesSvc = service("default", "kubernetes", "172.20.0.1", nil, svcPort(443, corev1.ProtocolTCP, intstr.FromInt32(443)))
	kubeDNSSvc    = service("kube-system", "kube-dns", "172.20.0.10", map[string]string{"k8s-app": "kube-dns"},
		svcPort(53, corev1.ProtocolUDP, intstr.FromInt32(53)), svcPort(53, corev1.ProtocolTCP, intstr.FromInt32(53)))
)

func service(ns, name, clusterIP string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: clusterIP, Selector: selector, Ports: ports},
	}
}

func svcPort(port int32, proto corev1.Protocol, target intstr.IntOrString) corev1.ServicePort {
	return corev1.ServicePort{Port: port, Protocol: proto, TargetPort: target}
}

// templateLabels are the pod labels of the recorded workload of this type
// whose pods are named app.kubernetes.io/name=name: what the program puts
// on the pods the policies must select.
func templateLabels(t *testing.T, mon *recorder.Monitor, typeToken, name string) map[string]string {
	t.Helper()
	path := podTemplatePaths[typeToken]
	for _, r := range mon.ByType(typeToken) {
		m, _ := Path(PlainMap(r.Inputs), append(path, "metadata", "labels")...).(map[string]any)
		if m["app.kubernetes.io/name"] != name {
			continue
		}
		out := map[string]string{}
		for k, v := range m {
			out[k], _ = v.(string)
		}
		return out
	}
	t.Fatalf("no %s has pods labelled app.kubernetes.io/name=%s", typeToken, name)
	return nil
}

// labelsOf merges label sets, later ones winning.
func labelsOf(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestPlatformFlowsUnderBothDataplanes evaluates every flow the platform
// needs, and some that must stay closed, against the NetworkPolicies the
// production stack registers: once as a post-DNAT engine sees them
// (Calico on iptables), once as the AWS VPC CNI's agent does (pre-DNAT:
// a Service's ClusterIP).
func TestPlatformFlowsUnderBothDataplanes(t *testing.T) {
	mon := runStack(t, "production")
	net := Network{Policies: NetworkPolicies(t, mon.Resources())}
	if len(net.Policies) == 0 {
		t.Fatal("the production stack registers no NetworkPolicy")
	}
	const ns = "production"
	pod := func(name, ip string, l map[string]string) Endpoint {
		return Endpoint{Name: name, Namespace: ns, Labels: l, IP: ip}
	}
	// The charts' pod labels: vault-helm templates/server-statefulset.yaml
	// (vault-active is set by Vault's service registration on the leader),
	// and the external-secrets chart's selector labels (_helpers.tpl).
	vaultLabels := map[string]string{"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": "vault", "component": "server", "helm.sh/chart": "vault-0.34.1"}
	esoLabels := func(name string) map[string]string {
		return map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/instance": "external-secrets"}
	}
	var (
		vault0     = pod("vault-0 (active)", "10.40.64.10", labelsOf(vaultLabels, map[string]string{"vault-active": "true"}))
		vault1     = pod("vault-1 (standby)", "10.40.96.11", labelsOf(vaultLabels, map[string]string{"vault-active": "false"}))
		controller = pod("eso controller", "10.40.64.20", esoLabels("external-secrets"))
		webhook    = pod("eso webhook", "10.40.96.21", esoLabels("external-secrets-webhook"))
		certCtl    = pod("eso cert-controller", "10.40.128.22", esoLabels("external-secrets-cert-controller"))
		snapshot   = pod("snapshot job", "10.40.64.30", templateLabels(t, mon, "kubernetes:batch/v1:CronJob", "vault-raft-snapshot"))
		drill      = pod("restore drill", "10.40.96.31", templateLabels(t, mon, "kubernetes:batch/v1:CronJob", "vault-restore-drill"))
		boot       = pod("bootstrap job", "10.40.128.32", templateLabels(t, mon, "kubernetes:batch/v1:Job", "vault-bootstrap"))
		rolloutJob = pod("rollout job", "10.40.128.33", templateLabels(t, mon, "kubernetes:batch/v1:Job", "vault-rollout"))
		reconcile  = pod("reconcile job", "10.40.128.34", templateLabels(t, mon, "kubernetes:batch/v1:CronJob", "vault-reconcile"))
		apiClient  = pod("postgres client", "10.40.64.40", map[string]string{"app.kubernetes.io/component": "api"})
		postgres   = pod("postgres", "10.40.64.41", map[string]string{"app.kubernetes.io/name": "postgres"})
		prometheus = Endpoint{Name: "prometheus", Namespace: "monitoring", Labels: map[string]string{"app.kubernetes.io/name": "prometheus"}, IP: "10.40.96.50"}
		stranger   = Endpoint{Name: "another namespace's pod", Namespace: "default", Labels: map[string]string{"app.kubernetes.io/name": "prometheus"}, IP: "10.40.64.99"}

		vaultSvc       = service(ns, "vault", "172.20.31.7", map[string]string{"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": "vault", "component": "server"}, svcPort(8200, corev1.ProtocolTCP, intstr.FromInt32(8200)), svcPort(8201, corev1.ProtocolTCP, intstr.FromInt32(8201)))
		vaultActiveSvc = service(ns, "vault-active", "172.20.31.8", labelsOf(vaultSvc.Spec.Selector, map[string]string{"vault-active": "true"}), vaultSvc.Spec.Ports...)
		tcp, udp       = corev1.ProtocolTCP, corev1.ProtocolUDP
	)
	type flow struct {
		what string
		Flow
	}
	toAPI := func(what string, from Endpoint) flow {
		return flow{what, Flow{From: from, To: apiENI, Port: 443, Protocol: tcp, Via: kubernetesSvc}}
	}
	dns := func(from Endpoint, proto corev1.Protocol) flow {
		return flow{from.Name + " resolves names (" + string(proto) + ")", Flow{From: from, To: coreDNS, Port: 53, Protocol: proto, Via: kubeDNSSvc}}
	}
	direct := func(what string, from, to Endpoint, port int32) flow {
		return flow{what, Flow{From: from, To: to, Port: port, Protocol: tcp}}
	}
	via := func(what string, from, to Endpoint, port int32, svc *corev1.Service) flow {
		return flow{what, Flow{From: from, To: to, Port: port, Protocol: tcp, Via: svc}}
	}

	needed := []flow{
		toAPI("eso controller watches its resources and writes Secrets", controller),
		toAPI("eso webhook reads the API", webhook),
		toAPI("eso cert-controller patches the CRDs and webhook configurations", certCtl),
		toAPI("vault (leader) reviews tokens for Kubernetes auth", vault0),
		toAPI("vault (standby) registers its labels (service registration)", vault1),
		toAPI("rollout job reads the StatefulSet and deletes voters", rolloutJob),
		direct("rollout job reads every voter's health", rolloutJob, vault1, 8200),
		direct("the API server calls the eso webhook", apiENI, webhook, 10250),
		dns(vault0, udp), dns(vault0, tcp), dns(controller, udp), dns(webhook, udp), dns(certCtl, udp),
		dns(snapshot, udp), dns(drill, udp), dns(boot, udp), dns(rolloutJob, udp), dns(reconcile, udp),
		via("eso controller reads Vault", controller, vault1, 8200, vaultSvc),
		direct("raft between voters", vault1, vault0, 8201),
		direct("request forwarding and joins on the api address", vault1, vault0, 8200),
		direct("prometheus scrapes every voter", prometheus, vault1, 8200),
		direct("prometheus scrapes the eso controller", prometheus, controller, 8080),
		direct("prometheus scrapes the eso webhook", prometheus, webhook, 8080),
		direct("vault assumes its role (STS)", vault0, stsVPCE, 443),
		direct("vault asks STS who signed a person's login (AWS auth)", vault1, stsVPCE, 443),
		direct("vault unseals (KMS)", vault1, kmsVPCE, 443),
		via("snapshot job saves from the leader", snapshot, vault0, 8200, vaultActiveSvc),
		direct("snapshot job assumes its role (STS)", snapshot, stsVPCE, 443),
		direct("snapshot job uploads (S3)", snapshot, s3VPCE, 443),
		via("bootstrap configures the leader", boot, vault0, 8200, vaultActiveSvc),
		direct("bootstrap checks every voter", boot, vault1, 8200),
		direct("bootstrap encrypts init's output (KMS)", boot, kmsVPCE, 443),
		direct("bootstrap stores init's output (S3)", boot, s3VPCE, 443),
		direct("bootstrap assumes its role (STS)", boot, stsVPCE, 443),
		via("reconcile configures the leader", reconcile, vault0, 8200, vaultActiveSvc),
		direct("restore drill downloads (S3)", drill, s3VPCE, 443),
		direct("restore drill unseals its Vault (KMS)", drill, kmsVPCE, 443),
		direct("restore drill assumes its role (STS)", drill, stsVPCE, 443),
		direct("the configured extra allow", apiClient, postgres, 5432),
	}
	closed := []flow{
		direct("another namespace's pod calls the eso webhook", stranger, webhook, 10250),
		via("another namespace's pod reads Vault", stranger, vault0, 8200, vaultSvc),
		direct("vault reaches the internet", vault0, internet, 443),
		direct("vault reaches another namespace's pod on 443", vault0, stranger, 443),
		direct("eso controller reaches the internet", controller, internet, 443),
		direct("eso controller calls the API server on another port than 443", controller, apiENI, 10250),
		direct("eso controller reaches AWS", controller, kmsVPCE, 443),
		via("eso webhook reads Vault", webhook, vault0, 8200, vaultSvc),
		via("eso controller reaches raft through the Service", controller, vault0, 8201, vaultSvc),
		toAPI("snapshot job calls the API", snapshot),
		toAPI("bootstrap calls the API", boot),
		toAPI("restore drill calls the API", drill),
		via("restore drill reads Vault", drill, vault0, 8200, vaultActiveSvc),
		direct("bootstrap reaches raft", boot, vault0, 8201),
		direct("reconcile reaches AWS (KMS)", reconcile, kmsVPCE, 443),
		direct("reconcile reaches AWS (STS)", reconcile, stsVPCE, 443),
		toAPI("reconcile calls the API", reconcile),
		direct("reconcile reaches raft", reconcile, vault0, 8201),
		direct("the API server calls Vault", apiENI, vault0, 8200),
		direct("the extra allow is one way", postgres, apiClient, 5432),
		direct("another namespace scrapes Vault", stranger, vault0, 8200),
	}
	for _, d := range []Dataplane{PostDNAT, PreDNAT} {
		for _, f := range needed {
			if err := net.Allowed(f.Flow, d); err != nil {
				t.Errorf("%s: needed flow %q (%s) is denied: %v", d, f.what, f.Flow, err)
			}
		}
		for _, f := range closed {
			if err := net.Allowed(f.Flow, d); err == nil {
				t.Errorf("%s: flow %q (%s) must stay closed but is allowed", d, f.what, f.Flow)
			}
		}
	}
}

// TestFlowEvaluator pins the evaluator's reading of the NetworkPolicy API
// and of the VPC CNI agent on hand-written policies, so that the flow table
// above proves what it says.
func TestFlowEvaluator(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	portN := func(p int32, proto corev1.Protocol) networkingv1.NetworkPolicyPort {
		v := intstr.FromInt32(p)
		return networkingv1.NetworkPolicyPort{Port: &v, Protocol: &proto}
	}
	named := func(name string) networkingv1.NetworkPolicyPort {
		v := intstr.FromString(name)
		return networkingv1.NetworkPolicyPort{Port: &v, Protocol: &tcp}
	}
	ranged := func(from, to int32) networkingv1.NetworkPolicyPort {
		p := portN(from, tcp)
		p.EndPort = &to
		return p
	}
	sel := func(l map[string]string) *metav1.LabelSelector { return &metav1.LabelSelector{MatchLabels: l} }
	egress := func(name string, pods metav1.LabelSelector, peers []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicy {
		return networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: name},
			Spec: networkingv1.NetworkPolicySpec{PodSelector: pods, PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress: []networkingv1.NetworkPolicyEgressRule{{To: peers, Ports: ports}}},
		}
	}
	client := Endpoint{Name: "client", Namespace: "a", Labels: map[string]string{"app": "client", "tier": "web"}, IP: "10.0.1.1"}
	other := Endpoint{Name: "other", Namespace: "a", Labels: map[string]string{"app": "other"}, IP: "10.0.1.2"}
	server := Endpoint{Name: "server", Namespace: "b", Labels: map[string]string{"app": "server"}, IP: "10.0.2.1", NamedPorts: map[string]int32{"https": 8443}}
	serverSvc := service("b", "server", "172.20.9.9", map[string]string{"app": "server"}, svcPort(443, tcp, intstr.FromString("https")))
	headless := service("b", "server-internal", corev1.ClusterIPNone, map[string]string{"app": "server"}, svcPort(8443, tcp, intstr.FromInt32(8443)))
	noSelector := service("b", "external", "172.20.9.10", nil, svcPort(443, tcp, intstr.FromInt32(8443)))
	expr := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web"}}}}
	inB := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "b"}}
	block := func(cidr string, except ...string) []networkingv1.NetworkPolicyPeer {
		return []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}}
	}
	podsInB := []networkingv1.NetworkPolicyPeer{{NamespaceSelector: inB, PodSelector: sel(map[string]string{"app": "server"})}}

	cases := []struct {
		what     string
		policies []networkingv1.NetworkPolicy
		flow     Flow
		want     map[Dataplane]bool
	}{
		{"no policy selects the client", nil,
			Flow{From: client, To: server, Port: 8443, Protocol: tcp}, map[Dataplane]bool{PostDNAT: true, PreDNAT: true}},
		{"matchExpressions select the client, the pod peer admits the backend", []networkingv1.NetworkPolicy{egress("p", expr, podsInB, named("https"))},
			Flow{From: client, To: server, Port: 8443, Protocol: tcp}, map[Dataplane]bool{PostDNAT: true, PreDNAT: true}},
		{"matchExpressions leave the other pod unselected", []networkingv1.NetworkPolicy{egress("p", expr, block("192.0.2.0/24"))},
			Flow{From: other, To: server, Port: 8443, Protocol: tcp}, map[Dataplane]bool{PostDNAT: true, PreDNAT: true}},
		{"a named port is the backend's container port", []networkingv1.NetworkPolicy{egress("p", expr, podsInB, named("https"))},
			Flow{From: client, To: server, Port: 8444, Protocol: tcp}, map[Dataplane]bool{PostDNAT: false, PreDNAT: false}},
		{"the protocol counts", []networkingv1.NetworkPolicy{egress("p", expr, podsInB, portN(8443, tcp))},
			Flow{From: client, To: server, Port: 8443, Protocol: udp}, map[Dataplane]bool{PostDNAT: false, PreDNAT: false}},
		{"endPort opens a range", []networkingv1.NetworkPolicy{egress("p", expr, podsInB, ranged(8000, 9000))},
			Flow{From: client, To: server, Port: 8443, Protocol: tcp}, map[Dataplane]bool{PostDNAT: true, PreDNAT: true}},
		{"ipBlock except carves out the backend", []networkingv1.NetworkPolicy{egress("p", expr, block("10.0.0.0/16", "10.0.2.0/24"), portN(8443, tcp))},
			Flow{From: client, To: server, Port: 8443, Protocol: tcp}, map[Dataplane]bool{PostDNAT: false, PreDNAT: false}},
		{"via a Service: the pod peer matches its selector (the agent's workaround)", []networkingv1.NetworkPolicy{egress("p", expr, podsInB, named("https"))},
			Flow{From: client, To: server, Port: 8443, Protocol: tcp, Via: serverSvc}, map[Dataplane]bool{PostDNAT: true, PreDNAT: true}},
		{"via a Service: a numeric port the Service targets by name", []networkingv1.NetworkPolicy{egress("p", expr, podsInB, portN(8443, tcp))},
			Flow{From: client, To: server, Port: 8443, Protocol: tcp, Via: serverSvc}, map[Dataplane]bool{PostDNAT: true, PreDNAT: true}},
		{"via a Service: a namespace peer without podSelector matches every Service there", []networkingv1.NetworkPolicy{egress("p", expr, []networkingv1.NetworkPolicyPeer{{NamespaceSelector: inB}}, portN(8443, tcp))},
			Flow{From: client, To: server, Port: 8443, Protocol: tcp, Via: noSelector}, map[Dataplane]bool{PostDNAT: true, PreDNAT: true}},
		{"via a Service without selector: a pod peer never matches it", []networkingv1.NetworkPolicy{egress("p", expr, podsInB, portN(8443, tcp))},
			Flow{From: client, To: server, Port: 8443, Protocol: tcp, Via: noSelector}, map[Dataplane]bool{PostDNAT: true, PreDNAT: false}},
		{"via a Service: an ipBlock of the backends is not the ClusterIP", []networkingv1.NetworkPolicy{egress("p", expr, block("10.0.2.0/24"), portN(8443, tcp))},
			Flow{From: client, To: server, Port: 8443, Protocol: tcp, Via: noSelector}, map[Dataplane]bool{PostDNAT: true, PreDNAT: false}},
		{"via a Service: an ipBlock of the ClusterIP on the Service's port", []networkingv1.NetworkPolicy{egress("p", expr, block("172.20.9.10/32"), portN(443, tcp))},
			Flow{From: client, To: server, Port: 8443, Protocol: tcp, Via: noSelector}, map[Dataplane]bool{PostDNAT: false, PreDNAT: true}},
		{"via a headless Service: pods are dialled directly", []networkingv1.NetworkPolicy{egress("p", expr, block("10.0.2.0/24"), portN(8443, tcp))},
			Flow{From: client, To: server, Port: 8443, Protocol: tcp}, map[Dataplane]bool{PostDNAT: true, PreDNAT: true}},
		{"a headless Service is no Via: its clients dial the pods", []networkingv1.NetworkPolicy{egress("p", expr, podsInB, portN(8443, tcp))},
			Flow{From: client, To: server, Port: 8443, Protocol: tcp, Via: headless}, map[Dataplane]bool{PostDNAT: false, PreDNAT: false}},
		{"a policy without policyTypes and no egress rules only isolates ingress", []networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "p"},
			Spec:       networkingv1.NetworkPolicySpec{PodSelector: *sel(map[string]string{"app": "server"})},
		}}, Flow{From: server, To: internet, Port: 443, Protocol: tcp}, map[Dataplane]bool{PostDNAT: true, PreDNAT: true}},
		{"the same policy denies every ingress", []networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "p"},
			Spec:       networkingv1.NetworkPolicySpec{PodSelector: *sel(map[string]string{"app": "server"})},
		}}, Flow{From: client, To: server, Port: 8443, Protocol: tcp}, map[Dataplane]bool{PostDNAT: false, PreDNAT: false}},
	}
	for _, c := range cases {
		for _, d := range []Dataplane{PostDNAT, PreDNAT} {
			err := Network{Policies: c.policies}.Allowed(c.flow, d)
			if got := err == nil; got != c.want[d] {
				t.Errorf("%s, %s: allowed = %v (%v), want %v", c.what, d, got, err, c.want[d])
			}
		}
	}
}
