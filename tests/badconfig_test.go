package tests

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
)

// TestBadConfigFailsBeforeAnythingIsCreated runs the production stack with
// one bad value at a time: each must fail with a message naming the key and
// what is allowed, and register no resource at all.
func TestBadConfigFailsBeforeAnythingIsCreated(t *testing.T) {
	const ns = "secrets-platform:"
	prod := StackConfig(t, "production", nil)
	group := func(key string) map[string]any { return decodeGroup(t, prod, ns+key) }
	with := func(key string, edit func(map[string]any)) map[string]any {
		g := group(key)
		edit(g)
		return map[string]any{ns + key: g}
	}

	cases := []struct {
		name      string
		overrides map[string]any
		want      string
	}{
		{"even voters", with("vault", func(v map[string]any) { v["replicas"] = 4 }),
			"vault.replicas: 4 is even; Raft needs an odd number of voters (3 or 5)"},
		{"too few voters", with("vault", func(v map[string]any) { v["replicas"] = 1 }),
			"vault.replicas: 1 is too few"},
		{"zero voters", with("vault", func(v map[string]any) { v["replicas"] = 0 }),
			"vault.replicas: 0 is even"},
		{"chart version not semver", with("vault", func(v map[string]any) { v["chartVersion"] = "latest" }),
			`vault.chartVersion: "latest" is not a semantic version`},
		{"early renewal not below validity", with("vault", func(v map[string]any) {
			v["tls"] = map[string]any{"validityHours": 720, "earlyRenewalHours": 720}
		}), "vault.tls.earlyRenewalHours: 720 must be above 0 and below vault.tls.validityHours (720)"},
		{"mlock with restricted namespace", with("vault", func(v map[string]any) { v["mlock"] = true }),
			"vault.mlock: true needs the IPC_LOCK capability, which neither the restricted level"},
		{"mlock with baseline namespace", merge(
			with("vault", func(v map[string]any) { v["mlock"] = true }),
			with("guardrails", func(g map[string]any) { g["podSecurityLevel"] = "baseline" }),
		), "vault.mlock: true needs the IPC_LOCK capability, which neither the baseline level"},
		{"break glass on a 1.x image", with("vault", func(v map[string]any) {
			v["breakGlass"] = true
			v["image"] = "hashicorp/vault:1.21.0"
		}), "vault.breakGlass: true needs Vault 2.x, but vault.image is hashicorp/vault:1.21.0 (1.x)"},
		{"unparsable vault memory", with("vault", func(v map[string]any) {
			v["resources"] = map[string]any{"requests": map[string]any{"cpu": "1", "memory": "lots"}, "limits": map[string]any{"cpu": "2", "memory": "2Gi"}}
		}), `vault.resources.requests.memory: "lots" is not a Kubernetes quantity`},
		{"vault request above its limit", with("vault", func(v map[string]any) {
			v["resources"] = map[string]any{"requests": map[string]any{"cpu": "4", "memory": "1Gi"}, "limits": map[string]any{"cpu": "2", "memory": "2Gi"}}
		}), "vault.resources.requests.cpu: 4 is above the limit 2"},
		{"misspelt vault key", with("vault", func(v map[string]any) { v["replica"] = 3 }),
			"vault.replica: is not a setting of this program (set in Pulumi.production.yaml); did you mean vault.replicas?"},
		{"misspelt group", map[string]any{ns + "vualt": map[string]any{"replicas": 5}},
			"secrets-platform:vualt: is not a setting of this program (set in Pulumi.production.yaml); did you mean secrets-platform:vault?"},
		{"group field at the top level", map[string]any{ns + "replicas": 5},
			"secrets-platform:replicas: is not a setting of this program (set in Pulumi.production.yaml); did you mean secrets-platform:externalSecrets.replicas or secrets-platform:vault.replicas, a field of a group?"},
		{"unknown nested field", with("vault", func(v map[string]any) {
			v["tls"] = map[string]any{"validityHour": 100}
		}), "vault.tls.validityHour: is not a setting of this program (set in Pulumi.production.yaml); did you mean vault.tls.validityHours?"},
		{"unknown field in a list item", with("externalSecrets", func(e map[string]any) {
			e["secrets"].([]any)[0].(map[string]any)["refresh"] = "1m"
		}), "externalSecrets.secrets[0].refresh: is not a setting of this program (set in Pulumi.production.yaml)"},
		{"unparsable quota", with("guardrails", func(g map[string]any) {
			g["quota"].(map[string]any)["requests.cpu"] = "eight"
		}), `guardrails.quota.requests.cpu: "eight" is not a Kubernetes quantity`},
		{"quota request above limit", with("guardrails", func(g map[string]any) {
			g["quota"].(map[string]any)["requests.memory"] = "32Gi"
		}), "guardrails.quota.requests.memory: 32Gi is above limits.memory 24Gi"},
		{"unknown pod security level", with("guardrails", func(g map[string]any) { g["podSecurityLevel"] = "privileged" }),
			`guardrails.podSecurityLevel: "privileged" is not allowed; use restricted`},
		{"namespace not a DNS label", map[string]any{ns + "namespace": "Production_1"},
			`namespace: "Production_1" is not a DNS label`},
		{"missing namespace", map[string]any{ns + "namespace": nil}, "namespace: required"},
		{"missing region", map[string]any{"aws:region": nil}, `aws:region: "" is not an AWS region`},
		{"refresh under a minute", with("externalSecrets", func(e map[string]any) { e["refreshInterval"] = "30s" }),
			"externalSecrets.refreshInterval: 30s is under the 1m minimum"},
		{"refresh not a duration", with("externalSecrets", func(e map[string]any) { e["refreshInterval"] = "5 minutes" }),
			`externalSecrets.refreshInterval: "5 minutes" is not a Go duration`},
		{"empty vault path", with("externalSecrets", func(e map[string]any) {
			kv := e["secrets"].([]any)[0].(map[string]any)
			delete(kv, "staticRole")
			kv["vaultKey"] = ""
		}), "externalSecrets.secrets[0].vaultKey: must not be empty"},
		{"vault path climbing out of its prefix", with("externalSecrets", func(e map[string]any) {
			kv := e["secrets"].([]any)[0].(map[string]any)
			delete(kv, "staticRole")
			kv["vaultKey"] = "/database/../postgres"
		}), `externalSecrets.secrets[0].vaultKey: "/database/../postgres" is not a clean path under the store's mount`},
		{"vault path with an empty segment", with("externalSecrets", func(e map[string]any) {
			kv := e["secrets"].([]any)[0].(map[string]any)
			delete(kv, "staticRole")
			kv["vaultKey"] = "database//postgres/"
		}), `externalSecrets.secrets[0].vaultKey: "database//postgres/" is not a clean path`},
		{"no AWS destinations", with("guardrails", func(g map[string]any) { g["awsCidrs"] = []any{} }),
			"guardrails.awsCidrs: required: the destinations of STS, KMS and S3 on 443"},
		{"0.0.0.0/0 beside other AWS ranges", with("guardrails", func(g map[string]any) {
			g["awsCidrs"] = []any{"10.40.0.0/16", "0.0.0.0/0"}
		}), `guardrails.awsCidrs: ["10.40.0.0/16" "0.0.0.0/0"] lists 0.0.0.0/0 with other ranges`},
		{"unpinned vault image", with("vault", func(v map[string]any) { v["image"] = "hashicorp/vault" }),
			`vault.image: "hashicorp/vault" must be pinned to a version tag`},
		{"default service account", with("externalSecrets", func(e map[string]any) { e["serviceAccount"] = "default" }),
			`externalSecrets.serviceAccount: "default" is shared by every pod`},
		{"deletion window 45", with("unseal", func(u map[string]any) { u["deletionWindowDays"] = 45 }),
			"unseal.deletionWindowDays: 45 is outside 7..30"},
		{"retention 0 days", with("backup", func(b map[string]any) { b["retentionDays"] = 0 }),
			"backup.retentionDays: 0 must be at least 1 day"},
		{"invalid cron schedule", with("backup", func(b map[string]any) { b["schedule"] = "every 6 hours" }),
			`backup.schedule: "every 6 hours" is not a cron schedule`},
		{"unpinned image", with("backup", func(b map[string]any) { b["awsCliImage"] = "amazon/aws-cli:latest" }),
			`backup.awsCliImage: "amazon/aws-cli:latest" must be pinned`},
		{"missing OIDC provider", with("kubernetes", func(k map[string]any) { delete(k, "oidcProviderArn") }),
			`kubernetes.oidcProviderArn: "" is not an IAM OIDC provider ARN`},
		{"PGP key that is not one", map[string]any{ns + "bootstrap": map[string]any{
			"recoveryShares": 1, "recoveryThreshold": 1, "pgpKeys": []any{"bm90IGEga2V5"},
		}}, "bootstrap.pgpKeys[0]: not an OpenPGP key"},
		{"PGP keys fewer than shares", map[string]any{ns + "bootstrap": map[string]any{"pgpKeys": []any{"bm90IGEga2V5"}}},
			"bootstrap.pgpKeys: 1 keys for 5 recovery shares"},
		{"threshold above shares", map[string]any{ns + "bootstrap": map[string]any{"recoveryShares": 3, "recoveryThreshold": 4}},
			"bootstrap.recoveryThreshold: 4 must be between 1 and bootstrap.recoveryShares (3)"},
		{"more than 10 shares", map[string]any{ns + "bootstrap": map[string]any{"recoveryShares": 11}},
			"bootstrap.recoveryShares: 11 is outside 1..10"},
		{"Job deadline its waits consume", map[string]any{ns + "bootstrap": map[string]any{"timeoutSeconds": 900}},
			"bootstrap.timeoutSeconds: 900 is under 1200, what the Job may take before it fails with its own message: 3 waits for Vault of up to bootstrap.gateTimeoutSeconds (300) each"},
		{"client role without the prefix", with("externalSecrets", func(e map[string]any) {
			e["store"].(map[string]any)["role"] = "external-secrets"
		}), `externalSecrets.store.role: "external-secrets" must start with bootstrap.namePrefix ("secrets-platform-")`},
		{"unknown access level", map[string]any{ns + "bootstrap": map[string]any{"access": map[string]any{"readonly": []any{"arn:aws:iam::111122223333:role/auditors"}}}},
			`bootstrap.access.readonly: unknown access level "readonly"; the levels are operator, admin`},
		{"access level bound to a user", map[string]any{ns + "bootstrap": map[string]any{"access": map[string]any{"operator": []any{"arn:aws:iam::111122223333:user/alice"}}}},
			`bootstrap.access.operator[0]: "arn:aws:iam::111122223333:user/alice" is not an IAM role ARN such as arn:aws:iam::111122223333:role/platform-oncall`},
		{"access level bound to nobody", map[string]any{ns + "bootstrap": map[string]any{"access": map[string]any{"admin": []any{}}}},
			"bootstrap.access.admin: no IAM role ARNs: give at least one, or remove the level"},
		{"client role named like an access level", with("rollout", func(r map[string]any) { r["vaultRole"] = "secrets-platform-admin" }),
			`rollout.vaultRole: "secrets-platform-admin" is the policy of the admin access level (bootstrap.access)`},
		{"Kubernetes auth at the AWS auth path", func() map[string]any {
			o := with("externalSecrets", func(e map[string]any) { e["store"].(map[string]any)["authMount"] = "aws" })
			o[ns+"backup"] = map[string]any{"vaultAuthMount": "aws"}
			return o
		}(), `externalSecrets.store.authMount: "aws" is where the bootstrap mounts the AWS auth method people log in with`},
		{"two auth mounts", map[string]any{ns + "backup": map[string]any{"vaultAuthMount": "k8s"}},
			`backup.vaultAuthMount: "k8s" differs from externalSecrets.store.authMount ("kubernetes")`},
		{"dr.region is the primary region", map[string]any{ns + "dr": map[string]any{"region": "eu-west-1"}},
			`dr.region: "eu-west-1" is aws:region itself; a copy in the same region does not survive its loss: choose another region`},
		{"dr.region not a region", map[string]any{ns + "dr": map[string]any{"region": "eu-west"}},
			`dr.region: "eu-west" is not an AWS region: a lowercase name such as eu-central-1, or empty for no DR region`},
		{"dr.region in capitals", map[string]any{ns + "dr": map[string]any{"region": "EU-CENTRAL-1"}},
			`dr.region: "EU-CENTRAL-1" is not an AWS region: a lowercase name such as eu-central-1`},
		{"replication time control without dr.region", map[string]any{ns + "dr": map[string]any{"replicationTimeControl": true}},
			"dr.replicationTimeControl: true needs dr.region"},
		{"existing snapshot key without a replica key", with("backup", func(b map[string]any) {
			b["kmsKeyArn"] = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
		}), "backup.replicaKmsKeyArn: required with dr.region when backup.kmsKeyArn names an existing key: a key in eu-central-1"},
		{"replica key in the wrong region", with("backup", func(b map[string]any) {
			b["replicaKmsKeyArn"] = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
		}), `backup.replicaKmsKeyArn: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" is a key of region eu-west-1; the replica bucket is in dr.region eu-central-1`},
		{"drill schedule not cron", with("backup", func(b map[string]any) { b["drill"] = map[string]any{"schedule": "weekly"} }),
			`backup.drill.schedule: "weekly" is not a cron schedule`},
		{"drill shares the snapshot job's service account", with("backup", func(b map[string]any) {
			b["drill"] = map[string]any{"serviceAccount": "vault-snapshot"}
		}), `backup.drill.serviceAccount: "vault-snapshot" is also the snapshot job's`},
		{"existing unseal key with dr.region", with("unseal", func(u map[string]any) {
			u["keyArn"] = "arn:aws:kms:eu-central-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
		}), `dr.region: "eu-central-1" asks for a replica of the unseal key, but unseal.keyArn uses an existing key`},
		{"bad API server CIDR", with("kubernetes", func(k map[string]any) { k["apiServerCidrs"] = []any{"10.0.0.0/33"} }),
			`kubernetes.apiServerCidrs[0]: "10.0.0.0/33" is not a CIDR`},
		{"no API server ClusterIP", with("kubernetes", func(k map[string]any) { delete(k, "apiServerClusterIP") }),
			"kubernetes.apiServerClusterIP: required: the `kubernetes` Service's ClusterIP, one address (kubectl get service kubernetes -n default"},
		{"API server ClusterIP as a CIDR", with("kubernetes", func(k map[string]any) { k["apiServerClusterIP"] = "172.20.0.0/16" }),
			`kubernetes.apiServerClusterIP: "172.20.0.0/16" is a CIDR; give the`},
		{"API server ClusterIP not an address", with("kubernetes", func(k map[string]any) { k["apiServerClusterIP"] = "kubernetes.default.svc" }),
			`kubernetes.apiServerClusterIP: "kubernetes.default.svc" is not an IP address`},
		{"cluster secret store with ESO scoped to its namespace", with("externalSecrets", func(e map[string]any) {
			e["store"].(map[string]any)["cluster"] = true
		}), "externalSecrets.store.cluster: true asks for a ClusterSecretStore, which ESO does not reconcile here"},
		{"rollout image unpinned", map[string]any{ns + "rollout": map[string]any{"kubectlImage": "registry.k8s.io/kubectl:latest"}},
			`rollout.kubectlImage: "registry.k8s.io/kubectl:latest" must be pinned to a version tag`},
		{"rollout voter wait too short", map[string]any{ns + "rollout": map[string]any{"voterTimeoutSeconds": 10}},
			"rollout.voterTimeoutSeconds: 10 is outside 30..3600"},
		{"rollout deadline below its waits", map[string]any{ns + "rollout": map[string]any{"timeoutSeconds": 2000}},
			"rollout.timeoutSeconds: 2000 must exceed the waits of the rollout: the snapshot (backup.activeDeadlineSeconds 1800 + 60) plus vault.replicas (3) times rollout.voterTimeoutSeconds (300), 2760 in all"},
		{"rollout voter wait outlasts its token", merge(
			map[string]any{ns + "rollout": map[string]any{"voterTimeoutSeconds": 900, "timeoutSeconds": 7200}},
		), "rollout.voterTimeoutSeconds: 900 must be shorter than bootstrap.tokenTtl (10m)"},
		{"rollout role without the bootstrap's prefix", map[string]any{ns + "rollout": map[string]any{"vaultRole": "rollout"}},
			`rollout.vaultRole: "rollout" must start with bootstrap.namePrefix ("secrets-platform-")`},
		{"rollout role shared with the snapshot job", map[string]any{ns + "rollout": map[string]any{"vaultRole": "secrets-platform-raft-snapshot"}},
			`rollout.vaultRole: "secrets-platform-raft-snapshot" is another client's role`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := StackConfig(t, "production", tc.overrides)
			mon, err := recorder.Run("production", cfg, stacks.Run)
			if err == nil {
				t.Fatalf("want an error containing %q, the program succeeded", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not say %q:\n%v", tc.want, err)
			}
			if n := len(mon.Resources()); n != 0 {
				t.Fatalf("%d resources were registered before the error; want none:\n%s", n, mon.Tree())
			}
		})
	}
}

func merge(overrides ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, o := range overrides {
		for k, v := range o {
			out[k] = v
		}
	}
	return out
}

// TestOverQuotaFailsWithTheNumbers shows the capacity check naming what the
// platform needs and what the quota allows.
func TestOverQuotaFailsWithTheNumbers(t *testing.T) {
	const key = "secrets-platform:guardrails"
	g := decodeGroup(t, StackConfig(t, "production", nil), key)
	g["quota"].(map[string]any)["requests.storage"] = "40Gi"
	cfg := StackConfig(t, "production", map[string]any{key: g})
	mon, err := recorder.Run("production", cfg, stacks.Run)
	if err == nil {
		t.Fatal("want the capacity check to fail: 3 voters x (10Gi + 5Gi) do not fit 40Gi")
	}
	want := "requests.storage: the platform needs 45Gi but guardrails.quota.requests.storage is 40Gi"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error does not say %q:\n%v", want, err)
	}
	if n := len(mon.Resources()); n != 0 {
		t.Fatalf("%d resources registered; want none", n)
	}
}

// TestUnknownKeysAndBadValuesAreReportedTogether: one run names every
// problem, so fixing a config is not a loop of one error at a time.
func TestUnknownKeysAndBadValuesAreReportedTogether(t *testing.T) {
	const ns = "secrets-platform:"
	cfg := StackConfig(t, "production", map[string]any{ns + "vualt": map[string]any{"replicas": 5}})
	vault := decodeGroup(t, cfg, ns+"vault")
	vault["replicas"], vault["replica"] = 4, 3
	if err := cfg.Set(ns+"vault", vault); err != nil {
		t.Fatal(err)
	}
	mon, err := recorder.Run("production", cfg, stacks.Run)
	if err == nil {
		t.Fatal("the program accepted a misspelt group, a misspelt field and four voters")
	}
	for _, want := range []string{
		"secrets-platform:vualt: is not a setting",
		"vault.replica: is not a setting",
		"vault.replicas: 4 is even",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if n := len(mon.Resources()); n != 0 {
		t.Errorf("%d resources were registered; want none", n)
	}
}

// TestUnknownKeysUnderTheEngine runs the program the way `pulumi up` does:
// the config map comes in the engine's environment variable, not through
// the harness, and a misspelt group must still fail.
func TestUnknownKeysUnderTheEngine(t *testing.T) {
	cfg := StackConfig(t, "production", map[string]any{"secrets-platform:vualt": map[string]any{"replicas": 5}})
	encoded, err := json.Marshal(cfg.Values)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(pulumi.EnvConfig, string(encoded))
	mon := recorder.NewMonitor("production")
	err = pulumi.RunErr(stacks.Run, pulumi.WithMocks(recorder.Project, "production", mon))
	if err == nil || !strings.Contains(err.Error(), "secrets-platform:vualt: is not a setting of this program (set in Pulumi.production.yaml); did you mean secrets-platform:vault?") {
		t.Fatalf("error = %v, want the misspelt group named", err)
	}
	if n := len(mon.Resources()); n != 0 {
		t.Errorf("%d resources were registered; want none", n)
	}
}

// TestCapacityCountsTheRestoreDrill: the drill's pod may run beside
// everything else, so the quota must hold it too.
func TestCapacityCountsTheRestoreDrill(t *testing.T) {
	const key = "secrets-platform:backup"
	b := decodeGroup(t, StackConfig(t, "production", nil), key)
	b["drill"] = map[string]any{"resources": map[string]any{
		"requests": map[string]any{"cpu": "100m", "memory": "13Gi"},
		"limits":   map[string]any{"cpu": "1", "memory": "13Gi"},
	}}
	_, err := recorder.Run("production", StackConfig(t, "production", map[string]any{key: b}), stacks.Run)
	if err == nil {
		t.Fatal("a 13Gi drill beside 3 voters of 1Gi fits a 16Gi memory quota: the drill is not counted")
	}
	for _, want := range []string{"requests.memory: the platform needs", "1 x restore drill job (requests cpu 100m, memory 13Gi)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

// TestCapacityCountsTheTLSReloader: each voter's pod runs Vault and the
// reloader side by side, so the quota must hold both.
func TestCapacityCountsTheTLSReloader(t *testing.T) {
	const key = "secrets-platform:vault"
	v := decodeGroup(t, StackConfig(t, "production", nil), key)
	v["tlsReloader"] = map[string]any{"resources": map[string]any{
		"requests": map[string]any{"cpu": "3", "memory": "16Mi"},
		"limits":   map[string]any{"cpu": "3", "memory": "32Mi"},
	}}
	_, err := recorder.Run("production", StackConfig(t, "production", map[string]any{key: v}), stacks.Run)
	if err == nil {
		t.Fatal("3 voters of 500m + 3 cpu fit a quota of 8 cpu: the reloader is not counted")
	}
	for _, want := range []string{"requests.cpu: the platform needs", "3 x vault (requests cpu 3500m"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}
