//go:build integration

package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-platform/secrets-platform/tests"
)

// reloadInterval stands in for the sidecar's INTERVAL_SECONDS (30 in the
// stack) so the test waits seconds, not minutes; the script is the same.
const reloadInterval = "1"

// TestReloaderServesARenewedCertificateWithoutRestart runs the TLS
// reloader's own script (from the recorded ConfigMap) beside a real Vault
// started from the rendered HCL: when the mounted certificate is replaced,
// the listener presents the new one within a bounded time and the server is
// the same process; a broken certificate file is logged, and neither Vault
// nor the reloader dies of it.
func TestReloaderServesARenewedCertificateWithoutRestart(t *testing.T) {
	t.Parallel()
	r := render(t)
	c := newCluster(t, r, startTransitSeal(t), clusterOptions{voters: 1})
	n := c.nodes[0]
	pid := n.proc.cmd.Process.Pid

	env := map[string]string{}
	for _, e := range r.reloader.container.Env {
		env[e.Name] = e.Value
	}
	certFile := filepath.Join(n.root, env["TLS_CERT_FILE"])
	keyFile := filepath.Join(filepath.Dir(certFile), "tls.key")
	if _, err := os.Stat(keyFile); err != nil {
		t.Fatalf("no tls.key beside the reloader's TLS_CERT_FILE %s: %v", env["TLS_CERT_FILE"], err)
	}
	served := func() ([]byte, error) {
		conn, err := tls.Dial("tcp", hostPort(loopbackIP, n.apiPort), &tls.Config{
			InsecureSkipVerify: true, // the test compares the leaf itself
			MinVersion:         tls.VersionTLS12,
		})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Raw, nil
	}
	servesNow := func(want *x509.Certificate, what string) {
		t.Helper()
		eventually(t, 30*time.Second, "the listener presents "+what, func() error {
			got, err := served()
			if err == nil && !bytes.Equal(got, want.Raw) {
				err = fmt.Errorf("it presents another certificate")
			}
			return err
		})
	}
	servesNow(r.cert, "the rendered certificate")

	scriptFile := filepath.Join(t.TempDir(), "reload-tls.sh")
	if err := os.WriteFile(scriptFile, []byte(r.reloader.script), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "tls-reloader.log")
	attachLog(t, "tls-reloader", logPath)
	reloader := startProcess(t, logPath, []string{
		"PATH=" + os.Getenv("PATH"),
		"TLS_CERT_FILE=" + certFile,
		"INTERVAL_SECONDS=" + reloadInterval,
		// Several Vault servers run on this machine; a pod has one.
		"VAULT_PROCESS=server -config=" + n.config,
	}, "/bin/sh", scriptFile)
	logSays := func(what string) {
		t.Helper()
		eventually(t, 30*time.Second, "the reloader logs "+what, func() error {
			b, err := os.ReadFile(logPath)
			if err == nil && !strings.Contains(string(b), what) {
				err = fmt.Errorf("not yet")
			}
			return err
		})
	}
	logSays("watching")

	// The kubelet swaps a Secret's files together; the key goes first here
	// so the reloader never sees the new certificate beside the old key.
	renewed := issueLike(t, r.cert, keyFile, certFile)
	servesNow(renewed, "the renewed certificate")
	logSays("sent SIGHUP to Vault (pid " + fmt.Sprint(pid) + ")")

	if err := os.WriteFile(certFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logSays("is not a PEM certificate; not reloading")
	if !n.proc.running() || !reloader.running() {
		t.Fatalf("after a broken certificate: vault running %v, reloader running %v", n.proc.running(), reloader.running())
	}
	servesNow(renewed, "the renewed certificate still")

	// The reloader is still at work: a good certificate after the broken
	// one is served too.
	again := issueLike(t, r.cert, keyFile, certFile)
	servesNow(again, "the next certificate")
	if got := n.proc.cmd.Process.Pid; got != pid || !n.proc.running() {
		t.Fatalf("vault was restarted (pid %d, then %d): a reload must not restart it", pid, got)
	}
}

// issueLike writes a new key and a certificate with like's names to
// keyFile and certFile, as a renewal does, and returns the certificate.
func issueLike(t *testing.T, like *x509.Certificate, keyFile, certFile string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := tests.SelfSigned(t, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: like.Subject.CommonName},
		DNSNames:     like.DNSNames,
		IPAddresses:  like.IPAddresses,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	writeAtomically(t, keyFile, []byte(keyPEM))
	writeAtomically(t, certFile, []byte(certPEM))
	return tests.ParseCertificate(t, certPEM)
}

// writeAtomically replaces path in one rename, as the kubelet's symlink
// swap does, so no reader sees half a file.
func writeAtomically(t *testing.T, path string, content []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
