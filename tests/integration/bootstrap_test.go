//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/components/bootstrap"
)

// awsStandIn replaces the AWS CLI of the publish step. It records every
// call's arguments, the file KMS was asked to encrypt, and each uploaded
// file with its destination; its "ciphertext" is the plaintext rotated and
// base64-encoded, so no share survives it in clear.
const awsStandIn = `#!/bin/sh
set -eu
printf '%s\n' "$*" >>"$AWS_RECORD/calls"
case "$1 $2" in
"kms encrypt")
  for a in "$@"; do case $a in fileb://*) src=${a#fileb://} ;; esac; done
  cp "$src" "$AWS_RECORD/encrypted"
  tr 'A-Za-z0-9' 'N-ZA-Mn-za-m5-90-4' <"$src" | base64 | tr -d '\n'
  ;;
"s3 cp")
  cp "$3" "$AWS_RECORD/uploaded"
  echo "$4" >"$AWS_RECORD/uploaded-to"
  ;;
*) echo "unexpected aws call: $*" >&2; exit 1 ;;
esac
`

// bootstrapRun runs the Job's steps from a render against a cluster, with
// the pod's paths and addresses mapped onto this machine.
type bootstrapRun struct {
	t        *testing.T
	c        *cluster
	reviewer *tokenReviewer
	// record is the AWS stand-in's record; bin holds vault and aws.
	record, bin, secrets, auditFile string
}

// newBootstrapRun prepares the stand-ins the steps need: the AWS CLI, the
// API server's TokenReview, and the memory-backed secrets directory.
func newBootstrapRun(t *testing.T, c *cluster) *bootstrapRun {
	t.Helper()
	dir := t.TempDir()
	b := &bootstrapRun{
		t: t, c: c, reviewer: newTokenReviewer(t),
		record: filepath.Join(dir, "aws"), bin: filepath.Join(dir, "bin"),
		secrets: filepath.Join(dir, "secrets"), auditFile: filepath.Join(dir, "audit", "vault_audit.log"),
	}
	for _, d := range []string{b.record, b.bin, b.secrets, filepath.Dir(b.auditFile)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(c.bin, filepath.Join(b.bin, "vault")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.bin, "aws"), []byte(awsStandIn), 0o700); err != nil {
		t.Fatal(err)
	}
	return b
}

// step runs `bootstrap.sh <name>` as the container of that name in job,
// with vaultAddr as VAULT_ADDR and the settings in extra ("KEY=value")
// replacing the rendered ones, and returns its output.
func (b *bootstrapRun) step(job bootstrapJob, name, vaultAddr string, extra ...string) (string, error) {
	t := b.t
	t.Helper()
	container, ok := job.containers[name]
	if !ok {
		t.Fatalf("the bootstrap Job has no %s step", name)
	}
	config := t.TempDir()
	for file, content := range job.files {
		if err := os.WriteFile(filepath.Join(config, file), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := container.Command; len(got) != 3 || got[0] != "/bin/sh" || got[2] != name {
		t.Fatalf("the %s step runs %q; want /bin/sh <script> %s", name, got, name)
	}
	jwt := filepath.Join(config, "jwt")
	reviewerJWT := filepath.Join(config, "reviewer-jwt")
	token := b.reviewer.mint(t, serviceAccount{
		namespace: job.namespace, name: job.serviceAccount, uid: randomHex(t, 8), audiences: []string{bootstrap.Audience},
	})
	for path, content := range map[string]string{jwt: token, reviewerJWT: b.reviewer.reviewerToken} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	voters := make([]string, len(b.c.nodes))
	for i, n := range b.c.nodes {
		voters[i] = n.name + "=" + n.url()
	}

	env := map[string]string{}
	for _, e := range container.Env {
		env[e.Name] = e.Value
	}
	required := []string{"CONFIG_DIR", "SECRETS_DIR", "HOME", "VOTERS", "AUDIT_FILE", "KUBERNETES_HOST", "GATE_TIMEOUT"}
	if name != "publish" {
		required = append(required, "VAULT_ADDR", "VAULT_CACERT", "JWT_FILE")
	}
	for _, k := range required {
		if _, set := env[k]; !set {
			t.Fatalf("the %s step sets no %s", name, k)
		}
	}
	// What the pod mounts or reaches, here; outside a cluster, Vault is
	// told the API server's CA and a reviewer token.
	for k, v := range map[string]string{
		"CONFIG_DIR": config, "SECRETS_DIR": b.secrets, "HOME": config, "JWT_FILE": jwt,
		"VAULT_ADDR": vaultAddr, "VAULT_CACERT": b.c.caFile, "VOTERS": strings.Join(voters, " "),
		"AUDIT_FILE": b.auditFile, "KUBERNETES_HOST": b.reviewer.url(),
		"KUBERNETES_CA_CERT": b.reviewer.caFile, "TOKEN_REVIEWER_JWT_FILE": reviewerJWT,
		"AWS_RECORD": b.record, "PATH": b.bin + ":/usr/bin:/bin",
	} {
		env[k] = v
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", filepath.Join(config, "bootstrap.sh"), name)
	cmd.Env = list
	out, err := cmd.CombinedOutput()
	t.Logf("bootstrap.sh %s:\n%s", name, out)
	return string(out), err
}

// all runs init, publish and configure, failing the test if one fails.
func (b *bootstrapRun) all(job bootstrapJob) {
	b.t.Helper()
	for _, s := range []string{"init", "publish"} {
		if _, err := b.step(job, s, ""); err != nil {
			b.t.Fatalf("bootstrap.sh %s: %v", s, err)
		}
	}
	// The first voter leads; the gate waits for the others.
	b.c.waitUnsealed(b.c.nodes[0])
	if out, err := b.step(job, "configure", b.c.leader().url()); err != nil || !strings.Contains(out, "healthy") {
		b.t.Fatalf("bootstrap.sh configure: %v", err)
	}
}

// login logs in through the Kubernetes auth method as a service account
// with a token for audience, and returns a CLI with the Vault token.
func (b *bootstrapRun) login(role, namespace, account, audience string) (cli, error) {
	jwt := b.reviewer.mint(b.t, serviceAccount{namespace: namespace, name: account, uid: randomHex(b.t, 8), audiences: []string{audience}})
	leader := b.c.leader()
	out, err := b.c.cli(leader, "").run("", "write", "-field=token", "auth/kubernetes/login", "role="+role, "jwt="+jwt)
	if err != nil {
		return cli{}, err
	}
	return b.c.cli(leader, strings.TrimSpace(out)), nil
}

// mustLogin is login that fails the test.
func (b *bootstrapRun) mustLogin(role, namespace, account string) cli {
	b.t.Helper()
	v, err := b.login(role, namespace, account, bootstrap.Audience)
	if err != nil {
		b.t.Fatalf("login as %s/%s with role %s: %v", namespace, account, role, err)
	}
	return v
}

// capabilities are what the CLI's token may do on path.
func capabilities(t *testing.T, v cli, path string) string {
	t.Helper()
	return strings.TrimSpace(v.must(t, "token", "capabilities", path))
}

// vaultState is what the bootstrap configures, as the configurator reads
// it: the data of each answer, without the request's own IDs.
func vaultState(t *testing.T, v cli, prefix string) string {
	t.Helper()
	var b strings.Builder
	read := func(path string) {
		var answer struct{ Data any }
		v.mustJSON(t, &answer, "read", "-format=json", path)
		data, _ := json.Marshal(answer.Data)
		fmt.Fprintf(&b, "%s: %s\n", path, data)
	}
	b.WriteString(v.must(t, "audit", "list", "-format=json"))
	read("sys/mounts/secret")
	read("auth/kubernetes/config")
	policies := strings.Fields(v.must(t, "policy", "list"))
	sort.Strings(policies)
	for _, p := range policies {
		if strings.HasPrefix(p, prefix) {
			read("sys/policies/acl/" + p)
		}
	}
	var roles []string
	v.mustJSON(t, &roles, "list", "-format=json", "auth/kubernetes/role")
	for _, r := range roles {
		read("auth/kubernetes/role/" + r)
	}
	return b.String()
}

// TestBootstrapInitialisesConfiguresAndGates runs the Job's script, KMS
// mode, on a new three-voter cluster: it initialises it, publishes only
// ciphertext, configures what the stack's config says, revokes the root
// token, changes nothing when run again, and removes what left the config.
func TestBootstrapInitialisesConfiguresAndGates(t *testing.T) {
	t.Parallel()
	prefix := bootstrap.DefaultConfig().NamePrefix
	// The previous config: one more ExternalSecret and another snapshot role.
	before := renderWith(t, withoutDatabases(map[string]any{
		"secrets-platform:backup": map[string]any{"vaultRole": prefix + "old-snapshot"},
		"secrets-platform:externalSecrets": map[string]any{
			"store": map[string]any{"role": prefix + "external-secrets"},
			"secrets": []any{
				map[string]any{"name": "postgres-credentials", "vaultKey": "database/postgres", "data": []any{map[string]any{"property": "password", "secretKey": "password"}}},
				map[string]any{"name": "legacy", "vaultKey": "database/legacy", "data": []any{map[string]any{"property": "password", "secretKey": "password"}}},
			},
		},
	}))
	r := renderWith(t, withoutDatabases(nil))
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{})
	b := newBootstrapRun(t, c)
	ns := r.namespace

	b.all(before.bootstrap)

	// Published: ciphertext of the whole init output, and nothing else.
	var init initResponse
	plain, err := os.ReadFile(filepath.Join(b.record, "encrypted"))
	if err != nil {
		t.Fatalf("KMS was never asked to encrypt the init output: %v", err)
	}
	if err := json.Unmarshal(plain, &init); err != nil || len(init.RecoveryKeys) != 5 || init.RootToken == "" {
		t.Fatalf("KMS encrypted %q; want init's output with 5 recovery keys and the root token (%v)", plain, err)
	}
	uploaded, _ := os.ReadFile(filepath.Join(b.record, "uploaded"))
	to, _ := os.ReadFile(filepath.Join(b.record, "uploaded-to"))
	calls, _ := os.ReadFile(filepath.Join(b.record, "calls"))
	if !strings.HasPrefix(string(to), "s3://") || !strings.Contains(string(to), "/"+backup.InitPrefix+"/") {
		t.Errorf("the init object went to %q; want the bucket's %s/ prefix", to, backup.InitPrefix)
	}
	if len(uploaded) == 0 {
		t.Error("nothing was uploaded")
	}
	for _, secret := range append([]string{init.RootToken}, init.RecoveryKeys...) {
		if bytes.Contains(uploaded, []byte(secret)) || bytes.Contains(calls, []byte(secret)) {
			t.Errorf("a recovery key or the root token reached the AWS CLI outside the encrypt call's file")
		}
	}
	if entries, _ := os.ReadDir(b.secrets); len(entries) != 1 || entries[0].Name() != "init.json.kms" {
		t.Errorf("the secrets directory holds %v after configure; want only the ciphertext (the plain output removed)", entries)
	}

	// The initial root token is revoked; the configurator replaces it.
	if _, err := c.cli(c.leader(), init.RootToken).run("", "token", "lookup"); err == nil {
		t.Error("the initial root token still works after the bootstrap")
	}
	conf := b.mustLogin(prefix+bootstrap.ConfiguratorName, ns, r.bootstrap.serviceAccount)
	audit := conf.must(t, "audit", "list", "-format=json")
	for _, device := range []string{prefix + "file/", prefix + "stdout/"} {
		if !strings.Contains(audit, `"`+device+`"`) {
			t.Errorf("audit device %s is not enabled: %s", device, audit)
		}
	}
	if info, err := os.Stat(b.auditFile); err != nil || info.Size() == 0 {
		t.Errorf("the file audit device wrote nothing to %s (%v)", b.auditFile, err)
	}

	// Each client: its own account, namespace and audience, its paths only.
	eso := b.mustLogin(prefix+"external-secrets", ns, "external-secrets-vault-auth")
	for path, want := range map[string]string{
		"secret/data/database/postgres": "read", "secret/data/database/legacy": "read", "secret/data/other": "deny",
	} {
		if got := capabilities(t, eso, path); got != want {
			t.Errorf("ESO may %q on %s; want %q", got, path, want)
		}
	}
	if _, err := b.login(prefix+"external-secrets", ns, "default", bootstrap.Audience); err == nil {
		t.Error("another service account logs in with ESO's role")
	}
	if _, err := b.login(prefix+"external-secrets", "other", "external-secrets-vault-auth", bootstrap.Audience); err == nil {
		t.Error("ESO's account in another namespace logs in with ESO's role")
	}
	if _, err := b.login(prefix+"external-secrets", ns, "external-secrets-vault-auth", apiServerAudience); err == nil {
		t.Error("a token for the API server's audience logs in; the role must require audience vault")
	}
	snap := b.mustLogin(prefix+"old-snapshot", ns, "vault-snapshot")
	if got := capabilities(t, snap, "sys/storage/raft/snapshot"); got != "read" {
		t.Errorf("the snapshot role may %q on sys/storage/raft/snapshot; want read", got)
	}

	// The current config: the legacy grant and the old role go, nothing else.
	if _, err := b.step(r.bootstrap, "configure", c.leader().url()); err != nil {
		t.Fatalf("configure with the current config: %v", err)
	}
	eso = b.mustLogin(prefix+"external-secrets", ns, "external-secrets-vault-auth")
	if got := capabilities(t, eso, "secret/data/database/legacy"); got != "deny" {
		t.Errorf("ESO may still %q on the removed ExternalSecret's path", got)
	}
	if got := capabilities(t, eso, "secret/data/database/postgres"); got != "read" {
		t.Errorf("ESO may %q on postgres-credentials' path; want read", got)
	}
	if _, err := b.login(prefix+"old-snapshot", ns, "vault-snapshot", bootstrap.Audience); err == nil {
		t.Error("the role that left the config still logs in")
	}
	b.mustLogin(prefix+"raft-snapshot", ns, "vault-snapshot")

	// Again: nothing to init or publish, and nothing changes.
	conf = b.mustLogin(prefix+bootstrap.ConfiguratorName, ns, r.bootstrap.serviceAccount)
	stateBefore := vaultState(t, conf, prefix)
	callsBefore, _ := os.ReadFile(filepath.Join(b.record, "calls"))
	for _, s := range []string{"init", "publish"} {
		if out, err := b.step(r.bootstrap, s, ""); err != nil || !strings.Contains(out, "nothing to") {
			t.Errorf("a second %s: %v; want nothing to do", s, err)
		}
	}
	if _, err := b.step(r.bootstrap, "configure", c.leader().url()); err != nil {
		t.Fatalf("a second configure: %v", err)
	}
	if callsAfter, _ := os.ReadFile(filepath.Join(b.record, "calls")); !bytes.Equal(callsBefore, callsAfter) {
		t.Errorf("a second run called AWS: %s", callsAfter[len(callsBefore):])
	}
	if stateAfter := vaultState(t, conf, prefix); stateAfter != stateBefore {
		t.Errorf("a second run changed Vault's configuration:\nbefore\n%s\nafter\n%s", stateBefore, stateAfter)
	}
}

// TestBootstrapPGPModeEncryptsEachShareToItsHolder runs init in PGP mode:
// only PGP-encrypted shares are published (no KMS call, no root token), each
// opens with its holder's private key, and a threshold of them recovers a
// root token (the break-glass path).
func TestBootstrapPGPModeEncryptsEachShareToItsHolder(t *testing.T) {
	t.Parallel()
	holders := make(openpgp.EntityList, 3)
	keys := make([]any, len(holders))
	for i := range holders {
		e, err := openpgp.NewEntity(fmt.Sprintf("holder %d", i), "", fmt.Sprintf("holder%d@example.com", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		var pub bytes.Buffer
		if err := e.Serialize(&pub); err != nil {
			t.Fatal(err)
		}
		holders[i], keys[i] = e, base64.StdEncoding.EncodeToString(pub.Bytes())
	}
	r := renderWith(t, withoutDatabases(map[string]any{"secrets-platform:bootstrap": map[string]any{
		"recoveryShares": 3, "recoveryThreshold": 2, "pgpKeys": keys,
	}}))
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{})
	b := newBootstrapRun(t, c)
	initLog, err := b.step(r.bootstrap, "init", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.step(r.bootstrap, "publish", ""); err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join(b.record, "uploaded"))
	if err != nil {
		t.Fatalf("nothing was published: %v", err)
	}
	var published map[string][]string
	if err := json.Unmarshal(raw, &published); err != nil || len(published) != 1 || len(published["recovery_keys_b64"]) != 3 {
		t.Fatalf("published %s; want exactly the 3 encrypted recovery keys (%v)", raw, err)
	}
	if calls, _ := os.ReadFile(filepath.Join(b.record, "calls")); strings.Contains(string(calls), "kms encrypt") {
		t.Errorf("PGP mode called KMS: %s", calls)
	}
	var shares []string
	for i, enc := range published["recovery_keys_b64"] {
		if !strings.Contains(initLog, enc) {
			t.Errorf("encrypted share %d is not in the Job's log", i)
		}
		ct, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			t.Fatal(err)
		}
		md, err := openpgp.ReadMessage(bytes.NewReader(ct), openpgp.EntityList{holders[i]}, nil, nil)
		if err != nil {
			t.Fatalf("share %d does not open with holder %d's key: %v", i, i, err)
		}
		share, err := io.ReadAll(md.UnverifiedBody)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hex.DecodeString(string(share)); err != nil {
			t.Fatalf("share %d decrypts to %q, not a hex key", i, share)
		}
		shares = append(shares, string(share))
	}

	c.waitUnsealed(c.nodes[0])
	if _, err := b.step(r.bootstrap, "configure", c.leader().url()); err != nil {
		t.Fatal(err)
	}

	// Break glass: two holders' shares generate a root token.
	v := c.cli(c.leader(), "")
	otp := strings.TrimSpace(v.must(t, "operator", "generate-root", "-generate-otp"))
	var attempt struct {
		Nonce          string `json:"nonce"`
		EncodedToken   string `json:"encoded_token"`
		EncodedRootTok string `json:"encoded_root_token"`
	}
	v.mustJSON(t, &attempt, "operator", "generate-root", "-init", "-otp="+otp, "-format=json")
	nonce := attempt.Nonce
	for _, share := range shares[:2] {
		v.mustJSON(t, &attempt, "operator", "generate-root", "-nonce="+nonce, "-format=json", share)
	}
	encoded := attempt.EncodedToken
	if encoded == "" {
		encoded = attempt.EncodedRootTok
	}
	root := strings.TrimSpace(v.must(t, "operator", "generate-root", "-decode="+encoded, "-otp="+otp))
	if _, err := c.cli(c.leader(), root).run("", "token", "lookup"); err != nil {
		t.Fatalf("the root token generated from two decrypted shares does not work: %v", err)
	}
	c.cli(c.leader(), root).must(t, "token", "revoke", "-self")
}

// TestBootstrapManualInitAndGate is the autoInit: false path: the Job
// refuses to initialise and says what to run; after the ceremony and the
// configurator identity it configures; and its gate fails, naming the
// voter, when one is sealed.
func TestBootstrapManualInitAndGate(t *testing.T) {
	t.Parallel()
	r := renderWith(t, withoutDatabases(map[string]any{"secrets-platform:bootstrap": map[string]any{
		"autoInit": false, "gateTimeoutSeconds": 120, "timeoutSeconds": 300,
	}}))
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{})
	b := newBootstrapRun(t, c)
	out, err := b.step(r.bootstrap, "init", "")
	if err == nil || !strings.Contains(out, "bootstrap.autoInit is false") || !strings.Contains(out, "install-and-init.md") {
		t.Fatalf("init with autoInit false on an uninitialised Vault: %v; want a failure that names the setting and the runbook", err)
	}

	// The ceremony, then the configurator identity as install-and-init.md
	// creates it: from the Job's own files, with the initial root token.
	c.bootstrap()
	root := c.cli(c.leader(), c.rootToken)
	prefix, files := bootstrap.DefaultConfig().NamePrefix, r.bootstrap.files
	role := prefix + bootstrap.ConfiguratorName
	root.must(t, "auth", "enable", "-path=kubernetes", "kubernetes")
	root.must(t, "write", "auth/kubernetes/config", "kubernetes_host="+b.reviewer.url(),
		"kubernetes_ca_cert=@"+b.reviewer.caFile, "token_reviewer_jwt="+b.reviewer.reviewerToken)
	if _, err := root.run(files["policy-"+role+".hcl"], "policy", "write", role, "-"); err != nil {
		t.Fatal(err)
	}
	root.must(t, append([]string{"write", "auth/kubernetes/role/" + role}, strings.Fields(files["role-"+role+".args"])...)...)

	if _, err := b.step(r.bootstrap, "configure", c.leader().url()); err != nil {
		t.Fatalf("configure after the manual init: %v", err)
	}

	// Seal one voter (sealing the active node is what sys/seal does).
	sealed := c.leader()
	root.addr = sealed.url()
	root.must(t, "operator", "seal")
	other := c.nodes[0]
	if other == sealed {
		other = c.nodes[1]
	}
	start := time.Now()
	out, err = b.step(r.bootstrap, "configure", other.url(), "GATE_TIMEOUT=10")
	if err == nil {
		t.Fatal("the gate passed with a sealed voter")
	}
	if want := "voter " + sealed.name + " is sealed"; !strings.Contains(out, "health gate failed") || !strings.Contains(out, want) {
		t.Errorf("the gate's failure does not say %q:\n%s", want, out)
	}
	t.Logf("the gate failed after %s", time.Since(start).Round(time.Second))
}
