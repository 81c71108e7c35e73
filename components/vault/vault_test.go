package vault_test

import (
	"crypto/x509"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrets-platform/secrets-platform/components/kube"
	"github.com/secrets-platform/secrets-platform/components/vault"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

const (
	typePrivateKey     = "tls:index/privateKey:PrivateKey"
	typeSelfSignedCert = "tls:index/selfSignedCert:SelfSignedCert"
	typeCertRequest    = "tls:index/certRequest:CertRequest"
	typeLocallySigned  = "tls:index/locallySignedCert:LocallySignedCert"
	typeSecret         = "kubernetes:core/v1:Secret"
	typeRelease        = "kubernetes:helm.sh/v3:Release"

	roleARN = "arn:aws:iam::123456789012:role/vault-unseal"
	keyID   = "alias/vault-unseal"
	region  = "eu-west-1"
)

// newArgs are the production numbers of the seed (3 voters), from the
// namespace given.
func newArgs(namespace string, replicas int) *vault.HardenedVaultArgs {
	c := vault.DefaultConfig()
	c.Replicas = replicas
	c.TLS = vault.TLSConfig{
		ValidityHours:     2160,
		EarlyRenewalHours: 360,
		CAValidityHours:   43800,
		Organization:      "Secrets Platform",
	}
	c.Resources = kube.Resources{
		Requests: map[string]string{"cpu": "250m", "memory": "256Mi"},
		Limits:   map[string]string{"cpu": "1", "memory": "512Mi"},
	}
	c.DataStorage = "10Gi"
	c.AuditStorage = "5Gi"
	c.StorageClass = "gp3"
	c.PrometheusOperator = true
	c.TimeoutSeconds = 900
	return &vault.HardenedVaultArgs{
		Config:                c,
		Namespace:             pulumi.String(namespace),
		ServiceAccountRoleARN: pulumi.String(roleARN),
		Seal:                  vault.SealArgs{Region: pulumi.String(region), KMSKeyID: pulumi.String(keyID)},
	}
}

// result is what a program observed of the component's outputs.
type result struct {
	mon       *recorder.Monitor
	component recorder.Resource
	outputs   map[string]internals.UnsafeAwaitOutputResult
}

// run builds one HardenedVault under mocks and awaits its outputs.
func run(t *testing.T, name string, args *vault.HardenedVaultArgs) result {
	t.Helper()
	var outputs map[string]internals.UnsafeAwaitOutputResult
	mon, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
		v, err := vault.NewHardenedVault(ctx, name, args)
		if err != nil {
			return err
		}
		outputs, err = tests.Await(ctx, map[string]pulumi.Output{
			"address":       v.Address,
			"caCertPEM":     v.CACertPEM,
			"serverKey":     v.ServerPrivateKeyPEM,
			"tlsSecret":     v.TLSSecretName,
			"caSecret":      v.CASecretName,
			"account":       v.ServiceAccountName,
			"releaseStatus": v.ReleaseStatus,
		})
		return err
	})
	if err != nil {
		t.Fatalf("program failed under mocks: %v", err)
	}
	return result{mon: mon, component: tests.MustFind(t, mon, vault.TypeToken, name), outputs: outputs}
}

func (r result) output(t *testing.T, key string) string {
	t.Helper()
	s, ok := r.outputs[key].Value.(string)
	if !ok || !r.outputs[key].Known {
		t.Fatalf("output %s is not a known string: %#v", key, r.outputs[key])
	}
	return s
}

// expectedDNSNames are the names the server certificate must cover for a
// release named name.
func expectedDNSNames(name, ns string, replicas int) []string {
	names := []string{
		name, name + "." + ns, name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local",
		name + "-active", name + "-active." + ns, name + "-active." + ns + ".svc", name + "-active." + ns + ".svc.cluster.local",
		name + "-internal", "*." + name + "-internal", "*." + name + "-internal." + ns + ".svc.cluster.local",
		"localhost",
	}
	for i := 0; i < replicas; i++ {
		names = append(names, fmt.Sprintf("%s-%d.%s-internal", name, i, name))
	}
	return names
}

func strs(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	tests.Decode(t, v, &out)
	return out
}

func plainString(t *testing.T, m resource.PropertyMap, key string) string {
	t.Helper()
	s, ok := tests.Plain(m[resource.PropertyKey(key)]).(string)
	if !ok {
		t.Fatalf("%s is not a string: %v", key, m[resource.PropertyKey(key)])
	}
	return s
}

// verifyServerCert checks the issued certificate chains to the CA for each
// name and both usages.
func verifyServerCert(t *testing.T, certPEM, caPEM string, names []string) {
	t.Helper()
	cert, ca := tests.ParseCertificate(t, certPEM), tests.ParseCertificate(t, caPEM)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		for _, n := range names {
			n = strings.Replace(n, "*", "vault-9", 1)
			if _, err := cert.Verify(x509.VerifyOptions{DNSName: n, Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("server certificate does not verify for %s (usage %v): %v", n, usage, err)
			}
		}
	}
	if !slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }) {
		t.Errorf("server certificate lacks IP 127.0.0.1 (VAULT_ADDR in the pod): %v", cert.IPAddresses)
	}
}

func TestProductionThreeVoters(t *testing.T) {
	r := run(t, "vault", newArgs("production", 3))
	mon := r.mon

	// Every child is the component's.
	for _, res := range mon.Resources() {
		if res.Type != vault.TypeToken && res.Parent != r.component.URN {
			t.Errorf("%s %s is not parented to the component", res.Type, res.Name)
		}
	}

	// The CA is a CA.
	caCert := tests.MustFind(t, mon, typeSelfSignedCert, "vault-ca-cert")
	if caCert.Inputs["isCaCertificate"].V != true {
		t.Errorf("CA isCaCertificate = %v", caCert.Inputs["isCaCertificate"])
	}
	if uses := strs(t, tests.Plain(caCert.Inputs["allowedUses"])); !slices.Contains(uses, "cert_signing") {
		t.Errorf("CA allowedUses %v lack cert_signing", uses)
	}
	if got := tests.Plain(caCert.Inputs["validityPeriodHours"]); got != 43800.0 {
		t.Errorf("CA validityPeriodHours = %v, want 43800", got)
	}
	if ca := tests.ParseCertificate(t, plainString(t, caCert.Outputs, "certPem")); !ca.IsCA {
		t.Error("the CA certificate is not a CA certificate")
	}

	// The server certificate covers every expected name, both usages.
	csr := tests.MustFind(t, mon, typeCertRequest, "vault-server-csr")
	dns := strs(t, tests.Plain(csr.Inputs["dnsNames"]))
	for _, want := range expectedDNSNames("vault", "production", 3) {
		if !slices.Contains(dns, want) {
			t.Errorf("certificate request lacks DNS name %q; has %v", want, dns)
		}
	}
	if slices.Contains(dns, "vault-3.vault-internal") {
		t.Errorf("3 voters but a 4th pod name is in %v", dns)
	}
	if ips := strs(t, tests.Plain(csr.Inputs["ipAddresses"])); !slices.Equal(ips, []string{"127.0.0.1"}) {
		t.Errorf("ipAddresses = %v", ips)
	}
	cert := tests.MustFind(t, mon, typeLocallySigned, "vault-server-cert")
	uses := strs(t, tests.Plain(cert.Inputs["allowedUses"]))
	for _, want := range []string{"server_auth", "client_auth", "digital_signature", "key_encipherment"} {
		if !slices.Contains(uses, want) {
			t.Errorf("server certificate allowedUses %v lack %s", uses, want)
		}
	}
	if v, e := tests.Plain(cert.Inputs["validityPeriodHours"]), tests.Plain(cert.Inputs["earlyRenewalHours"]); v != 2160.0 || e != 360.0 {
		t.Errorf("validity %v / early renewal %v, want 2160 / 360 from args", v, e)
	}
	verifyServerCert(t, plainString(t, cert.Outputs, "certPem"), plainString(t, caCert.Outputs, "certPem"), expectedDNSNames("vault", "production", 3))

	// Private keys are secrets: as the provider answers them, as the
	// program hands them on, and as the component exports them.
	keys := mon.ByType(typePrivateKey)
	if len(keys) != 2 {
		t.Fatalf("want a CA key and a server key, got %d keys", len(keys))
	}
	for _, k := range keys {
		if !k.Outputs["privateKeyPem"].IsSecret() {
			t.Errorf("%s: privateKeyPem is not secret", k.Name)
		}
		if got := tests.Plain(k.Inputs["algorithm"]); got != "ECDSA" {
			t.Errorf("%s: algorithm %v", k.Name, got)
		}
	}
	if !tests.IsSecret(cert.Inputs, "caPrivateKeyPem") {
		t.Error("the CA key given to LocallySignedCert is not secret")
	}
	if o := r.outputs["serverKey"]; !o.Secret || !strings.Contains(fmt.Sprint(o.Value), "PRIVATE KEY") {
		t.Errorf("ServerPrivateKeyPEM: secret=%v, value a key=%v", o.Secret, strings.Contains(fmt.Sprint(o.Value), "PRIVATE KEY"))
	}
	if o := r.outputs["caCertPEM"]; o.Secret {
		t.Error("CACertPEM is public but was marked secret")
	}

	// The TLS secret: kubernetes.io/tls with the pair and the CA; its data
	// is secret. The CA secret carries no key.
	tlsRec := tests.MustFind(t, mon, typeSecret, "vault-tls")
	var tlsSecret corev1.Secret
	tests.Decode(t, tlsRec.Inputs, &tlsSecret)
	if tlsSecret.Type != corev1.SecretTypeTLS || tlsSecret.Name != "vault-tls" || tlsSecret.Namespace != "production" {
		t.Errorf("TLS secret %s/%s of type %s", tlsSecret.Namespace, tlsSecret.Name, tlsSecret.Type)
	}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if tlsSecret.StringData[k] == "" {
			t.Errorf("TLS secret lacks %s", k)
		}
	}
	if !strings.Contains(tlsSecret.StringData["tls.key"], "PRIVATE KEY") || !tests.IsSecret(tlsRec.Inputs, "stringData") {
		t.Error("TLS secret's key is missing or its data is not secret")
	}
	var caSecret corev1.Secret
	tests.Decode(t, tests.MustFind(t, mon, typeSecret, "vault-ca").Inputs, &caSecret)
	if len(caSecret.StringData) != 1 || !strings.Contains(caSecret.StringData["ca.crt"], "CERTIFICATE") {
		t.Errorf("CA secret should hold ca.crt only, has %v", slices.Collect(maps.Keys(caSecret.StringData)))
	}

	// The release.
	rel := tests.MustFind(t, mon, typeRelease, "vault-release")
	in := tests.PlainMap(rel.Inputs)
	for key, want := range map[string]any{
		"name": "vault", "namespace": "production", "chart": "vault", "version": vault.DefaultChartVersion,
		"atomic": true, "skipAwait": false, "timeout": 900.0, "createNamespace": false,
	} {
		if in[key] != want {
			t.Errorf("release %s = %v, want %v", key, in[key], want)
		}
	}
	if repo := tests.Path(in, "repositoryOpts", "repo"); repo != "https://helm.releases.hashicorp.com" {
		t.Errorf("release repo = %v", repo)
	}
	for _, dep := range []string{tlsRec.URN, tests.MustFind(t, mon, typeSecret, "vault-ca").URN} {
		if !slices.Contains(rel.DependsOn, dep) {
			t.Errorf("release does not depend on %s", dep)
		}
	}

	values := tests.HelmValues(t, rel)
	if tests.IsSecret(rel.Inputs, "values") {
		t.Error("helm values are secret: something secret leaked into them")
	}
	if raw := fmt.Sprint(values); strings.Contains(raw, "PRIVATE KEY") {
		t.Error("a private key is in the helm values")
	}
	for path, want := range map[string]any{
		"fullnameOverride":                                        "vault",
		"global.tlsDisable":                                       false,
		"injector.enabled":                                        false,
		"server.ha.enabled":                                       true,
		"server.ha.replicas":                                      3.0,
		"server.ha.raft.enabled":                                  true,
		"server.ha.raft.setNodeId":                                true,
		"server.ha.disruptionBudget.enabled":                      true,
		"server.ha.disruptionBudget.maxUnavailable":               1.0,
		"server.readinessProbe.enabled":                           true,
		"server.readinessProbe.path":                              "/v1/sys/health?standbyok=true&perfstandbyok=true",
		"server.livenessProbe.enabled":                            true,
		"server.dataStorage.enabled":                              true,
		"server.dataStorage.size":                                 "10Gi",
		"server.dataStorage.mountPath":                            "/vault/data",
		"server.dataStorage.storageClass":                         "gp3",
		"server.auditStorage.enabled":                             true,
		"server.auditStorage.size":                                "5Gi",
		"server.serviceAccount.create":                            true,
		"server.serviceAccount.name":                              "vault",
		"server.serviceAccount.serviceDiscovery.enabled":          true,
		"server.extraEnvironmentVars.VAULT_CACERT":                "/vault/userconfig/vault-tls/ca.crt",
		"serverTelemetry.serviceMonitor.enabled":                  true,
		"serverTelemetry.serviceMonitor.tlsConfig.ca.secret.name": "vault-ca",
		"serverTelemetry.serviceMonitor.tlsConfig.serverName":     "vault.production.svc",
	} {
		if got := tests.Path(values, strings.Split(path, ".")...); got != want {
			t.Errorf("values %s = %#v, want %#v", path, got, want)
		}
	}
	if got := tests.Path(values, "server", "serviceAccount", "annotations", "eks.amazonaws.com/role-arn"); got != roleARN {
		t.Errorf("service account role annotation = %v", got)
	}
	// The chart sets VAULT_ADDR itself (https with tlsDisable false); a
	// second entry would shadow it.
	if got := tests.Path(values, "server", "extraEnvironmentVars", "VAULT_ADDR"); got != nil {
		t.Errorf("VAULT_ADDR duplicated in extraEnvironmentVars: %v", got)
	}
	if got := tests.Path(values, "server", "extraVolumes"); got != nil {
		t.Errorf("deprecated extraVolumes used: %v", got)
	}

	var retention appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy
	tests.Decode(t, tests.Path(values, "server", "persistentVolumeClaimRetentionPolicy"), &retention)
	if retention.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType || retention.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("PVC retention = %+v, want Retain/Retain", retention)
	}

	var resources corev1.ResourceRequirements
	tests.Decode(t, tests.Path(values, "server", "resources"), &resources)
	if resources.Requests.Cpu().String() != "250m" || resources.Limits.Memory().String() != "512Mi" {
		t.Errorf("resources = %+v", resources)
	}

	// The TLS secret mounted through volumes/volumeMounts where the HCL
	// expects it, and a writable /tmp for the chart's start-up script.
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	tests.Decode(t, tests.Path(values, "server", "volumes"), &volumes)
	tests.Decode(t, tests.Path(values, "server", "volumeMounts"), &mounts)
	tlsVol := slices.IndexFunc(volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == "vault-tls" })
	if tlsVol < 0 {
		t.Fatalf("no volume of secret vault-tls in %+v", volumes)
	}
	if !slices.ContainsFunc(mounts, func(m corev1.VolumeMount) bool {
		return m.Name == volumes[tlsVol].Name && m.MountPath == "/vault/userconfig/vault-tls" && m.ReadOnly
	}) {
		t.Errorf("TLS volume not mounted read-only at /vault/userconfig/vault-tls: %+v", mounts)
	}
	if !slices.ContainsFunc(mounts, func(m corev1.VolumeMount) bool {
		i := slices.IndexFunc(volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		return m.MountPath == "/tmp" && i >= 0 && volumes[i].EmptyDir != nil
	}) {
		t.Errorf("no emptyDir at /tmp: %+v", mounts)
	}

	// Placement: one voter per node, spread over zones.
	var affinity corev1.Affinity
	tests.Decode(t, tests.Path(values, "server", "affinity"), &affinity)
	terms := affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if len(terms) != 1 || terms[0].TopologyKey != "kubernetes.io/hostname" ||
		!maps.Equal(terms[0].LabelSelector.MatchLabels, vault.ServerPodLabels("vault")) {
		t.Errorf("pod anti-affinity = %+v", terms)
	}
	var spread []corev1.TopologySpreadConstraint
	tests.Decode(t, tests.Path(values, "server", "topologySpreadConstraints"), &spread)
	if len(spread) != 1 || spread[0].TopologyKey != "topology.kubernetes.io/zone" || spread[0].WhenUnsatisfiable != corev1.ScheduleAnyway {
		t.Errorf("topology spread = %+v", spread)
	}

	// Security contexts, as the chart renders them, pass restricted.
	pod, container := securityContexts(t, values)
	if container.ReadOnlyRootFilesystem == nil || !*container.ReadOnlyRootFilesystem {
		t.Error("the root filesystem is writable")
	}
	if *pod.RunAsUser != 100 || *pod.RunAsGroup != 1000 || *pod.FSGroup != 1000 {
		t.Errorf("pod IDs %d/%d/%d, want 100/1000/1000", *pod.RunAsUser, *pod.RunAsGroup, *pod.FSGroup)
	}
	// With the volumes this component adds (the chart's own are
	// configMap, emptyDir and PVCs).
	spec := tests.PodFromSecurityContexts(pod, container)
	spec.Volumes = volumes
	for _, version := range []string{"latest", "v1.33"} {
		violations, err := tests.PodSecurityViolations("restricted", version, metav1.ObjectMeta{Name: "vault-0"}, spec)
		if err != nil {
			t.Fatal(err)
		}
		if len(violations) > 0 {
			t.Errorf("restricted (%s) violations:%s", version, tests.JoinViolations(violations))
		}
	}

	// The configuration Vault will read.
	cfg := parseConfig(t, tests.Path(values, "server", "ha", "raft", "config"))
	checkConfig(t, cfg, "vault", 3)
	if cfg.disableMlock != true {
		t.Error("disable_mlock is not true")
	}

	// Outputs.
	for key, want := range map[string]string{
		"address":       "https://vault.production.svc:8200",
		"tlsSecret":     "vault-tls",
		"caSecret":      "vault-ca",
		"account":       "vault",
		"releaseStatus": "deployed",
	} {
		if got := r.output(t, key); got != want {
			t.Errorf("output %s = %q, want %q", key, got, want)
		}
	}
	if r.output(t, "caCertPEM") != plainString(t, caCert.Outputs, "certPem") {
		t.Error("CACertPEM is not the CA's certificate")
	}
}

func TestFiveVotersAndNamesFromTheComponentName(t *testing.T) {
	args := newArgs("platform", 5)
	args.ServiceAccount = "kv-server"
	r := run(t, "kv", args)

	dns := strs(t, tests.Plain(tests.MustFind(t, r.mon, typeCertRequest, "kv-server-csr").Inputs["dnsNames"]))
	for _, want := range expectedDNSNames("kv", "platform", 5) {
		if !slices.Contains(dns, want) {
			t.Errorf("certificate request lacks %q; has %v", want, dns)
		}
	}
	if slices.ContainsFunc(dns, func(n string) bool { return strings.HasPrefix(n, "vault") }) {
		t.Errorf("a name of another release leaked in: %v", dns)
	}

	values := tests.HelmValues(t, tests.MustFind(t, r.mon, typeRelease, "kv-release"))
	if got := tests.Path(values, "server", "ha", "replicas"); got != 5.0 {
		t.Errorf("replicas = %v", got)
	}
	if got := tests.Path(values, "server", "serviceAccount", "name"); got != "kv-server" {
		t.Errorf("service account = %v", got)
	}
	checkConfig(t, parseConfig(t, tests.Path(values, "server", "ha", "raft", "config")), "kv", 5)
	if got := r.output(t, "account"); got != "kv-server" {
		t.Errorf("ServiceAccountName = %q", got)
	}
	if got := r.output(t, "address"); got != "https://kv.platform.svc:8200" {
		t.Errorf("Address = %q", got)
	}
}

func TestBringYourOwnCA(t *testing.T) {
	caPEM, keyPEM := tests.NewTestCA(t)
	args := newArgs("production", 3)
	args.TLS.CACertPEM = caPEM
	args.TLS.CAKeyPEM = keyPEM
	r := run(t, "vault", args)

	if got := r.mon.ByType(typeSelfSignedCert); len(got) != 0 {
		t.Errorf("a self-signed CA was created with a CA given: %v", got[0].Name)
	}
	keys := r.mon.ByType(typePrivateKey)
	if len(keys) != 1 || keys[0].Name != "vault-server-key" {
		t.Errorf("want only the server key, got %d keys", len(keys))
	}
	cert := tests.MustFind(t, r.mon, typeLocallySigned, "vault-server-cert")
	if got := plainString(t, cert.Inputs, "caCertPem"); got != caPEM {
		t.Error("the server certificate is not signed with the given CA certificate")
	}
	if !tests.IsSecret(cert.Inputs, "caPrivateKeyPem") {
		t.Error("the given CA key is not secret")
	}
	verifyServerCert(t, plainString(t, cert.Outputs, "certPem"), caPEM, expectedDNSNames("vault", "production", 3))
	if got := r.output(t, "caCertPEM"); got != caPEM {
		t.Error("CACertPEM is not the given CA")
	}
	var tlsSecret corev1.Secret
	tests.Decode(t, tests.MustFind(t, r.mon, typeSecret, "vault-tls").Inputs, &tlsSecret)
	if tlsSecret.StringData["ca.crt"] != caPEM {
		t.Error("the TLS secret's ca.crt is not the given CA")
	}
	if strings.Contains(fmt.Sprint(tests.PlainMap(tests.MustFind(t, r.mon, typeSecret, "vault-ca").Inputs)), "PRIVATE KEY") {
		t.Error("the CA key went into the cluster")
	}
}

func TestMlock(t *testing.T) {
	args := newArgs("production", 3)
	args.Mlock = true
	r := run(t, "vault", args)
	values := tests.HelmValues(t, tests.MustFind(t, r.mon, typeRelease, "vault-release"))

	pod, container := securityContexts(t, values)
	if container.Capabilities == nil || !slices.Equal(container.Capabilities.Add, []corev1.Capability{"IPC_LOCK"}) {
		t.Errorf("capabilities = %+v, want IPC_LOCK added", container.Capabilities)
	}
	if cfg := parseConfig(t, tests.Path(values, "server", "ha", "raft", "config")); cfg.disableMlock != false {
		t.Error("mlock asked for but disable_mlock is true")
	}
	// What the namespace must admit: IPC_LOCK is outside both restricted's
	// and baseline's allowed capabilities.
	spec := tests.PodFromSecurityContexts(pod, container)
	for level, wantViolation := range map[string]bool{"restricted": true, "baseline": true, "privileged": false} {
		violations, err := tests.PodSecurityViolations(level, "latest", metav1.ObjectMeta{Name: "vault-0"}, spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(violations) > 0; got != wantViolation {
			t.Errorf("%s: violations %v, want some = %v", level, violations, wantViolation)
		}
	}
}

func TestArgsErrors(t *testing.T) {
	ca, _ := tests.NewTestCA(t)
	for name, mutate := range map[string]func(a *vault.HardenedVaultArgs){
		"no namespace":         func(a *vault.HardenedVaultArgs) { a.Namespace = nil },
		"no role":              func(a *vault.HardenedVaultArgs) { a.ServiceAccountRoleARN = nil },
		"no seal key":          func(a *vault.HardenedVaultArgs) { a.Seal.KMSKeyID = nil },
		"CA cert without key":  func(a *vault.HardenedVaultArgs) { a.TLS.CACertPEM = ca },
		"renewal not below":    func(a *vault.HardenedVaultArgs) { a.TLS.EarlyRenewalHours = a.TLS.ValidityHours },
		"negative replicas":    func(a *vault.HardenedVaultArgs) { a.Replicas = -1 },
		"unparsable resources": func(a *vault.HardenedVaultArgs) { a.Resources.Limits = map[string]string{"cpu": "lots"} },
	} {
		t.Run(name, func(t *testing.T) {
			args := newArgs("production", 3)
			mutate(args)
			mon, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
				_, err := vault.NewHardenedVault(ctx, "vault", args)
				return err
			})
			if err == nil {
				t.Fatalf("no error; registered:\n%s", mon.Tree())
			}
		})
	}
	t.Run("nil args", func(t *testing.T) {
		_, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
			_, err := vault.NewHardenedVault(ctx, "vault", nil)
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "args are required") {
			t.Errorf("err = %v", err)
		}
	})
}

// securityContexts decodes the pod and container security contexts from
// the chart values.
func securityContexts(t *testing.T, values map[string]any) (*corev1.PodSecurityContext, *corev1.SecurityContext) {
	t.Helper()
	var pod corev1.PodSecurityContext
	var container corev1.SecurityContext
	tests.Decode(t, tests.Path(values, "server", "statefulSet", "securityContext", "pod"), &pod)
	tests.Decode(t, tests.Path(values, "server", "statefulSet", "securityContext", "container"), &container)
	if pod.RunAsUser == nil || container.AllowPrivilegeEscalation == nil {
		t.Fatalf("security contexts not set in full: pod %+v container %+v", pod, container)
	}
	return &pod, &container
}

// vaultConfig is what the tests read back from the HCL.
type vaultConfig struct {
	raw          string
	disableMlock bool
	file         *ast.ObjectList
}

type listenerConfig struct {
	Address         string `hcl:"address"`
	ClusterAddress  string `hcl:"cluster_address"`
	TLSCertFile     string `hcl:"tls_cert_file"`
	TLSKeyFile      string `hcl:"tls_key_file"`
	TLSClientCAFile string `hcl:"tls_client_ca_file"`
	TLSMinVersion   string `hcl:"tls_min_version"`
}

type retryJoin struct {
	LeaderAPIAddr        string `hcl:"leader_api_addr"`
	LeaderTLSServerName  string `hcl:"leader_tls_servername"`
	LeaderCACertFile     string `hcl:"leader_ca_cert_file"`
	LeaderClientCertFile string `hcl:"leader_client_cert_file"`
	LeaderClientKeyFile  string `hcl:"leader_client_key_file"`
}

// parseConfig parses the HCL with hcl v1, as Vault does.
func parseConfig(t *testing.T, v any) vaultConfig {
	t.Helper()
	raw, ok := v.(string)
	if !ok || raw == "" {
		t.Fatalf("server.ha.raft.config is not a string: %#v", v)
	}
	file, err := hcl.Parse(raw)
	if err != nil {
		t.Fatalf("HCL does not parse: %v\n%s", err, raw)
	}
	var top struct {
		UI           bool `hcl:"ui"`
		DisableMlock bool `hcl:"disable_mlock"`
	}
	if err := hcl.DecodeObject(&top, file.Node); err != nil {
		t.Fatal(err)
	}
	if !top.UI {
		t.Error("ui is not true")
	}
	if n := strings.Count(raw, "disable_mlock"); n != 1 {
		t.Errorf("disable_mlock set %d times; Vault rejects duplicates", n)
	}
	return vaultConfig{raw: raw, disableMlock: top.DisableMlock, file: file.Node.(*ast.ObjectList)}
}

// only returns the body of the single block with these keys.
func only(t *testing.T, list *ast.ObjectList, keys ...string) *ast.ObjectType {
	t.Helper()
	items := list.Filter(keys...).Items
	if len(items) != 1 {
		t.Fatalf("want one %v block, got %d", keys, len(items))
	}
	obj, ok := items[0].Val.(*ast.ObjectType)
	if !ok {
		t.Fatalf("%v is not a block", keys)
	}
	return obj
}

func decode(t *testing.T, node ast.Node, out any) {
	t.Helper()
	if err := hcl.DecodeObject(out, node); err != nil {
		t.Fatal(err)
	}
}

// checkConfig checks TLS, Raft joins, seal, registration and telemetry for
// a release name with n voters.
func checkConfig(t *testing.T, cfg vaultConfig, name string, n int) {
	t.Helper()
	dir := "/vault/userconfig/" + name + "-tls/"
	if strings.Contains(cfg.raw, "tls_disable") {
		t.Error("tls_disable in the config")
	}
	for _, ph := range []string{"HOST_IP", "POD_IP", "HOSTNAME", "API_ADDR", "{{"} {
		if strings.Contains(cfg.raw, ph) {
			t.Errorf("%q would be rewritten by the chart", ph)
		}
	}

	var l listenerConfig
	listener := only(t, cfg.file, "listener", "tcp")
	decode(t, listener, &l)
	want := listenerConfig{"[::]:8200", "[::]:8201", dir + "tls.crt", dir + "tls.key", dir + "ca.crt", "tls12"}
	if l != want {
		t.Errorf("listener = %+v, want %+v", l, want)
	}
	var lt struct {
		Unauth bool `hcl:"unauthenticated_metrics_access"`
	}
	decode(t, only(t, listener.List, "telemetry"), &lt)
	if !lt.Unauth {
		t.Error("listener telemetry does not allow unauthenticated metrics access")
	}

	raft := only(t, cfg.file, "storage", "raft")
	var storage struct {
		Path string `hcl:"path"`
	}
	decode(t, raft, &storage)
	if storage.Path != "/vault/data" {
		t.Errorf("raft path = %q", storage.Path)
	}
	joins := raft.List.Filter("retry_join").Items
	if len(joins) != n {
		t.Fatalf("%d retry_join blocks for %d voters", len(joins), n)
	}
	for i, item := range joins {
		var j retryJoin
		decode(t, item.Val, &j)
		host := fmt.Sprintf("%s-%d.%s-internal", name, i, name)
		want := retryJoin{"https://" + host + ":8200", host, dir + "ca.crt", dir + "tls.crt", dir + "tls.key"}
		if j != want {
			t.Errorf("retry_join %d = %+v, want %+v", i, j, want)
		}
	}

	var seal struct {
		Region   string `hcl:"region"`
		KMSKeyID string `hcl:"kms_key_id"`
	}
	decode(t, only(t, cfg.file, "seal", "awskms"), &seal)
	if seal.Region != region || seal.KMSKeyID != keyID {
		t.Errorf("seal = %+v", seal)
	}
	only(t, cfg.file, "service_registration", "kubernetes")
	var telemetry struct {
		Retention       string `hcl:"prometheus_retention_time"`
		DisableHostname bool   `hcl:"disable_hostname"`
	}
	decode(t, only(t, cfg.file, "telemetry"), &telemetry)
	if telemetry.Retention == "" || !telemetry.DisableHostname {
		t.Errorf("telemetry = %+v", telemetry)
	}
}
