//go:build integration

package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/secrets-platform/secrets-platform/components/bootstrap"
	"github.com/secrets-platform/secrets-platform/stacks"
)

// staticCreds is Vault's answer at <mount>/static-creds/<role>.
type staticCreds struct {
	Data struct {
		Username          string `json:"username"`
		Password          string `json:"password"`
		LastVaultRotation string `json:"last_vault_rotation"`
	} `json:"data"`
	LeaseID string `json:"lease_id"`
}

// readAsESO reads path the way ESO's database store does: one GET of the
// path itself (a version v1 store whose path is the mount), with ESO's
// token.
func readAsESO(t *testing.T, eso cli, path string) staticCreds {
	t.Helper()
	var c staticCreds
	eso.mustJSON(t, &c, "read", "-format=json", path)
	if c.Data.Username == "" || c.Data.Password == "" {
		t.Fatalf("%s answered no username or password", path)
	}
	return c
}

// databaseOverrides is the stack config of the test's database: the
// production stack's postgres-credentials from static role app, a second
// ExternalSecret from static role reports, and a KV ExternalSecret beside
// them.
func databaseOverrides(pg *postgresServer, withReports bool) map[string]any {
	roles := []any{map[string]any{"name": "app", "username": "app", "rotationPeriod": "24h"}}
	secrets := []any{
		map[string]any{"name": "postgres-credentials", "staticRole": "app"},
		map[string]any{"name": "legacy", "vaultKey": "database/legacy", "data": []any{map[string]any{"property": "password", "secretKey": "password"}}},
	}
	if withReports {
		roles = append(roles, map[string]any{"name": "reports", "username": "reports", "rotationPeriod": "1h"})
		secrets = append(secrets, map[string]any{"name": "reports-credentials", "staticRole": "reports"})
	}
	return map[string]any{
		"secrets-platform:databases": []any{map[string]any{
			"name": "postgres", "host": "127.0.0.1", "port": pg.port, "database": "app",
			"caCertPem": pg.caPEM, "cidrs": []any{"127.0.0.1/32"}, "staticRoles": roles,
		}},
		"secrets-platform:externalSecrets": map[string]any{"secrets": secrets},
	}
}

// TestDatabaseCredentialsRotateAndReachESO runs the bootstrap's configure
// step, as the Job runs it from the render, against a real Vault and a real
// Postgres 15 that accepts only TLS: the admin password enters once through
// the one-time entry and is rotated at once, the connection verifies the
// server's certificate against the configured CA, the static role rotates
// on its period (shortened to seconds) and ESO's token reads exactly what
// its ExternalSecrets deliver; removing a role removes it and its policy.
func TestDatabaseCredentialsRotateAndReachESO(t *testing.T) {
	t.Parallel()
	start := time.Now()
	pg := startPostgres(t)
	const adminPassword = "initial-admin-password"
	pg.exec(t, "postgres", "CREATE DATABASE app")
	// What the database owner runs once (postgres-admin.sql, quoted in the
	// runbook), the admin's password as `\password vault_admin` would set
	// it, and the application's roles.
	pg.exec(t, "app", bootstrap.PostgresAdminSQL)
	pg.exec(t, "app", fmt.Sprintf(`ALTER ROLE vault_admin PASSWORD '%s';
		CREATE ROLE app LOGIN PASSWORD 'app-before-vault'; GRANT vault_rotated TO app;
		CREATE ROLE reports LOGIN PASSWORD 'reports-before-vault'; GRANT vault_rotated TO reports;
		CREATE ROLE outsider LOGIN PASSWORD 'outsider-password';`, adminPassword))
	// The admin changes only members of vault_rotated.
	if err := pg.loginError("app", "vault_admin", adminPassword); err != nil {
		t.Fatalf("vault_admin cannot log in before Vault has it: %v", err)
	}
	admin, err := pg.connect("app", "vault_admin", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(t.Context(), "SELECT vault.set_password('outsider', 'x')"); err == nil || !strings.Contains(err.Error(), "not a direct member of vault_rotated") {
		t.Errorf("vault.set_password changed a role outside vault_rotated: %v", err)
	}
	if _, err := admin.Exec(t.Context(), "ALTER ROLE app PASSWORD 'x'"); err == nil {
		t.Error("vault_admin alters another role directly; it must hold no CREATEROLE")
	}
	_ = admin.Close(t.Context())

	r := renderWith(t, databaseOverrides(pg, true))
	cfg := bootstrap.DefaultConfig()
	mount, ns := cfg.DatabaseMount(), r.namespace
	// The only change to the render: app's period, from 24h to seconds.
	const period = 6
	files := r.bootstrap.files
	if want := "rotation_period=86400\n"; !strings.Contains(files["static-role-app.args"], want) {
		t.Fatalf("static-role-app.args does not carry %q:\n%s", want, files["static-role-app.args"])
	}
	files["static-role-app.args"] = strings.Replace(files["static-role-app.args"], "rotation_period=86400", fmt.Sprintf("rotation_period=%d", period), 1)
	for _, secret := range []string{adminPassword, "app-before-vault"} {
		for name, content := range files {
			if strings.Contains(content, secret) {
				t.Fatalf("the Job's ConfigMap file %s holds a password", name)
			}
		}
	}

	c := newCluster(t, r, startTransitSeal(t), clusterOptions{voters: 1})
	b := newBootstrapRun(t, c)
	if failed, out := b.untilConfigure(r.bootstrap); failed != "" {
		t.Fatalf("bootstrap.sh %s failed:\n%s", failed, out)
	}
	c.waitUnsealed(c.nodes[0])

	// First install: the configure step waits for the admin password; the
	// operator writes it with the intake identity's token, once.
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := b.step(r.bootstrap, "configure", c.leader().url(), "INTAKE_POLL=1")
		done <- result{out, err}
	}()
	intake := files["database-postgres.intake"]
	for _, part := range []string{"role=" + cfg.IntakeRole(), "create token " + cfg.IntakeServiceAccount(), "-n " + ns, "-mount=secret " + cfg.IntakeKey("postgres") + " password=-"} {
		if !strings.Contains(intake, part) {
			t.Fatalf("the intake command does not say %q:\n%s", part, intake)
		}
	}
	// Once the Job looked for the connection (the audit log shows the
	// read), it waits for the entry: the first install's order.
	deadline := time.Now().Add(60 * time.Second)
	for {
		audit, _ := os.ReadFile(b.auditFile)
		if strings.Contains(string(audit), `"path":"`+mount+`/config/postgres"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the configure step never looked for the connection")
		}
		time.Sleep(200 * time.Millisecond)
	}
	operator := b.mustLogin(cfg.IntakeRole(), ns, cfg.IntakeServiceAccount())
	if _, err := operator.run(adminPassword+"\n", "kv", "put", "-mount=secret", cfg.IntakeKey("postgres"), "password=-"); err != nil {
		t.Fatalf("the operator's one command: %v", err)
	}
	if _, err := operator.run("", "kv", "get", "-mount=secret", cfg.IntakeKey("postgres")); err == nil {
		t.Error("the intake identity reads the admin password back")
	}
	if _, err := operator.run("other\n", "kv", "put", "-mount=secret", cfg.IntakeKey("postgres"), "password=-"); err == nil {
		t.Error("the intake identity overwrites an entry the bootstrap has not consumed")
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("configure: %v", res.err)
	}
	for _, want := range []string{"database postgres awaits its admin password", "connection created with the one-time admin password", "static role app written", "static role reports written"} {
		if !strings.Contains(res.out, want) {
			t.Errorf("the configure log does not say %q", want)
		}
	}
	if strings.Contains(res.out, adminPassword) {
		t.Error("the admin password is in the Job's log")
	}

	// Only Vault knows the admin password now; its one-time entry is gone.
	if err := pg.loginError("app", "vault_admin", adminPassword); !refusedPassword(err) {
		t.Errorf("after rotate-root the initial admin password: %v; want Postgres to refuse it (28P01)", err)
	}
	conf := b.mustLogin(cfg.ConfiguratorRole(), ns, r.bootstrap.serviceAccount)
	if out, err := conf.run("", "kv", "get", "-mount=secret", cfg.IntakeKey("postgres")); err == nil {
		t.Errorf("the one-time entry survives the bootstrap:\n%s", out)
	}
	// Vault's sessions come over TLS, and the connection checks the
	// server's certificate against the CA of the config: another CA fails.
	if n, tls := pg.tlsSessions(t, "vault_admin"); n == 0 || tls != n {
		t.Errorf("vault_admin has %d sessions, %d of them over TLS; want some, all over TLS", n, tls)
	}
	var connection struct {
		Data struct {
			ConnectionDetails map[string]any `json:"connection_details"`
		} `json:"data"`
	}
	conf.mustJSON(t, &connection, "read", "-format=json", mount+"/config/postgres")
	if u, _ := connection.Data.ConnectionDetails["connection_url"].(string); !strings.HasSuffix(u, "sslmode=verify-full") || !strings.Contains(u, "{{password}}") {
		t.Errorf("the connection URL is %q; want a templated password and sslmode=verify-full", u)
	}
	otherCA, _, _ := serverCertificate(t, "127.0.0.1")
	if _, err := conf.run(otherCA, "write", mount+"/config/postgres", "tls_ca=-"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("the connection verified with a CA that did not sign the server's certificate: %v", err)
	}

	// ESO's token: exactly the static credentials its ExternalSecrets
	// deliver, and the KV entry beside them.
	eso := b.mustLogin(esoRole, ns, "external-secrets-vault-auth")
	for path, want := range map[string]string{
		mount + "/static-creds/app":                "read",
		mount + "/static-creds/reports":            "read",
		mount + "/static-creds/other":              "deny",
		mount + "/creds/app":                       "deny",
		mount + "/config/postgres":                 "deny",
		mount + "/static-roles/app":                "deny",
		mount + "/rotate-role/app":                 "deny",
		mount + "/rotate-root/postgres":            "deny",
		"secret/data/database/legacy":              "read",
		"secret/data/" + cfg.IntakeKey("postgres"): "deny",
	} {
		if got := capabilities(t, eso, path); got != want {
			t.Errorf("ESO may %q on %s; want %q", got, path, want)
		}
	}
	if _, err := eso.run("", "read", mount+"/config/postgres"); err == nil {
		t.Error("ESO reads the connection")
	}
	first := readAsESO(t, eso, mount+"/static-creds/app")
	if first.LeaseID != "" {
		t.Errorf("static credentials came with lease %q; ESO's read must create none", first.LeaseID)
	}
	if first.Data.Username != "app" {
		t.Errorf("static-creds/app is for %q; want app", first.Data.Username)
	}
	if err := pg.loginError("app", "app", "app-before-vault"); !refusedPassword(err) {
		t.Errorf("app's password from before Vault: %v; want refused once Vault owns the role", err)
	}
	if err := pg.loginError("app", "app", first.Data.Password); err != nil {
		t.Errorf("the password ESO reads does not log in: %v", err)
	}

	// The period passes: a new password; Postgres refuses the old one.
	var next staticCreds
	deadline = time.Now().Add(4 * period * time.Second)
	for {
		next = readAsESO(t, eso, mount+"/static-creds/app")
		if next.Data.Password != first.Data.Password {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the password did not rotate within %ds (period %ds)", 4*period, period)
		}
		time.Sleep(time.Second)
	}
	if next.Data.LastVaultRotation == first.Data.LastVaultRotation {
		t.Errorf("last_vault_rotation stayed %s across a rotation", next.Data.LastVaultRotation)
	}
	if err := pg.loginError("app", "app", first.Data.Password); !refusedPassword(err) {
		t.Errorf("the rotated-out password: %v; want refused", err)
	}
	if err := pg.loginError("app", "app", next.Data.Password); err != nil {
		// A second rotation may have happened between the read and the login.
		if latest := readAsESO(t, eso, mount+"/static-creds/app"); pg.loginError("app", "app", latest.Data.Password) != nil {
			t.Errorf("the rotated password does not log in: %v", err)
		}
	}

	// reports and its ExternalSecret leave the config: the static role,
	// the policy and ESO's grant go; app stays, KV stays.
	reports := readAsESO(t, eso, mount+"/static-creds/reports")
	after := renderWith(t, databaseOverrides(pg, false))
	after.bootstrap.files["static-role-app.args"] = files["static-role-app.args"]
	if out, err := b.step(after.bootstrap, "configure", c.leader().url()); err != nil || !strings.Contains(out, "static role reports removed") {
		t.Fatalf("configure without reports: %v", err)
	}
	conf = b.mustLogin(cfg.ConfiguratorRole(), ns, r.bootstrap.serviceAccount)
	if out, err := conf.run("", "read", mount+"/static-roles/reports"); err == nil {
		t.Errorf("static role reports survives its removal from the config:\n%s", out)
	}
	policies := conf.must(t, "policy", "list")
	gone := stacksPolicy("reports-credentials")
	if strings.Contains(policies, gone) {
		t.Errorf("policy %s survives its ExternalSecret's removal", gone)
	}
	if !strings.Contains(policies, stacksPolicy("postgres-credentials")) {
		t.Errorf("policy %s is gone; postgres-credentials stayed in the config", stacksPolicy("postgres-credentials"))
	}
	eso = b.mustLogin(esoRole, ns, "external-secrets-vault-auth")
	if got := capabilities(t, eso, mount+"/static-creds/reports"); got != "deny" {
		t.Errorf("ESO may still %q on the removed role's credentials", got)
	}
	if got := capabilities(t, eso, "secret/data/database/legacy"); got != "read" {
		t.Errorf("ESO may %q on the KV ExternalSecret's path; want read", got)
	}
	readAsESO(t, eso, mount+"/static-creds/app")
	// Vault no longer manages reports: its last password stays as it was.
	if err := pg.loginError("app", "reports", reports.Data.Password); err != nil {
		t.Errorf("reports' last password no longer logs in after Vault let go of it: %v", err)
	}
	t.Logf("database test took %s", time.Since(start).Round(time.Millisecond))
}

// stacksPolicy is the policy name of an ExternalSecret of a static role.
func stacksPolicy(externalSecret string) string {
	cfg := &stacks.Config{}
	cfg.ExternalSecrets.Store.Role = esoRole
	return stacks.DatabaseSecretPolicy(cfg, externalSecret)
}

// esoRole is the Vault role of ESO's stores in the production stack.
var esoRole = bootstrap.DefaultConfig().NamePrefix + "external-secrets"

// withoutDatabases is the production stack as it was before Vault owned
// the database credentials: no databases, postgres-credentials from KV.
// The tests of the bootstrap's other steps use it; with a database, the
// configure step would wait for its one-time admin password.
func withoutDatabases(overrides map[string]any) map[string]any {
	out := map[string]any{
		"secrets-platform:databases": nil,
		"secrets-platform:externalSecrets": map[string]any{"secrets": []any{map[string]any{
			"name": "postgres-credentials", "vaultKey": "database/postgres",
			"data": []any{
				map[string]any{"property": "username", "secretKey": "username"},
				map[string]any{"property": "password", "secretKey": "password"},
			},
		}}},
	}
	for k, v := range overrides {
		out[k] = v
	}
	return out
}
