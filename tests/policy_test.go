package tests

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
)

// stackUnderPolicy is one stack run under mocks, with what the checks need.
type stackUnderPolicy struct {
	name      string
	mon       *recorder.Monitor
	cfg       recorder.StackConfig
	level     string
	version   string
	resources []recorder.Resource
}

func runForPolicy(t *testing.T, stack string, overrides map[string]any) stackUnderPolicy {
	t.Helper()
	cfg := StackConfig(t, stack, overrides)
	mon := Run(t, stack, cfg, stacks.Run)
	ns := mon.ByType("kubernetes:core/v1:Namespace")
	if len(ns) != 1 {
		t.Fatalf("%d namespaces registered; want 1", len(ns))
	}
	labels, _ := Path(PlainMap(ns[0].Inputs), "metadata", "labels").(map[string]any)
	level, _ := labels["pod-security.kubernetes.io/enforce"].(string)
	version, _ := labels["pod-security.kubernetes.io/enforce-version"].(string)
	if level == "" || version == "" {
		t.Fatalf("namespace has no enforced Pod Security level and version: %v", labels)
	}
	return stackUnderPolicy{stack, mon, cfg, level, version, mon.Resources()}
}

func expectNoFindings(t *testing.T, check string, findings []string) {
	t.Helper()
	if len(findings) > 0 {
		t.Errorf("%s:%s", check, JoinViolations(findings))
	}
}

// TestPolicySuite runs every stack-wide check over each real stack file.
func TestPolicySuite(t *testing.T) {
	for _, stack := range []string{"production", "staging"} {
		t.Run(stack, func(t *testing.T) {
			t.Parallel()
			s := runForPolicy(t, stack, nil)
			if s.level != "restricted" {
				t.Errorf("namespace enforces %q; the seed asks for restricted", s.level)
			}
			expectNoFindings(t, "pod security", PodSecurityFindings(s.resources, s.level, s.version))
			expectNoFindings(t, "secrets", SecretFindings(s.resources, s.cfg.SecretValues()))
			expectNoFindings(t, "tls", TLSFindings(s.resources))
			expectNoFindings(t, "durability", DurabilityFindings(s.resources))
			expectNoFindings(t, "least privilege", LeastPrivilegeFindings(s.resources))
			expectNoFindings(t, "unique names", DuplicateObjectFindings(s.resources))
			expectNoFindings(t, "one AWS account", AccountFindings(s.resources, stackAccount(t, s.cfg)))
			if n := len(s.mon.ByType("aws:kms/key:Key")); n == 0 {
				t.Error("no KMS key registered: the durability check saw nothing to check")
			}
		})
	}
}

// TestBringYourOwnCAKeepsTheKeySecret gives the production stack a CA as
// secret config and checks that its key never appears in plain text.
func TestBringYourOwnCAKeepsTheKeySecret(t *testing.T) {
	certPEM, keyPEM := NewTestCA(t)
	vaultCfg := decodeGroup(t, StackConfig(t, "production", nil), "secrets-platform:vault")
	vaultCfg["tls"] = map[string]any{"caCertPem": certPEM, "caKeyPem": keyPEM}
	cfg := StackConfig(t, "production", map[string]any{"secrets-platform:vault": vaultCfg})
	cfg.SecretKeys = append(cfg.SecretKeys, "secrets-platform:vault")
	mon := Run(t, "production", cfg, stacks.Run)
	expectNoFindings(t, "secrets", SecretFindings(mon.Resources(), []string{keyPEM}))
	if n := len(mon.ByType("tls:index/selfSignedCert:SelfSignedCert")); n != 0 {
		t.Errorf("%d self-signed CAs created; a brought CA needs none", n)
	}
}

// TestStackOutputsKeepSecretsSecret awaits every stack output: any that
// holds private key material must be secret, and the CA is public.
func TestStackOutputsKeepSecretsSecret(t *testing.T) {
	cfg := StackConfig(t, "production", nil)
	checked := 0
	Run(t, "production", cfg, func(ctx *pulumi.Context) error {
		c, err := stacks.Load(ctx)
		if err != nil {
			return err
		}
		p, err := stacks.Compose(ctx, c)
		if err != nil {
			return err
		}
		outputs := p.Outputs()
		outputs["vault server private key"] = p.Vault.ServerPrivateKeyPEM
		resolved, err := Await(ctx, outputs)
		if err != nil {
			return err
		}
		for name, res := range resolved {
			walkPlain(resource.NewPropertyValue(res.Value), name, func(path, s string) {
				if strings.Contains(s, privateKeyMarker) && !res.Secret {
					t.Errorf("stack output %s holds a private key in plain text", path)
				}
			})
			checked++
		}
		key := resolved["vault server private key"]
		if !key.Secret {
			t.Error("the Vault server's private key output is not secret")
		}
		return nil
	})
	if checked == 0 {
		t.Fatal("no stack outputs were checked")
	}
}

// TestChecksCatchBrokenResources proves each check can fail, by feeding it
// a deliberately broken resource.
func TestChecksCatchBrokenResources(t *testing.T) {
	props := func(m map[string]any) resource.PropertyMap { return resource.NewPropertyMapFromMap(m) }
	privileged := recorder.Resource{Type: "kubernetes:apps/v1:Deployment", Name: "bad", Custom: true, Inputs: props(map[string]any{
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": "c", "image": "i", "securityContext": map[string]any{"privileged": true}}},
		}}},
	})}
	rootSidecar := recorder.Resource{Type: "kubernetes:helm.sh/v3:Release", Name: "vault", Custom: true, Inputs: props(map[string]any{
		"chart": "vault",
		"values": map[string]any{"server": map[string]any{
			"statefulSet": map[string]any{"securityContext": map[string]any{
				"pod":       map[string]any{"runAsNonRoot": true, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
				"container": map[string]any{"allowPrivilegeEscalation": false, "capabilities": map[string]any{"drop": []any{"ALL"}}},
			}},
			"extraContainers": []any{map[string]any{"name": "sidecar", "image": "i", "securityContext": map[string]any{"runAsUser": 0}}},
		}},
	})}
	plainKey := recorder.Resource{Type: "kubernetes:core/v1:ConfigMap", Name: "leak", Custom: true, Inputs: props(map[string]any{
		"data": map[string]any{"key": "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----"},
	})}
	secretKey := recorder.Resource{Type: "kubernetes:core/v1:Secret", Name: "ok", Custom: true, Inputs: resource.PropertyMap{
		"stringData": resource.MakeSecret(resource.NewProperty("-----BEGIN EC PRIVATE KEY-----")),
	}}
	leakedConfig := recorder.Resource{Type: "kubernetes:helm.sh/v3:Release", Name: "leaky", Custom: true, Inputs: props(map[string]any{
		"values": map[string]any{"token": "s3cr3t-token"},
	})}
	plainHTTP := recorder.Resource{Type: "kubernetes:core/v1:ConfigMap", Name: "http", Custom: true, Inputs: props(map[string]any{
		"data": map[string]any{"VAULT_ADDR": "http://vault.production.svc:8200"},
	})}
	storeWithoutCA := recorder.Resource{Type: "kubernetes:apiextensions.k8s.io:CustomResource", Name: "store", Custom: true, Inputs: props(map[string]any{
		"kind": "SecretStore",
		"spec": map[string]any{"provider": map[string]any{"vault": map[string]any{"server": "https://vault:8200"}}},
	})}
	tlsOff := recorder.Resource{Type: "kubernetes:helm.sh/v3:Release", Name: "vault", Custom: true, Inputs: props(map[string]any{
		"chart":  "vault",
		"values": map[string]any{"server": map[string]any{"ha": map[string]any{"raft": map[string]any{"config": "listener \"tcp\" {\n  tls_disable = 1\n}"}}}},
	})}
	exposedPlaintext := recorder.Resource{Type: "kubernetes:core/v1:ConfigMap", Name: "drill", Custom: true, Inputs: props(map[string]any{
		"data": map[string]any{"vault.hcl": "listener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_disable = true\n}\nlistener \"tcp\" {\n  address = \"0.0.0.0:8210\"\n  tls_disable = true\n}\n"},
	})}
	loopback := recorder.Resource{Type: "kubernetes:core/v1:ConfigMap", Name: "drill", Custom: true, Inputs: props(map[string]any{
		"data": map[string]any{
			"vault.hcl":  "listener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_disable = true\n}\n",
			"VAULT_ADDR": "http://127.0.0.1:8200",
		},
	})}
	unprotectedKey := recorder.Resource{Type: "aws:kms/key:Key", Name: "key", Custom: true, Protect: true}
	starWrite := recorder.Resource{Type: "aws:iam/rolePolicy:RolePolicy", Name: "wide", Custom: true, Inputs: props(map[string]any{
		"policy": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject"],"Resource":"*"}]}`,
	})}
	looseTrust := recorder.Resource{Type: "aws:iam/role:Role", Name: "loose", Custom: true, Inputs: props(map[string]any{
		"assumeRolePolicy": `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::1:oidc-provider/x"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringLike":{"x:sub":"system:serviceaccount:production:*"}}}]}`,
	})}
	twin := func(name string) recorder.Resource {
		return recorder.Resource{Type: "kubernetes:core/v1:ServiceAccount", Name: name, Custom: true, Inputs: props(map[string]any{
			"metadata": map[string]any{"name": "vault", "namespace": "production"},
		})}
	}

	cases := []struct {
		name     string
		findings []string
		want     string
	}{
		{"privileged container", PodSecurityFindings([]recorder.Resource{privileged}, "restricted", "latest"), "privileged"},
		{"chart sidecar running as root", PodSecurityFindings([]recorder.Resource{rootSidecar}, "restricted", "latest"), "sidecar"},
		{"plain private key", SecretFindings([]recorder.Resource{plainKey, secretKey}, nil), "ConfigMap leak: .data.key holds a private key"},
		{"secret config value in helm values", SecretFindings([]recorder.Resource{leakedConfig}, []string{"s3cr3t-token"}), "holds a secret config value"},
		{"vault over http", TLSFindings([]recorder.Resource{plainHTTP}), "without TLS"},
		{"store without CA", TLSFindings([]recorder.Resource{storeWithoutCA}), "no caBundle"},
		{"tls_disable in HCL", TLSFindings([]recorder.Resource{tlsOff}), "sets tls_disable"},
		{"tls_disable beside a loopback listener", TLSFindings([]recorder.Resource{exposedPlaintext}), "sets tls_disable"},
		{"key not retained", DurabilityFindings([]recorder.Resource{unprotectedKey}), "retainOnDelete=false"},
		{"vault volumes deleted", DurabilityFindings([]recorder.Resource{tlsOff}), "persistentVolumeClaimRetentionPolicy"},
		{"write on *", LeastPrivilegeFindings([]recorder.Resource{starWrite}), "s3:PutObject on resource *"},
		{"trust with wildcard", LeastPrivilegeFindings([]recorder.Resource{looseTrust}), "want exactly one system:serviceaccount"},
		{"duplicate names", DuplicateObjectFindings([]recorder.Resource{twin("a"), twin("b")}), "ServiceAccount production/vault is claimed by a, b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(strings.Join(tc.findings, "\n"), tc.want) {
				t.Errorf("want a finding containing %q, got:%s", tc.want, JoinViolations(tc.findings))
			}
		})
	}
	if got := TLSFindings([]recorder.Resource{loopback}); len(got) != 0 {
		t.Errorf("a plaintext listener on loopback only, and its loopback client, were flagged:%s", JoinViolations(got))
	}
	if got := SecretFindings([]recorder.Resource{secretKey}, nil); len(got) != 0 {
		t.Errorf("a key inside a secret was flagged:%s", JoinViolations(got))
	}
}
