package bootstrap_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-platform/secrets-platform/components/bootstrap"
	"github.com/secrets-platform/secrets-platform/components/validate"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/tests"
)

// database is a valid database of the config with two static roles.
func database(t *testing.T) bootstrap.DatabaseConfig {
	t.Helper()
	ca, _ := tests.NewTestCA(t)
	return bootstrap.DatabaseConfig{
		Name: "postgres", Host: "postgres.prod.svc", Database: "app", CACertPEM: ca,
		PodLabels: map[string]string{"app.kubernetes.io/name": "postgres"},
		StaticRoles: []bootstrap.StaticRoleConfig{
			{Name: "app", Username: "app", RotationPeriod: "24h"},
			{Name: "reports", Username: "reports_ro"},
		},
	}
}

// withDatabase is args() with the database and a policy per ExternalSecret
// on ESO's role.
func withDatabase(t *testing.T) *bootstrap.VaultBootstrapArgs {
	a := args()
	a.Setup.Databases = []bootstrap.DatabaseConfig{database(t)}
	a.Setup.Clients[0].Policies = []bootstrap.Policy{{
		Name:  prefix + "eso-postgres-credentials",
		Rules: []bootstrap.Rule{{Path: a.StaticCredsPath("app"), Capabilities: []string{"read"}}},
	}}
	return a
}

// argLines are a `vault write` argument file's lines as key -> value.
func argLines(t *testing.T, text string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.ContainsAny(l, " \t") {
			t.Fatalf("argument line %q is not key=value without spaces (the script splits on whitespace)", l)
		}
		out[k] = v
	}
	return out
}

// TestDatabaseConnectionIsRenderedWithoutAPassword: the connection the Job
// writes names the admin and the CA, verifies the server's name, and holds
// no password (Vault fills in its own through the URL's templates).
func TestDatabaseConnectionIsRenderedWithoutAPassword(t *testing.T) {
	a := withDatabase(t)
	f := files(t, run(t, a))
	conn := argLines(t, f["database-postgres.args"])
	want := map[string]string{
		"plugin_name":             "postgresql-database-plugin",
		"connection_url":          "postgresql://{{username}}:{{password}}@postgres.prod.svc:5432/app?sslmode=verify-full",
		"username":                "vault_admin",
		"tls_ca":                  "@database-postgres-ca.pem",
		"allowed_roles":           "app,reports",
		"password_authentication": "scram-sha-256",
		"verify_connection":       "true",
	}
	for k, v := range want {
		if conn[k] != v {
			t.Errorf("connection %s = %q; want %q", k, conn[k], v)
		}
	}
	if len(conn) != len(want) {
		t.Errorf("the connection has %d arguments (%v); want exactly %v", len(conn), conn, want)
	}
	if got := f["database-postgres-ca.pem"]; strings.TrimSpace(got) != strings.TrimSpace(a.Setup.Databases[0].CACertPEM) {
		t.Errorf("the CA file is not the database's CA:\n%s", got)
	}
	for name, role := range map[string]map[string]string{
		"app":     {"db_name": "postgres", "username": "app", "rotation_period": "86400", "rotation_statements": "@rotation.sql"},
		"reports": {"db_name": "postgres", "username": "reports_ro", "rotation_period": "86400", "rotation_statements": "@rotation.sql"},
	} {
		got := argLines(t, f["static-role-"+name+".args"])
		if len(got) != len(role) {
			t.Errorf("static role %s: %v; want %v", name, got, role)
		}
		for k, v := range role {
			if got[k] != v {
				t.Errorf("static role %s: %s = %q; want %q", name, k, got[k], v)
			}
		}
	}
	if f["rotation.sql"] != bootstrap.RotationStatement+"\n" || !strings.Contains(bootstrap.PostgresAdminSQL, "FUNCTION vault.set_password(role_name name, new_password text)") {
		t.Errorf("the rotation statement %q does not call the function postgres-admin.sql creates", f["rotation.sql"])
	}
	settings := map[string]string{}
	for _, e := range job(t, run(t, a)).Spec.Template.Spec.Containers[0].Env {
		settings[e.Name] = e.Value
	}
	for k, v := range map[string]string{"DATABASE_MOUNT": prefix + "database", "DATABASES": "postgres", "INTAKE_PREFIX": prefix + "database-intake"} {
		if settings[k] != v {
			t.Errorf("setting %s = %q; want %q", k, settings[k], v)
		}
	}
	intake := f["database-postgres.intake"]
	for _, part := range []string{"auth/kubernetes/login role=" + prefix + "database-intake", "kubectl -n prod create token vault-bootstrap-database-intake --audience vault",
		"vault kv put -mount=secret " + prefix + "database-intake/postgres password=-"} {
		if !strings.Contains(intake, part) {
			t.Errorf("the intake command lacks %q:\n%s", part, intake)
		}
	}
}

// TestDatabasePoliciesParseBack: the configurator may manage the database
// mount and consume the one-time entries; the intake identity may only
// create them; ESO's role carries one policy per ExternalSecret, each
// reading exactly one static role's credentials.
func TestDatabasePoliciesParseBack(t *testing.T) {
	a := withDatabase(t)
	mon := run(t, a)
	f := files(t, mon)
	conf := parsePolicy(t, f["policy-"+prefix+bootstrap.ConfiguratorName+".hcl"])
	m := prefix + "database"
	for path, caps := range map[string][]string{
		"sys/mounts/" + m:                                 {"create", "read", "update"},
		m + "/config/*":                                   {"create", "read", "update", "delete"},
		m + "/static-roles/*":                             {"create", "read", "update", "delete"},
		m + "/rotate-root/*":                              {"update"},
		"secret/data/" + prefix + "database-intake/*":     {"read"},
		"secret/metadata/" + prefix + "database-intake/*": {"delete"},
	} {
		if !slices.Equal(conf[path], caps) {
			t.Errorf("the configurator may %v on %s; want %v", conf[path], path, caps)
		}
	}
	for path := range conf {
		if strings.Contains(path, "static-creds") || strings.Contains(path, "rotate-role") || strings.HasPrefix(path, m+"/creds") {
			t.Errorf("the configurator may reach %s; it never needs an application's credentials", path)
		}
	}
	intake := parsePolicy(t, f["policy-"+prefix+"database-intake.hcl"])
	if want := map[string][]string{"secret/data/" + prefix + "database-intake/*": {"create"}}; len(intake) != 1 || !slices.Equal(intake["secret/data/"+prefix+"database-intake/*"], []string{"create"}) {
		t.Errorf("the intake policy grants %v; want exactly %v", intake, want)
	}
	eso := parsePolicy(t, f["policy-"+prefix+"eso-postgres-credentials.hcl"])
	if len(eso) != 1 || !slices.Equal(eso[m+"/static-creds/app"], []string{"read"}) {
		t.Errorf("the ExternalSecret's policy grants %v; want read on %s/static-creds/app only", eso, m)
	}
	role := argLines(t, f["role-"+prefix+"eso.args"])
	if role["token_policies"] != prefix+"eso,"+prefix+"eso-postgres-credentials" {
		t.Errorf("ESO's role carries %q; want its own policy and the ExternalSecret's", role["token_policies"])
	}
	intakeRole := argLines(t, f["role-"+prefix+"database-intake.args"])
	if intakeRole["bound_service_account_names"] != "vault-bootstrap-database-intake" || intakeRole["bound_service_account_namespaces"] != "prod" || intakeRole["audience"] != bootstrap.Audience {
		t.Errorf("the intake role admits %v; want only vault-bootstrap-database-intake in prod, audience vault", intakeRole)
	}
	var sa corev1.ServiceAccount
	tests.Decode(t, tests.MustFind(t, mon, "kubernetes:core/v1:ServiceAccount", "boot-database-intake").Inputs, &sa)
	if sa.Name != "vault-bootstrap-database-intake" || sa.Namespace != "prod" || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("the intake service account is %s/%s automount %v; want vault-bootstrap-database-intake in prod, never mounted", sa.Namespace, sa.Name, sa.AutomountServiceAccountToken)
	}

	// Without databases: no intake identity, no database files.
	f = files(t, run(t, args()))
	for name := range f {
		if strings.HasPrefix(name, "database-") || strings.HasPrefix(name, "static-role-") || strings.Contains(name, "intake") {
			t.Errorf("without databases the ConfigMap holds %s", name)
		}
	}
}

// TestDatabaseConfigErrors: each bad database setting fails with its key,
// the value and what is allowed.
func TestDatabaseConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		edit func(*bootstrap.DatabaseConfig)
		want string
	}{
		{"sslmode require", func(d *bootstrap.DatabaseConfig) { d.SSLMode = "require" },
			`databases[0].sslMode: "require" is not allowed; only verify-full`},
		{"no CA", func(d *bootstrap.DatabaseConfig) { d.CACertPEM = "" },
			"databases[0].caCertPem: required: the PEM of the CA"},
		{"a host with a scheme", func(d *bootstrap.DatabaseConfig) { d.Host = "postgres://db" },
			`databases[0].host: "postgres://db" is not a DNS name or IP address`},
		{"port 0 after defaults is 5432, port 70000 is not", func(d *bootstrap.DatabaseConfig) { d.Port = 70000 },
			"databases[0].port: 70000"},
		{"a quoted database", func(d *bootstrap.DatabaseConfig) { d.Database = `app"; drop` },
			`databases[0].database: "app\"; drop" is not a plain Postgres identifier`},
		{"both pods and CIDRs", func(d *bootstrap.DatabaseConfig) { d.CIDRs = []string{"10.0.0.0/24"} },
			"databases[0]: set podLabels (a database in the namespace) or cidrs (outside the cluster, such as RDS), not both"},
		{"neither pods nor CIDRs", func(d *bootstrap.DatabaseConfig) { d.PodLabels = nil },
			"databases[0]: set podLabels (a database in the namespace) or cidrs"},
		{"every address", func(d *bootstrap.DatabaseConfig) { d.PodLabels, d.CIDRs = nil, []string{"0.0.0.0/0"} },
			`databases[0].cidrs: "0.0.0.0/0" is every address`},
		{"no static roles", func(d *bootstrap.DatabaseConfig) { d.StaticRoles = nil },
			"databases[0].staticRoles: required: at least one role"},
		{"a period under Vault's minimum", func(d *bootstrap.DatabaseConfig) { d.StaticRoles[0].RotationPeriod = "2s" },
			"databases[0].staticRoles[0].rotationPeriod: 2s is under Vault's minimum of 5s"},
		{"a period that is no duration", func(d *bootstrap.DatabaseConfig) { d.StaticRoles[0].RotationPeriod = "daily" },
			`databases[0].staticRoles[0].rotationPeriod: "daily" is not a Go duration`},
		{"the admin as a static role", func(d *bootstrap.DatabaseConfig) { d.StaticRoles[0].Username = "vault_admin" },
			`databases[0].staticRoles[0].username: "vault_admin" is the admin role`},
		{"a role twice", func(d *bootstrap.DatabaseConfig) { d.StaticRoles[1].Name = "app" },
			`databases[0].staticRoles[1].name: "app" is also a static role of database "postgres"`},
		{"an uppercase role name", func(d *bootstrap.DatabaseConfig) { d.StaticRoles[0].Name = "App" },
			`databases[0].staticRoles[0].name: "App" must be lowercase letters`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := database(t)
			tc.edit(&d)
			err := validate.Err("invalid", bootstrap.ValidateDatabases("databases", []bootstrap.DatabaseConfig{d}))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want one containing %q", err, tc.want)
			}
		})
	}
	if err := validate.Err("invalid", bootstrap.ValidateDatabases("databases", []bootstrap.DatabaseConfig{database(t)})); err != nil {
		t.Errorf("a valid database fails: %v", err)
	}
	// The component refuses them too, before registering anything.
	a := withDatabase(t)
	a.Setup.Databases[0].SSLMode = "disable"
	mon, err := recorder.RunComponent(func(ctx *pulumi.Context) error {
		_, err := bootstrap.NewVaultBootstrap(ctx, "boot", a)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "Setup.Databases[0].sslMode") {
		t.Errorf("NewVaultBootstrap with sslmode disable: %v; want the problem named", err)
	}
	if mon != nil && len(mon.Resources()) > 0 {
		t.Errorf("%d resources registered before the error", len(mon.Resources()))
	}
}

// TestRunbookQuotesTheAdminSQL: what the runbook tells the database owner
// to run is the SQL the integration test runs.
func TestRunbookQuotesTheAdminSQL(t *testing.T) {
	doc, err := os.ReadFile(tests.RepoRoot() + "/docs/runbooks/secret-rotation.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```sql\n"+bootstrap.PostgresAdminSQL+"```") {
		t.Error("docs/runbooks/secret-rotation.md does not quote components/bootstrap/postgres-admin.sql verbatim in a sql block")
	}
}
