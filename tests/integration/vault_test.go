//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-platform/secrets-platform/tests"
)

// Bounds of the waits. Each poll sleeps pollInterval; a command or a request
// gives up after its own timeout.
const (
	pollInterval   = 200 * time.Millisecond
	commandTimeout = 60 * time.Second
	requestTimeout = 5 * time.Second
	stopTimeout    = 10 * time.Second
)

// vaultBin is the Vault binary: $VAULT_BIN, else bin/tools/vault. A missing
// binary fails the test: a skipped integration suite proves nothing.
func vaultBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("VAULT_BIN")
	if bin == "" {
		bin = filepath.Join(tests.RepoRoot(), "bin", "tools", "vault")
	}
	if info, err := os.Stat(bin); err != nil || info.IsDir() {
		t.Fatalf("no Vault binary at %s (%v): build it with `make vault` (scripts/build-vault.sh), or point VAULT_BIN at one", bin, err)
	}
	return bin
}

// process is a running Vault server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startProcess runs bin with args and env, appending its output to
// logPath; t.Cleanup stops it.
func startProcess(t *testing.T, logPath string, env []string, bin string, args ...string) *process {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait() // the exit status is in the log
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t, syscall.SIGTERM) })
	return p
}

// stop sends sig and waits for the process to exit, killing it if it has
// not within stopTimeout.
func (p *process) stop(t *testing.T, sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		t.Errorf("process %d did not exit after SIGKILL", p.cmd.Process.Pid)
	}
}

// running reports whether the process has not exited.
func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// attachLog logs the file's contents if the test has failed, once the
// processes writing it are stopped (cleanups run last-in first-out).
func attachLog(t *testing.T, name, path string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Logf("log of %s: %v", name, err)
			return
		}
		t.Logf("---- log of %s (%s) ----\n%s---- end of log of %s ----", name, path, b, name)
	})
}

// freePort returns a TCP port free on both loopback addresses the tests use.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", loopbackIP+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", hostPort(podIP, port))
		l.Close()
		if err == nil {
			l2.Close()
			return port
		}
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return 0
}

// randomHex returns n random bytes in hex.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// eventually calls f until it returns nil, failing the test with f's last
// error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// environ is a process environment: env with the settings in extra
// ("KEY=value") replacing its own.
func environ(env map[string]string, extra []string) []string {
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	return list
}

// cli runs the vault CLI against one server, with nothing from the
// environment of the test.
type cli struct {
	bin, addr, caFile, token, home string
}

// run runs vault with args, stdin on its standard input, and returns its
// standard output; an error carries the standard error.
func (c cli) run(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = []string{"HOME=" + c.home, "VAULT_ADDR=" + c.addr, "VAULT_TOKEN=" + c.token}
	if c.caFile != "" {
		cmd.Env = append(cmd.Env, "VAULT_CACERT="+c.caFile)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("vault %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// must is run that fails the test on error.
func (c cli) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run("", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mustJSON runs vault with args (which ask for -format=json) and decodes
// its output into out.
func (c cli) mustJSON(t *testing.T, out any, args ...string) {
	t.Helper()
	raw := c.must(t, args...)
	if err := json.Unmarshal([]byte(raw), out); err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, raw)
	}
}

// getJSON GETs url with token and decodes a JSON answer into out. Any
// status is returned; only transport and decoding failures are errors.
func getJSON(client *http.Client, url, token string, out any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: %d, %w", url, resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}

// devServer is a `vault server -dev` on loopback over plain HTTP: the
// transit seal's backend, and a Vault to write policies to.
type devServer struct {
	cli cli
}

// startDevServer starts a dev-mode Vault and waits until it answers.
func startDevServer(t *testing.T, name string) *devServer {
	t.Helper()
	bin, dir := vaultBin(t), t.TempDir()
	port, token := freePort(t), randomHex(t, 16)
	logPath := filepath.Join(dir, name+".log")
	attachLog(t, name, logPath)
	startProcess(t, logPath, []string{"HOME=" + dir}, bin, "server", "-dev",
		"-dev-listen-address="+hostPort(loopbackIP, port), "-dev-root-token-id="+token)
	d := &devServer{cli: cli{bin: bin, addr: "http://" + hostPort(loopbackIP, port), token: token, home: dir}}
	eventually(t, 30*time.Second, name+" answers", func() error {
		var health struct{ Sealed bool }
		status, err := getJSON(http.DefaultClient, d.cli.addr+"/v1/sys/health", "", &health)
		if err == nil && (status != http.StatusOK || health.Sealed) {
			err = fmt.Errorf("health %d, sealed %v", status, health.Sealed)
		}
		return err
	})
	return d
}

// startTransitSeal starts a dev-mode Vault with a transit key, standing in
// for the KMS key of the awskms seal.
func startTransitSeal(t *testing.T) transitSeal {
	t.Helper()
	d := startDevServer(t, "transit")
	seal := transitSeal{address: d.cli.addr, token: d.cli.token, mount: "transit", key: "vault-unseal"}
	d.cli.must(t, "secrets", "enable", "-path="+seal.mount, "transit")
	d.cli.must(t, "write", "-f", seal.mount+"/keys/"+seal.key)
	return seal
}
