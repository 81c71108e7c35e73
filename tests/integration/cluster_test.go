//go:build integration

package integration

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chartDefaultAPIAddr is the vault chart's VAULT_API_ADDR when
// server.ha.apiAddr is empty (server-statefulset.yaml, TLS on).
const chartDefaultAPIAddr = "https://$(POD_IP):8200"

// node is one voter: a pod's filesystem under root, its ports on loopback.
type node struct {
	name                 string // the pod name, <release>-<i>
	root                 string
	apiPort, clusterPort int
	// apiAddr is what it advertises (VAULT_API_ADDR): standbys redirect
	// snapshot requests there.
	apiAddr string
	env     []string
	config  string
	logPath string
	proc    *process
}

// url is the node's API endpoint on the address the certificate covers.
func (n *node) url() string {
	return "https://" + hostPort(loopbackIP, n.apiPort)
}

// cluster is a Raft cluster of real Vault servers on loopback, configured
// from the rendered HCL and certificates.
type cluster struct {
	t     *testing.T
	r     *rendered
	bin   string
	nodes []*node
	// caFile is VAULT_CACERT as the chart mounts it, on the host.
	caFile string
	https  *http.Client
	// rootToken is set by bootstrap.
	rootToken string
	// startNode is clusterOptions.start.
	startNode func(n *node) *process
}

// clusterOptions change how a cluster is laid out.
type clusterOptions struct {
	// voters is the cluster's size; 0 is server.ha.replicas.
	voters int
	// apiAddr replaces server.ha.apiAddr, e.g. chartDefaultAPIAddr.
	apiAddr string
	// start runs a voter whose configuration and environment are laid out
	// (pod_test.go runs it as the chart's pod does); nil runs the vault
	// binary itself.
	start func(n *node) *process
}

// newCluster writes each voter's configuration and starts them all.
func newCluster(t *testing.T, r *rendered, seal transitSeal, opts clusterOptions) *cluster {
	t.Helper()
	c := &cluster{t: t, r: r, bin: vaultBin(t), startNode: opts.start}
	size := opts.voters
	if size == 0 {
		size = r.replicas
	}
	apiAddrTemplate := r.apiAddr
	if opts.apiAddr != "" {
		apiAddrTemplate = opts.apiAddr
	}
	if apiAddrTemplate == "" {
		apiAddrTemplate = chartDefaultAPIAddr
	}
	dir := t.TempDir()
	for i := range size {
		n := &node{
			name:        fmt.Sprintf("%s-%d", r.release, i),
			apiPort:     freePort(t),
			clusterPort: freePort(t),
		}
		n.root = filepath.Join(dir, n.name)
		n.config = filepath.Join(n.root, "server.hcl")
		n.logPath = filepath.Join(dir, n.name+".log")
		n.apiAddr = c.advertised(apiAddrTemplate, n, i)
		c.nodes = append(c.nodes, n)
		attachLog(t, n.name, n.logPath)
	}
	for _, n := range c.nodes {
		r.pod.materialize(t, n.root)
		config, err := nodeConfig(r.config, n.root, n, c.nodes, seal)
		if err != nil {
			t.Fatalf("rewriting the rendered HCL for %s: %v", n.name, err)
		}
		if err := os.WriteFile(n.config, config, 0o600); err != nil {
			t.Fatal(err)
		}
		// As the chart sets them; VAULT_RAFT_NODE_ID because of setNodeId.
		n.env = []string{
			"HOME=" + n.root,
			"VAULT_API_ADDR=" + n.apiAddr,
			"VAULT_CLUSTER_ADDR=https://" + hostPort(loopbackIP, n.clusterPort),
			"VAULT_RAFT_NODE_ID=" + n.name,
		}
	}

	c.caFile = filepath.Join(c.nodes[0].root, r.caFile)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(r.pod.files[r.caFile])) {
		t.Fatalf("VAULT_CACERT %s holds no certificate", r.caFile)
	}
	c.https = &http.Client{
		Timeout:   requestTimeout,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		// Show redirects instead of following them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, n := range c.nodes {
		c.start(n)
	}
	return c
}

// advertised maps the chart's VAULT_API_ADDR of pod i onto loopback: a host
// the certificate covers (a pod's DNS name) becomes loopbackIP, any other
// (the pod IP) podIP, on the node's port.
func (c *cluster) advertised(template string, n *node, i int) string {
	expanded := strings.NewReplacer(
		"$(POD_IP)", fmt.Sprintf("10.0.0.%d", 10+i),
		"$(VAULT_K8S_POD_NAME)", n.name,
		"$(HOSTNAME)", n.name,
	).Replace(template)
	u, err := url.Parse(expanded)
	if err != nil || u.Scheme != "https" {
		c.t.Fatalf("VAULT_API_ADDR %q is not an https URL", expanded)
	}
	ip := podIP
	if c.r.cert.VerifyHostname(u.Hostname()) == nil {
		ip = loopbackIP
	}
	return "https://" + hostPort(ip, n.apiPort)
}

// start (re)starts n's Vault server.
func (c *cluster) start(n *node) {
	if c.startNode != nil {
		n.proc = c.startNode(n)
		return
	}
	n.proc = startProcess(c.t, n.logPath, n.env, c.bin, "server", "-config="+n.config)
}

// kill stops n at once, as a crashed pod.
func (c *cluster) kill(n *node) {
	n.proc.stop(c.t, syscall.SIGKILL)
}

// cli returns a CLI client of n, verifying its certificate with the CA the
// chart mounts.
func (c *cluster) cli(n *node, token string) cli {
	return cli{bin: c.bin, addr: n.url(), caFile: c.caFile, token: token, home: n.root}
}

// health is the answer of sys/health.
type health struct {
	Initialized, Sealed, Standby bool
}

// health asks n for sys/health, whatever its state.
func (c *cluster) health(n *node) (health, error) {
	var h health
	_, err := getJSON(c.https, n.url()+"/v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200", "", &h)
	return h, err
}

// waitUnsealed waits until each of nodes is initialised and unsealed.
func (c *cluster) waitUnsealed(nodes ...*node) {
	c.t.Helper()
	for _, n := range nodes {
		eventually(c.t, 60*time.Second, n.name+" unsealed", func() error {
			h, err := c.health(n)
			if err == nil && (!h.Initialized || h.Sealed) {
				err = fmt.Errorf("initialized %v, sealed %v", h.Initialized, h.Sealed)
			}
			return err
		})
	}
}

// initResponse is the answer of `vault operator init -format=json`.
type initResponse struct {
	UnsealKeys   []string `json:"unseal_keys_b64"`
	RecoveryKeys []string `json:"recovery_keys_b64"`
	RootToken    string   `json:"root_token"`
}

// bootstrap initialises the cluster on its first voter and waits until
// every voter has joined the Raft configuration and unsealed itself.
func (c *cluster) bootstrap() initResponse {
	c.t.Helper()
	first := c.nodes[0]
	eventually(c.t, 30*time.Second, first.name+" answers", func() error {
		_, err := c.health(first)
		return err
	})
	var init initResponse
	c.cli(first, "").mustJSON(c.t, &init, "operator", "init", "-format=json")
	c.rootToken = init.RootToken
	c.waitUnsealed(c.nodes...)
	eventually(c.t, 60*time.Second, "every voter in the Raft configuration", func() error {
		var cfg struct {
			Data struct {
				Config struct {
					Servers []struct {
						NodeID string `json:"node_id"`
					}
				}
			}
		}
		leader, err := c.leaderOnce()
		if err != nil {
			return err
		}
		if _, err := getJSON(c.https, leader.url()+"/v1/sys/storage/raft/configuration", c.rootToken, &cfg); err != nil {
			return err
		}
		if got := len(cfg.Data.Config.Servers); got != len(c.nodes) {
			return fmt.Errorf("%d servers: %+v", got, cfg.Data.Config.Servers)
		}
		return nil
	})
	return init
}

// leaderOnce returns the running node that reports itself active.
func (c *cluster) leaderOnce() (*node, error) {
	var active []*node
	var errs []string
	for _, n := range c.nodes {
		if n.proc == nil || !n.proc.running() {
			continue
		}
		var leader struct {
			IsSelf bool `json:"is_self"`
		}
		if _, err := getJSON(c.https, n.url()+"/v1/sys/leader", "", &leader); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if leader.IsSelf {
			active = append(active, n)
		}
	}
	if len(active) != 1 {
		return nil, fmt.Errorf("%d active nodes; errors: %v", len(active), errs)
	}
	return active[0], nil
}

// leader waits for exactly one active node and returns it.
func (c *cluster) leader() *node {
	c.t.Helper()
	var leader *node
	eventually(c.t, 60*time.Second, "one active node", func() (err error) {
		leader, err = c.leaderOnce()
		return err
	})
	return leader
}

// standby returns an unsealed running node that is not active.
func (c *cluster) standby() *node {
	c.t.Helper()
	var standby *node
	eventually(c.t, 60*time.Second, "an unsealed standby", func() error {
		for _, n := range c.nodes {
			if n.proc == nil || !n.proc.running() {
				continue
			}
			if h, err := c.health(n); err == nil && h.Initialized && !h.Sealed && h.Standby {
				standby = n
				return nil
			}
		}
		return fmt.Errorf("no unsealed standby among %d nodes", len(c.nodes))
	})
	return standby
}

// endpoint is where Kubernetes would route a connection to the service in
// addr: <release>-active selects the active voter (the label service
// registration sets); the plain <release> service selects any ready voter,
// and the test takes a standby, its worst case.
func (c *cluster) endpoint(addr string) *node {
	c.t.Helper()
	u, err := url.Parse(addr)
	if err != nil {
		c.t.Fatal(err)
	}
	host := u.Hostname()
	// Inside the cluster the client verifies the service's name.
	if err := c.r.cert.VerifyHostname(host); err != nil {
		c.t.Fatalf("the certificate does not cover %s: %v", host, err)
	}
	service, rest, _ := strings.Cut(host, ".")
	if rest != c.r.namespace+".svc" && !strings.HasPrefix(rest, c.r.namespace+".svc.") {
		c.t.Fatalf("%s is not a service of namespace %s", host, c.r.namespace)
	}
	switch service {
	case c.r.release + "-active":
		return c.leader()
	case c.r.release:
		return c.standby()
	}
	c.t.Fatalf("%s is neither the %s nor the %s-active service", host, c.r.release, c.r.release)
	return nil
}
