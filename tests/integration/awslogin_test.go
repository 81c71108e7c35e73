//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/secrets-platform/secrets-platform/components/bootstrap"
	"github.com/secrets-platform/secrets-platform/internal/recorder"
	"github.com/secrets-platform/secrets-platform/stacks"
	"github.com/secrets-platform/secrets-platform/tests"
)

// renderLogins runs the production stack with overrides and returns the
// recording and its vaultLogin output: the login command of each level.
func renderLogins(t *testing.T, overrides map[string]any) (*recorder.Monitor, map[string]string) {
	t.Helper()
	var logins map[string]string
	mon := tests.Run(t, "production", tests.StackConfig(t, "production", overrides), func(ctx *pulumi.Context) error {
		cfg, err := stacks.Load(ctx)
		if err != nil {
			return err
		}
		p, err := stacks.Compose(ctx, cfg)
		if err != nil {
			return err
		}
		resolved, err := tests.Await(ctx, map[string]pulumi.Output{"vaultLogin": p.Outputs()["vaultLogin"]})
		if err != nil {
			return err
		}
		tests.Decode(t, resolved["vaultLogin"].Value, &logins)
		return nil
	})
	if len(logins) == 0 {
		t.Fatal("the stack exports no vaultLogin command")
	}
	return mon, logins
}

// boundRoles are the IAM role names and account the AWS-auth role of a
// level binds, read from its arguments in the render.
func boundRoles(t *testing.T, files map[string]string, role string) (account string, names []string) {
	t.Helper()
	args, ok := files["aws-role-"+role+".args"]
	if !ok {
		t.Fatalf("the render has no AWS-auth role %s", role)
	}
	for _, line := range strings.Split(args, "\n") {
		list, ok := strings.CutPrefix(line, "bound_iam_principal_arn=")
		if !ok {
			continue
		}
		for _, arn := range strings.Split(list, ",") {
			parts := strings.Split(arn, ":") // arn:aws:iam::<account>:role/<name>
			account = parts[4]
			names = append(names, strings.TrimPrefix(parts[5], "role/"))
		}
	}
	if len(names) == 0 {
		t.Fatalf("role %s binds no ARN:\n%s", role, args)
	}
	return account, names
}

// awsLogin runs a login command as a person whose CLI holds id's
// credentials would, in a home of its own, and returns a CLI with the token
// it stored (the CLI's token helper writes ~/.vault-token).
func awsLogin(t *testing.T, c *cluster, bin, command string, id awsIdentity) (cli, string, error) {
	t.Helper()
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	leader := c.leader()
	cmd.Env = append([]string{
		"PATH=" + bin + ":/usr/bin:/bin", "HOME=" + home, "VAULT_ADDR=" + leader.url(), "VAULT_CACERT=" + c.caFile,
	}, id.env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return cli{}, string(out), err
	}
	token, err := os.ReadFile(filepath.Join(home, ".vault-token"))
	if err != nil {
		return cli{}, string(out), err
	}
	return c.cli(leader, strings.TrimSpace(string(token))), string(out), nil
}

// tokenInfo is what `vault token lookup` says of a token.
type tokenInfo struct {
	Data struct {
		Policies    []string `json:"policies"`
		CreationTTL int      `json:"creation_ttl"`
		Accessor    string   `json:"accessor"`
		// Meta is the auth method's metadata: iam_metadata's fields.
		Meta map[string]string `json:"meta"`
	} `json:"data"`
}

// runbookCommand is a CLI command a runbook runs at some access level.
type runbookCommand struct {
	runbook string
	args    []string
	stdin   string
}

// permissionDenied says whether err is Vault's refusal of the token.
func permissionDenied(err error) bool {
	return err != nil && strings.Contains(err.Error(), "permission denied")
}

// TestOperatorsLogInWithTheirAWSRole configures the access levels of the
// production stack with the reconcile step, Vault's AWS auth method pointed
// at a stand-in STS that checks signatures as AWS does, and logs in with
// the stack's own vaultLogin commands: a session of a bound role gets its
// level's policy and nothing else, for accessTokenTtl; an unbound role, the
// same role name in another account, a login signed for another Vault or
// with a wrong secret are refused. Each level runs the runbooks' commands
// it is meant for, and is refused one it is not.
func TestOperatorsLogInWithTheirAWSRole(t *testing.T) {
	t.Parallel()
	start := time.Now()
	overrides := withoutDatabases(nil)
	mon, logins := renderLogins(t, overrides)
	r := renderOf(t, mon)
	rec := reconcileJobOf(t, mon)
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{voters: 1})
	b := newBootstrapRun(t, c)
	root := configuratorByHand(t, c, r, b)

	cfg := bootstrap.DefaultConfig()
	region := containerEnv(rec.containers[bootstrap.ReconcileContainer], "AWS_STS_REGION")
	operatorRole, adminRole := cfg.AccessRole(bootstrap.OperatorLevel), cfg.AccessRole(bootstrap.AdminLevel)
	account, operators := boundRoles(t, rec.files, operatorRole)
	_, admins := boundRoles(t, rec.files, adminRole)
	oncall, admin := newAWSIdentity(t, account, operators[0]), newAWSIdentity(t, account, admins[0])
	unbound := newAWSIdentity(t, account, "platform-developer")
	elsewhere := newAWSIdentity(t, "999988887777", operators[0])
	wrongSecret := oncall
	wrongSecret.creds.SecretAccessKey = randomHex(t, 20)
	sts := newSTSStandIn(t, region, oncall, admin, unbound, elsewhere)

	out, err := b.step(rec, bootstrap.ReconcileContainer, c.leader().url(), "AWS_STS_ENDPOINT="+sts.srv.URL)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	for _, want := range []string{"auth method aws/", "role " + operatorRole, "role " + adminRole} {
		if !strings.Contains(out, "drift corrected: "+want) {
			t.Errorf("the first run does not log %q", want)
		}
	}
	ttl := 0
	for _, line := range strings.Split(rec.files["aws-role-"+operatorRole+".args"], "\n") {
		if v, ok := strings.CutPrefix(line, "token_ttl="); ok {
			if ttl, err = strconv.Atoi(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	root.must(t, "kv", "put", "-mount=secret", "database/postgres", "username=app", "password=before")

	// Logins: the bound sessions get exactly their level.
	sessions := map[string]cli{}
	for level, id := range map[string]awsIdentity{bootstrap.OperatorLevel: oncall, bootstrap.AdminLevel: admin} {
		command := logins[level]
		v, out, err := awsLogin(t, c, b.bin, command, id)
		if err != nil {
			t.Fatalf("%s cannot log in with %q: %v\n%s", id.sessionARN(), command, err, out)
		}
		var info tokenInfo
		v.mustJSON(t, &info, "token", "lookup", "-format=json")
		want := []string{"default", cfg.AccessRole(level)}
		if slices.Sort(info.Data.Policies); !slices.Equal(info.Data.Policies, want) {
			t.Errorf("%s's token carries policies %v; want exactly %v", level, info.Data.Policies, want)
		}
		if info.Data.CreationTTL != ttl {
			t.Errorf("%s's token lives %ds; want the role's token_ttl, %ds", level, info.Data.CreationTTL, ttl)
		}
		if got := info.Data.Meta["client_arn"]; got != id.sessionARN() {
			t.Errorf("%s's token names the session %q; want %s, so that the audit log names the person", level, got, id.sessionARN())
		}
		sessions[level] = v
	}
	for what, attempt := range map[string]struct {
		id            awsIdentity
		command, want string
	}{
		"a role no level binds":                       {unbound, logins[bootstrap.OperatorLevel], "does not belong to the role"},
		"the operators' role name in another account": {elsewhere, logins[bootstrap.OperatorLevel], "does not belong to the role"},
		"the operator's session at the admin level":   {oncall, logins[bootstrap.AdminLevel], "does not belong to the role"},
		"a request signed with a wrong secret":        {wrongSecret, logins[bootstrap.OperatorLevel], "SignatureDoesNotMatch"},
		"a request signed for another Vault":          {oncall, replaceArg(t, logins[bootstrap.OperatorLevel], "header_value=", "vault.elsewhere.svc"), "X-Vault-AWS-IAM-Server-ID"},
		"a request signed for the global endpoint":    {oncall, strings.Replace(logins[bootstrap.OperatorLevel], "AWS_STS_REGIONAL_ENDPOINTS=regional ", "", 1), "addressed to"},
	} {
		_, out, err := awsLogin(t, c, b.bin, attempt.command, attempt.id)
		if err == nil || !strings.Contains(out, attempt.want) {
			t.Errorf("%s: %q as %s: %v; want refused with %q\n%s", what, attempt.command, attempt.id.sessionARN(), err, attempt.want, out)
		}
	}

	// What each level runs, by runbook, and what it is refused.
	dir := t.TempDir()
	operatorRuns := []runbookCommand{
		{"raft-and-leadership.md", []string{"operator", "raft", "list-peers"}, ""},
		{"raft-and-leadership.md", []string{"operator", "raft", "autopilot", "state"}, ""},
		{"backup-and-restore.md", []string{"operator", "raft", "snapshot", "save", filepath.Join(dir, "operator.snap")}, ""},
		{"backup-and-restore.md", []string{"kv", "metadata", "get", "-mount=secret", "database/postgres"}, ""},
		{"README.md", []string{"audit", "list"}, ""},
		{"README.md", []string{"token", "lookup"}, ""},
		{"install-and-init.md", []string{"policy", "read", cfg.ConfiguratorRole()}, ""},
		{"README.md", []string{"read", "auth/aws/role/" + operatorRole}, ""},
	}
	scratch := `path "sys/health" { capabilities = ["read"] }`
	adminRuns := append(slices.Clone(operatorRuns),
		runbookCommand{"backup-and-restore.md", []string{"operator", "raft", "snapshot", "save", filepath.Join(dir, "admin.snap")}, ""},
		runbookCommand{"backup-and-restore.md", []string{"operator", "raft", "snapshot", "restore", "-force", filepath.Join(dir, "admin.snap")}, ""},
		runbookCommand{"install-and-init.md", []string{"list", "auth/token/accessors"}, ""},
		runbookCommand{"install-and-init.md", []string{"policy", "write", cfg.NamePrefix + "scratch", "-"}, scratch},
		runbookCommand{"install-and-init.md", []string{"policy", "delete", cfg.NamePrefix + "scratch"}, ""},
		runbookCommand{"secret-rotation.md", []string{"kv", "patch", "-mount=secret", "database/postgres", "password=-"}, "after"},
	)
	refused := map[string][]runbookCommand{
		bootstrap.OperatorLevel: {
			{"backup-and-restore.md (admin)", []string{"operator", "raft", "snapshot", "restore", "-force", filepath.Join(dir, "operator.snap")}, ""},
			{"install-and-init.md (admin)", []string{"policy", "write", cfg.NamePrefix + "scratch", "-"}, scratch},
			{"a secret's value", []string{"kv", "get", "-mount=secret", "database/postgres"}, ""},
		},
		bootstrap.AdminLevel: {
			{"a secret's value", []string{"kv", "get", "-mount=secret", "database/postgres"}, ""},
			{"a mount outside the configuration", []string{"secrets", "enable", "-path=elsewhere", "kv"}, ""},
		},
	}
	for level, runs := range map[string][]runbookCommand{bootstrap.OperatorLevel: operatorRuns, bootstrap.AdminLevel: adminRuns} {
		v := sessions[level]
		for _, cmd := range runs {
			if _, err := v.run(cmd.stdin, cmd.args...); err != nil {
				t.Errorf("%s cannot run %s's `vault %s`: %v", level, cmd.runbook, strings.Join(cmd.args, " "), err)
			}
		}
		for _, cmd := range refused[level] {
			if _, err := v.run(cmd.stdin, cmd.args...); !permissionDenied(err) {
				t.Errorf("%s ran `vault %s` (%s): %v; want permission denied", level, strings.Join(cmd.args, " "), cmd.runbook, err)
			}
		}
	}
	if !auditNames(t, b.auditFile, "sys/storage/raft/configuration", oncall.sessionARN()) {
		t.Errorf("the audit log has no request for sys/storage/raft/configuration naming %s", oncall.sessionARN())
	}
	if got := strings.TrimSpace(root.must(t, "kv", "get", "-mount=secret", "-field=password", "database/postgres")); got != "after" {
		t.Errorf("the admin's kv patch left the password %q; want after", got)
	}
	// What needs a database or another voter here: Vault's own answer.
	for path, want := range map[string]string{
		cfg.DatabaseMount() + "/rotate-role/app": "update",
		"sys/storage/raft/remove-peer":           "sudo, update",
	} {
		if got := capabilities(t, sessions[bootstrap.AdminLevel], path); got != want {
			t.Errorf("admin's capabilities on %s: %q; want %q", path, got, want)
		}
		if got := capabilities(t, sessions[bootstrap.OperatorLevel], path); got != "deny" {
			t.Errorf("operator's capabilities on %s: %q; want deny", path, got)
		}
	}
	// A leftover token found and revoked by accessor (install-and-init.md),
	// then the leader stepped down (upgrades.md): the admin's last steps.
	var op tokenInfo
	sessions[bootstrap.OperatorLevel].mustJSON(t, &op, "token", "lookup", "-format=json")
	adm := sessions[bootstrap.AdminLevel]
	adm.must(t, "token", "lookup", "-accessor", op.Data.Accessor)
	adm.must(t, "token", "revoke", "-accessor", op.Data.Accessor)
	if _, err := sessions[bootstrap.OperatorLevel].run("", "token", "lookup"); err == nil {
		t.Error("the operator's token still works after the admin revoked it by accessor")
	}
	adm.must(t, "operator", "step-down")
	t.Logf("AWS login test took %s", time.Since(start).Round(time.Second))
}

// auditNames says whether the file audit log at path holds a request for
// apiPath made with a token whose metadata names the session ARN.
func auditNames(t *testing.T, path, apiPath, session string) bool {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		var entry struct {
			Type string
			Auth struct {
				Metadata map[string]string
			}
			Request struct {
				Path string
			}
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Type == "request" &&
			entry.Request.Path == apiPath && entry.Auth.Metadata["client_arn"] == session {
			return true
		}
	}
	return false
}

// replaceArg replaces the value of the argument starting with key in a
// command line.
func replaceArg(t *testing.T, command, key, value string) string {
	t.Helper()
	fields := strings.Fields(command)
	for i, f := range fields {
		if strings.HasPrefix(f, key) {
			fields[i] = key + value
			return strings.Join(fields, " ")
		}
	}
	t.Fatalf("%q has no %s argument", command, key)
	return ""
}
