//go:build integration

package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pgBinDir holds Debian's postgresql-15 binaries; PG_BIN names another.
const pgBinDir = "/usr/lib/postgresql/15/bin"

// pgUnprivileged is the OS user Postgres runs as when the tests run as
// root: initdb and postgres refuse root.
const pgUnprivileged = 65534 // nobody

// postgresServer is a Postgres 15 on 127.0.0.1 that accepts only TLS
// (hostssl, scram-sha-256), with a certificate from a CA of the test's own
// for 127.0.0.1.
type postgresServer struct {
	port int
	// caPEM is the CA's certificate, caFile the same on disk.
	caPEM, caFile string
	// superPassword is the superuser postgres's.
	superPassword string
}

// startPostgres initialises and starts a server in a temporary directory
// and stops it when the test ends.
func startPostgres(t *testing.T) *postgresServer {
	t.Helper()
	bin := os.Getenv("PG_BIN")
	if bin == "" {
		bin = pgBinDir
	}
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		t.Fatalf("no Postgres 15 in %s (apt-get install postgresql-15, or set PG_BIN): %v", bin, err)
	}
	// Not t.TempDir: its parents are private to root, and Postgres runs
	// as another user.
	dir, err := os.MkdirTemp("", "pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: pgUnprivileged, Gid: pgUnprivileged}
	}
	own := func(path string) {
		if cred != nil {
			if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	own(dir)

	p := &postgresServer{port: freePort(t), superPassword: randomHex(t, 16)}
	caPEM, certPEM, keyPEM := serverCertificate(t, "127.0.0.1")
	p.caPEM = caPEM
	p.caFile = filepath.Join(dir, "ca.crt")
	for name, content := range map[string]string{"ca.crt": caPEM, "server.crt": certPEM, "server.key": keyPEM, "pw": p.superPassword} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		own(path)
	}
	if err := os.Chmod(p.caFile, 0o644); err != nil { // #nosec G302 -- a CA certificate, public
		t.Fatal(err)
	}

	data := filepath.Join(dir, "data")
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...) // #nosec G204 G702 -- Postgres's own binaries
		cmd.Dir = dir
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}
	if out, err := run("initdb", "-D", data, "-U", "postgres", "--pwfile="+filepath.Join(dir, "pw"),
		"--auth=scram-sha-256", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// TLS or nothing: no host line without ssl, no local socket login.
	hba := "hostssl all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	own(filepath.Join(data, "pg_hba.conf"))

	logFile, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	server := run("postgres", "-D", data,
		"-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(p.port),
		"-c", "unix_socket_directories="+dir, "-c", "fsync=off",
		"-c", "ssl=on", "-c", "ssl_cert_file="+filepath.Join(dir, "server.crt"),
		"-c", "ssl_key_file="+filepath.Join(dir, "server.key"),
		"-c", "password_encryption=scram-sha-256")
	server.Stdout, server.Stderr = logFile, logFile
	if err := server.Start(); err != nil {
		t.Fatalf("starting postgres: %v", err)
	}
	t.Cleanup(func() {
		// SIGINT is Postgres's fast shutdown.
		_ = server.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- server.Wait() }()
		select {
		case err := <-done:
			_ = err // its exit status after a fast shutdown says nothing
		case <-time.After(stopTimeout):
			_ = server.Process.Kill()
		}
		_ = logFile.Close()
		if t.Failed() {
			if log, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("postgres log:\n%s", log)
			}
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := p.connect("postgres", "postgres", p.superPassword)
		if err == nil {
			_ = conn.Close(context.Background())
			return p
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("postgres did not accept a connection: %v\n%s", err, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// connect opens a connection as user with password to database, over TLS
// with sslmode verify-full against the test CA.
func (p *postgresServer) connect(database, user, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s sslmode=verify-full sslrootcert=%s connect_timeout=5",
		p.port, database, user, p.caFile))
	if err != nil {
		return nil, err
	}
	cfg.Password = password
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// exec runs SQL as the superuser in database.
func (p *postgresServer) exec(t *testing.T, database, sql string) {
	t.Helper()
	conn, err := p.connect(database, "postgres", p.superPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
}

// loginError is nil when user logs in to database with password, and the
// error otherwise.
func (p *postgresServer) loginError(database, user, password string) error {
	conn, err := p.connect(database, user, password)
	if err != nil {
		return err
	}
	return conn.Close(context.Background())
}

// refusedPassword says err is Postgres refusing a password (SQLSTATE 28P01,
// invalid_password), not a network or TLS failure.
func refusedPassword(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "28P01"
}

// serverCertificate makes a CA and a server certificate it signs for host
// (an IP address), as PEM.
func serverCertificate(t *testing.T, host string) (caPEM, certPEM, keyPEM string) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, key := newKey(), newKey()
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test database CA"},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP(host)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(typ string, b []byte) string { return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})) }
	return enc("CERTIFICATE", caDER), enc("CERTIFICATE", der), enc("PRIVATE KEY", keyDER)
}

// tlsSessions counts user's sessions on the server, and those of them
// that came over TLS.
func (p *postgresServer) tlsSessions(t *testing.T, user string) (sessions, withTLS int) {
	t.Helper()
	conn, err := p.connect("postgres", "postgres", p.superPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	err = conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE s.ssl)
		FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = $1`, user).Scan(&sessions, &withTLS)
	if err != nil {
		t.Fatal(err)
	}
	return sessions, withTLS
}
