package tests

import (
	"encoding/json"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
)

// TestBadDatabaseConfigFailsBeforeAnythingIsCreated: the rules that relate
// the databases to the ExternalSecrets that deliver them and to the
// bootstrap, each with its key, its value and why.
func TestBadDatabaseConfigFailsBeforeAnythingIsCreated(t *testing.T) {
	const ns = "secrets-platform:"
	prod := StackConfig(t, "production", nil)
	var dbs []map[string]any
	if err := json.Unmarshal([]byte(prod.Values[ns+"databases"]), &dbs); err != nil || len(dbs) != 1 {
		t.Fatalf("the production stack's databases: %v (%d)", err, len(dbs))
	}
	withDB := func(edit func(db map[string]any)) map[string]any {
		var copied []map[string]any
		raw, _ := json.Marshal(dbs)
		_ = json.Unmarshal(raw, &copied)
		edit(copied[0])
		return map[string]any{ns + "databases": copied}
	}
	withSecrets := func(secrets ...map[string]any) map[string]any {
		g := decodeGroup(t, prod, ns+"externalSecrets")
		list := make([]any, len(secrets))
		for i, s := range secrets {
			list[i] = s
		}
		g["secrets"] = list
		return map[string]any{ns + "externalSecrets": g}
	}
	cases := []struct {
		name      string
		overrides map[string]any
		want      string
	}{
		{"rotation within a few refreshes", withDB(func(db map[string]any) {
			db["staticRoles"].([]any)[0].(map[string]any)["rotationPeriod"] = "10m"
		}), `databases[0].staticRoles[0].rotationPeriod: 10m is under 3 refresh intervals (5m) of ExternalSecret "postgres-credentials", which delivers it: after each rotation Postgres refuses the delivered password until ESO's next refresh, up to 5m later`},
		{"a static role that does not exist", withSecrets(map[string]any{"name": "postgres-credentials", "staticRole": "billing"}),
			`externalSecrets.secrets[0].staticRole: "billing" is not a static role of databases[].staticRoles (they are: app)`},
		{"one role, two ExternalSecrets", withSecrets(
			map[string]any{"name": "postgres-credentials", "staticRole": "app"},
			map[string]any{"name": "postgres-credentials-copy", "staticRole": "app"}),
			`externalSecrets.secrets[1].staticRole: "app" is already delivered by ExternalSecret "postgres-credentials"`},
		{"KV and a static role at once", withSecrets(map[string]any{"name": "postgres-credentials", "staticRole": "app", "vaultKey": "database/postgres"}),
			"externalSecrets.secrets[0]: set vaultKey (a KV entry) or staticRole (a database role's rotating credentials), not both"},
		{"a property static credentials do not have", withSecrets(map[string]any{"name": "postgres-credentials", "staticRole": "app",
			"data": []any{map[string]any{"property": "user", "secretKey": "user"}}}),
			`externalSecrets.secrets[0].data[0].property: "user" is not a field of static credentials; Vault answers username, password`},
		{"sslmode require", withDB(func(db map[string]any) { db["sslMode"] = "require" }),
			`databases[0].sslMode: "require" is not allowed; only verify-full`},
		{"the database both in and out of the cluster", withDB(func(db map[string]any) { db["cidrs"] = []any{"10.40.9.0/24"} }),
			"databases[0]: set podLabels (a database in the namespace) or cidrs (outside the cluster, such as RDS), not both"},
		{"no time to wait for the admin password", map[string]any{ns + "bootstrap": map[string]any{"timeoutSeconds": 1200}},
			"bootstrap.timeoutSeconds: 1200 is under 1500 with 1 database(s): the Job may also wait up to bootstrap.gateTimeoutSeconds (300) for each database's one-time admin password"},
		{"an unknown key of a database", withDB(func(db map[string]any) { db["sslRootCert"] = "/etc/ca.pem" }),
			"databases[0].sslRootCert: is not a setting of this program"},
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
				t.Fatalf("%d resources were registered before the error; want none", n)
			}
		})
	}
}

// TestProductionDeliversPostgresCredentialsFromVaultsDatabaseEngine: the
// production stack wires one database through all three components: the
// bootstrap's connection and static role, a policy for the ExternalSecret
// on ESO's role, the database store, and Vault's flow to the Postgres pods
// that the postgres-clients allow names.
func TestProductionDeliversPostgresCredentialsFromVaultsDatabaseEngine(t *testing.T) {
	mon := runStack(t, "production")
	var files map[string]string
	for _, r := range mon.ByType("kubernetes:core/v1:ConfigMap") {
		if data, ok := PlainMap(r.Inputs)["data"].(map[string]any); ok && data["bootstrap.sh"] != nil {
			files = map[string]string{}
			for k, v := range data {
				files[k], _ = v.(string)
			}
		}
	}
	for _, name := range []string{"database-postgres.args", "static-role-app.args", "policy-secrets-platform-external-secrets-postgres-credentials.hcl", "policy-secrets-platform-database-intake.hcl"} {
		if files[name] == "" {
			t.Errorf("the bootstrap's ConfigMap has no %s", name)
		}
	}
	if !strings.Contains(files["role-secrets-platform-external-secrets.args"], "token_policies=secrets-platform-external-secrets-postgres-credentials") {
		t.Errorf("ESO's role does not carry the ExternalSecret's policy:\n%s", files["role-secrets-platform-external-secrets.args"])
	}
	if _, ok := mon.Find("kubernetes:external-secrets.io/v1:SecretStore", "external-secrets-database-store"); !ok {
		t.Error("no database store")
	}
	var egress, ingress networkingv1.NetworkPolicy
	Decode(t, MustFind(t, mon, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "production-vault-to-database-postgres-egress").Inputs, &egress)
	Decode(t, MustFind(t, mon, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "production-vault-to-database-postgres-ingress").Inputs, &ingress)
	to := egress.Spec.Egress[0]
	if len(to.To) != 1 || to.To[0].PodSelector == nil || to.To[0].PodSelector.MatchLabels["app.kubernetes.io/name"] != "postgres" || to.Ports[0].Port.IntValue() != 5432 {
		t.Errorf("Vault's egress to Postgres is %+v; want the pods app.kubernetes.io/name=postgres on 5432", to)
	}
	if ingress.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "postgres" {
		t.Errorf("the ingress side selects %v; want the Postgres pods", ingress.Spec.PodSelector.MatchLabels)
	}
}
