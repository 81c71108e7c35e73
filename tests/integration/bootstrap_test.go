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
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/secrets-platform/secrets-platform/components/backup"
	"github.com/secrets-platform/secrets-platform/components/bootstrap"
)

// awsStandIn replaces the AWS CLI of the preflight and publish steps. It
// records every call's arguments, the file KMS was asked to encrypt, and
// each uploaded file with its destination (the last in uploaded and
// uploaded-to, each under bucket/<bucket>/<key>); its "ciphertext" is the
// plaintext rotated and base64-encoded, so no share survives it in clear.
// With AWS_REFUSE set to a call ("kms encrypt", "s3 cp"), it refuses that
// call the way AWS CLI v2 reports a denied request: the service's error
// code and operation on stderr, exit code 254 (a service error; 1 for an
// s3 transfer). S3 often gives no more than "Access Denied".
const awsStandIn = `#!/bin/sh
set -eu
printf '%s\n' "$*" >>"$AWS_RECORD/calls"
if [ "$1 $2" = "${AWS_REFUSE:-}" ]; then
  case "$1 $2" in
  "kms encrypt")
    printf '\nAn error occurred (AccessDeniedException) when calling the Encrypt operation: User: arn:aws:sts::123456789012:assumed-role/vault-bootstrap/botocore-session-1 is not authorized to perform this operation\n' >&2
    exit 254 ;;
  "s3 cp")
    echo "upload failed: $3 to $4 An error occurred (AccessDenied) when calling the PutObject operation: Access Denied" >&2
    exit 1 ;;
  esac
fi
case "$1 $2" in
"kms encrypt")
  for a in "$@"; do case $a in fileb://*) src=${a#fileb://} ;; esac; done
  cp "$src" "$AWS_RECORD/encrypted"
  tr 'A-Za-z0-9' 'N-ZA-Mn-za-m5-90-4' <"$src" | base64 | tr -d '\n'
  ;;
"s3 cp")
  cp "$3" "$AWS_RECORD/uploaded"
  echo "$4" >"$AWS_RECORD/uploaded-to"
  object="$AWS_RECORD/bucket/${4#s3://}"
  mkdir -p "${object%/*}"
  cp "$3" "$object"
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
	if name != "preflight" && name != "publish" { // the AWS CLI's steps
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", filepath.Join(config, "bootstrap.sh"), name)
	cmd.Env = environ(env, extra)
	out, err := cmd.CombinedOutput()
	t.Logf("bootstrap.sh %s:\n%s", name, out)
	return string(out), err
}

// untilConfigure runs the pod's steps before configure, in the pod's
// order, until one fails, with the settings in extra; it returns the step
// that failed ("" if none) and its output.
func (b *bootstrapRun) untilConfigure(job bootstrapJob, extra ...string) (failed, output string) {
	b.t.Helper()
	for _, s := range job.steps {
		if s == "configure" {
			break
		}
		out, err := b.step(job, s, "", extra...)
		if err != nil {
			return s, out
		}
	}
	return "", ""
}

// all runs every step, failing the test if one fails.
func (b *bootstrapRun) all(job bootstrapJob) {
	b.t.Helper()
	if failed, out := b.untilConfigure(job); failed != "" {
		b.t.Fatalf("bootstrap.sh %s failed:\n%s", failed, out)
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
	read("auth/aws/config/client")
	read("auth/aws/config/identity")
	for _, mount := range []string{"kubernetes", "aws"} {
		var roles []string
		v.mustJSON(t, &roles, "list", "-format=json", "auth/"+mount+"/role")
		for _, r := range roles {
			read("auth/" + mount + "/role/" + r)
		}
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
	checkPreflightLikePublish(t, string(calls))
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
	for _, s := range []string{"survey", "preflight", "init", "publish"} {
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
	var initLog string
	for _, s := range []string{"survey", "preflight", "init", "publish"} {
		out, err := b.step(r.bootstrap, s, "")
		if err != nil {
			t.Fatalf("bootstrap.sh %s: %v", s, err)
		}
		if s == "init" {
			initLog = out
		}
	}

	raw, err := os.ReadFile(filepath.Join(b.record, "uploaded"))
	if err != nil {
		t.Fatalf("nothing was published: %v", err)
	}
	var published map[string][]string
	if err := json.Unmarshal(raw, &published); err != nil || len(published) != 1 || len(published["recovery_keys_b64"]) != 3 {
		t.Fatalf("published %s; want exactly the 3 encrypted recovery keys (%v)", raw, err)
	}
	// Publishing needs S3 alone, and the preflight proves only that.
	calls, _ := os.ReadFile(filepath.Join(b.record, "calls"))
	if strings.Contains(string(calls), "kms encrypt") {
		t.Errorf("PGP mode called KMS: %s", calls)
	}
	if !strings.Contains(string(calls), "/"+backup.InitPrefix+"/preflight-probe ") {
		t.Errorf("PGP mode's preflight wrote no probe under %s/: %s", backup.InitPrefix, calls)
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
		"autoInit": false, "gateTimeoutSeconds": 120, "timeoutSeconds": 660,
	}}))
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{})
	b := newBootstrapRun(t, c)
	// The survey refuses first, in the pod; init would as well.
	for _, s := range []string{"survey", "init"} {
		out, err := b.step(r.bootstrap, s, "")
		if err == nil || !strings.Contains(out, "bootstrap.autoInit is false") || !strings.Contains(out, "install-and-init.md") {
			t.Fatalf("%s with autoInit false on an uninitialised Vault: %v; want a failure that names the setting and the runbook", s, err)
		}
	}

	// The ceremony, then the configurator identity as install-and-init.md
	// creates it: from the Job's own files, with the initial root token.
	root := configuratorByHand(t, c, r, b)

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
	out, err := b.step(r.bootstrap, "configure", other.url(), "GATE_TIMEOUT=10")
	if err == nil {
		t.Fatal("the gate passed with a sealed voter")
	}
	if want := "voter " + sealed.name + " is sealed"; !strings.Contains(out, "health gate failed") || !strings.Contains(out, want) {
		t.Errorf("the gate's failure does not say %q:\n%s", want, out)
	}
	t.Logf("the gate failed after %s", time.Since(start).Round(time.Second))
}

// checkPreflightLikePublish checks, in the AWS calls of a first run, that
// the preflight proved what the publish step then did: the same encrypt
// call but for its plaintext, and the same upload, headers included, but
// for the file and the key, a fixed one under init/; and that every call
// carries the bounds the Job's deadline counts on.
func checkPreflightLikePublish(t *testing.T, calls string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(calls), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d AWS calls; want the preflight's encrypt and upload, then the publish step's:\n%s", len(lines), calls)
	}
	probeEncrypt, probeUpload := strings.Fields(lines[0]), strings.Fields(lines[1])
	encrypt, upload := strings.Fields(lines[2]), strings.Fields(lines[3])
	if strings.Join(encrypt[:2], " ") != "kms encrypt" || strings.Join(upload[:2], " ") != "s3 cp" {
		t.Fatalf("the publish step called %q, %q; want kms encrypt, s3 cp", lines[2], lines[3])
	}
	withoutPlaintext := func(args []string) string {
		return strings.Join(slices.DeleteFunc(slices.Clone(args), func(a string) bool { return strings.HasPrefix(a, "fileb://") }), " ")
	}
	if withoutPlaintext(probeEncrypt) != withoutPlaintext(encrypt) {
		t.Errorf("the preflight encrypted with\n  %s\nthe publish step with\n  %s\nwant the same key and encryption context", lines[0], lines[2])
	}
	if len(probeUpload) != len(upload) || !slices.Equal(probeUpload[4:], upload[4:]) || probeUpload[0] != "s3" || probeUpload[1] != "cp" {
		t.Errorf("the preflight uploaded with\n  %s\nthe publish step with\n  %s\nwant the same headers", lines[1], lines[3])
	}
	bucket, _, _ := strings.Cut(strings.TrimPrefix(upload[3], "s3://"), "/")
	if want := "s3://" + bucket + "/" + backup.InitPrefix + "/preflight-probe"; len(probeUpload) < 4 || probeUpload[3] != want {
		t.Errorf("the preflight wrote %q; want %s", probeUpload, want)
	}
	for _, line := range lines {
		if !strings.Contains(line, "--cli-connect-timeout 5 --cli-read-timeout 15") {
			t.Errorf("an AWS call without the Job's bounds: %s", line)
		}
	}
}

// TestBootstrapNeverInitialisesASecondCluster: the bootstrap initialises
// Vault only when every voter answers and reports uninitialised. With one
// voter not answering it initialises nothing and names it; and when the
// first voter of an initialised cluster comes back with an empty volume,
// before it has rejoined, it initialises nothing (a second, empty cluster
// behind the same Service) and names the voters in each state.
func TestBootstrapNeverInitialisesASecondCluster(t *testing.T) {
	t.Parallel()
	r := render(t)
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{})
	b := newBootstrapRun(t, c)
	first, last := c.nodes[0], c.nodes[len(c.nodes)-1]
	mustBeUninitialised := func(when string, nodes ...*node) {
		t.Helper()
		for _, n := range nodes {
			if h, err := c.health(n); err != nil || h.Initialized {
				t.Fatalf("%s: %s is initialised (%+v, %v); the bootstrap must not have initialised it", when, n.name, h, err)
			}
		}
	}
	answers := func(n *node) {
		eventually(t, 30*time.Second, n.name+" answers", func() error { _, err := c.health(n); return err })
	}

	// A new cluster whose last voter does not answer.
	c.kill(last)
	for _, n := range c.nodes[:len(c.nodes)-1] {
		answers(n)
	}
	for _, s := range []string{"init", "survey"} {
		out, err := b.step(r.bootstrap, s, "", "GATE_TIMEOUT=2")
		mustBeUninitialised(s+" with "+last.name+" not answering", c.nodes[:len(c.nodes)-1]...)
		if err == nil || !strings.Contains(out, "not initialising: no answer") || !strings.Contains(out, last.name) {
			t.Errorf("%s with %s not answering: %v; want a failure that names it:\n%s", s, last.name, err, out)
		}
	}

	// Initialised, then the first voter comes back with an empty volume.
	c.start(last)
	c.bootstrap()
	restartEmpty(t, c, first)
	answers(first)
	others := make([]string, 0, len(c.nodes)-1)
	for _, n := range c.nodes[1:] {
		others = append(others, n.name)
	}
	for _, s := range []string{"survey", "init"} {
		out, err := b.step(r.bootstrap, s, "")
		mustBeUninitialised(s+" with "+first.name+" empty", first)
		if err != nil {
			t.Errorf("%s: %v; want no init and no failure: the gate waits for %s to join", s, err, first.name)
		}
		for _, want := range []string{
			"Initialised: " + strings.Join(others, " ") + ".", "Not initialised: " + first.name + ".",
			"must join the cluster, never be initialised", "raft-and-leadership.md",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s with %s empty does not say %q:\n%s", s, first.name, want, out)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(b.secrets, "init-needed")); err == nil {
		t.Error("the survey handed an init on to the preflight")
	}
}

// restartEmpty restarts n as a voter whose volume was replaced: its Raft
// data gone, and, as a pod that has not rejoined yet, without retry_join
// (with it, it would join the cluster within seconds).
func restartEmpty(t *testing.T, c *cluster, n *node) {
	t.Helper()
	c.kill(n)
	raw, err := os.ReadFile(n.config)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclwrite.ParseConfig(raw, n.config, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	storage, err := onlyBlock(f.Body(), "storage", "raft")
	if err != nil {
		t.Fatal(err)
	}
	data, err := attrString(storage.Body(), "path")
	if err != nil || !strings.HasPrefix(data, n.root+"/") {
		t.Fatalf("the Raft path %q (%v) is not under %s", data, err, n.root)
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, join := range blocksOf(storage.Body(), "retry_join") {
		storage.Body().RemoveBlock(join)
	}
	if err := os.WriteFile(n.config, f.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c.start(n)
}

// TestBootstrapPublishIsProvenBeforeInit: with the stand-in AWS refusing
// each call of the publish path in turn, the Job's steps fail before
// Vault is initialised, in the preflight, naming the call and the
// permission it needs; the init step refuses without the preflight's proof;
// with nothing refused, the same steps initialise Vault.
func TestBootstrapPublishIsProvenBeforeInit(t *testing.T) {
	t.Parallel()
	r := render(t)
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{voters: 1})
	n := c.nodes[0]
	for _, refused := range []struct{ call, needs string }{
		{"kms encrypt", "the Job's role needs kms:Encrypt on that key with the encryption context purpose=vault-init"},
		{"s3 cp", "the Job's role needs s3:PutObject on " + backup.InitPrefix + "/* of the bucket and kms:GenerateDataKey on the bucket's key"},
	} {
		b := newBootstrapRun(t, c)
		failed, out := b.untilConfigure(r.bootstrap, "AWS_REFUSE="+refused.call)
		if h, err := c.health(n); err != nil || h.Initialized {
			t.Fatalf("with %s refused, the %s step failed after Vault was initialised (%+v, %v): its init output would be lost with the pod", refused.call, failed, h, err)
		}
		calls, _ := os.ReadFile(filepath.Join(b.record, "calls"))
		if !strings.Contains(string(calls), refused.call+" ") {
			t.Errorf("%s was never called:\n%s", refused.call, calls)
		}
		if failed != "preflight" || !strings.Contains(out, "publish preflight failed, so Vault is not initialised: aws "+refused.call) || !strings.Contains(out, refused.needs) {
			t.Errorf("with %s refused, the %s step failed with:\n%s\nwant the preflight, naming the call and %q", refused.call, failed, out, refused.needs)
		}
		if out, err := b.step(r.bootstrap, "init", ""); err == nil || !strings.Contains(out, "publishing is not proven") {
			t.Errorf("init after a failed preflight: %v; want a refusal:\n%s", err, out)
		}
		if h, err := c.health(n); err != nil || h.Initialized {
			t.Fatalf("init after a failed preflight initialised Vault (%+v, %v)", h, err)
		}
	}

	b := newBootstrapRun(t, c)
	if failed, out := b.untilConfigure(r.bootstrap); failed != "" {
		t.Fatalf("with nothing refused, the %s step failed:\n%s", failed, out)
	}
	if h, err := c.health(n); err != nil || !h.Initialized {
		t.Errorf("with nothing refused, Vault is not initialised (%+v, %v)", h, err)
	}
}
