//go:build integration

package integration

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Loopback addresses: a name the certificate covers resolves to
// loopbackIP (its IP SAN); an address it does not cover, such as a pod IP,
// becomes podIP, where every voter has a second listener.
const (
	loopbackIP = "127.0.0.1"
	podIP      = "127.0.0.2"
)

// transitSeal is the dev-mode Vault whose transit key stands in for KMS.
type transitSeal struct {
	address, token, mount, key string
}

// nodeConfig rewrites the rendered HCL for voter self of c. Only what cannot
// exist outside the cluster changes: absolute paths move under the node's
// root, the listener and each retry_join's leader_api_addr move to loopback
// ports (leader_tls_servername stays: the join still verifies the DNS name),
// a second listener on podIP stands for the pod IP, the awskms seal becomes a
// transit seal and Kubernetes service registration goes.
func nodeConfig(config []byte, root string, self *node, voters []*node, seal transitSeal) ([]byte, error) {
	f, diags := hclwrite.ParseConfig(config, "server.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	body := f.Body()
	rebasePaths(body, root)

	listener, err := onlyBlock(body, "listener", "tcp")
	if err != nil {
		return nil, err
	}
	listener.Body().SetAttributeValue("address", cty.StringVal(hostPort(loopbackIP, self.apiPort)))
	listener.Body().SetAttributeValue("cluster_address", cty.StringVal(hostPort(loopbackIP, self.clusterPort)))
	// The pod IP listener: same TLS, same port, another address.
	copied, diags := hclwrite.ParseConfig(listener.BuildTokens(nil).Bytes(), "listener.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	second := copied.Body().Blocks()[0]
	second.Body().SetAttributeValue("address", cty.StringVal(hostPort(podIP, self.apiPort)))
	second.Body().RemoveAttribute("cluster_address")
	body.AppendNewline()
	body.AppendBlock(second)

	storage, err := onlyBlock(body, "storage", "raft")
	if err != nil {
		return nil, err
	}
	joins := blocksOf(storage.Body(), "retry_join")
	if len(joins) < len(voters) {
		return nil, fmt.Errorf("the config joins %d voters; the cluster has %d", len(joins), len(voters))
	}
	for j, join := range joins {
		if j >= len(voters) {
			// A smaller cluster (the restore target) joins only its own voters.
			storage.Body().RemoveBlock(join)
			continue
		}
		addr, err := attrString(join.Body(), "leader_api_addr")
		if err != nil {
			return nil, err
		}
		u, err := url.Parse(addr)
		if err != nil || u.Scheme != "https" {
			return nil, fmt.Errorf("retry_join %d: leader_api_addr %q is not https", j, addr)
		}
		if _, err := attrString(join.Body(), "leader_tls_servername"); err != nil {
			return nil, fmt.Errorf("retry_join %d: %w", j, err)
		}
		join.Body().SetAttributeValue("leader_api_addr", cty.StringVal("https://"+hostPort(loopbackIP, voters[j].apiPort)))
	}

	if err := useTransitSeal(body, seal); err != nil {
		return nil, err
	}
	for _, b := range blocksOf(body, "service_registration", "kubernetes") {
		body.RemoveBlock(b)
	}
	return f.Bytes(), nil
}

// useTransitSeal replaces the one awskms seal of body by the transit seal.
func useTransitSeal(body *hclwrite.Body, seal transitSeal) error {
	awskms, err := onlyBlock(body, "seal", "awskms")
	if err != nil {
		return err
	}
	body.RemoveBlock(awskms)
	transit := body.AppendNewBlock("seal", []string{"transit"}).Body()
	transit.SetAttributeValue("address", cty.StringVal(seal.address))
	transit.SetAttributeValue("token", cty.StringVal(seal.token))
	transit.SetAttributeValue("mount_path", cty.StringVal(seal.mount+"/"))
	transit.SetAttributeValue("key_name", cty.StringVal(seal.key))
	// The dev server's root token has no TTL to renew.
	transit.SetAttributeValue("disable_renewal", cty.StringVal("true"))
	return nil
}

// drillConfig rewrites the restore drill's rendered HCL for a run under
// root: its paths move under root, its loopback listener to free ports (it
// must be on loopback already), and the awskms seal becomes the transit
// seal of the cluster whose snapshot it restores.
func drillConfig(config []byte, root string, apiPort, clusterPort int, seal transitSeal) ([]byte, error) {
	f, diags := hclwrite.ParseConfig(config, "vault.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	body := f.Body()
	rebasePaths(body, root)
	listener, err := onlyBlock(body, "listener", "tcp")
	if err != nil {
		return nil, err
	}
	for _, attr := range []string{"address", "cluster_address"} {
		addr, err := attrString(listener.Body(), attr)
		if err != nil {
			return nil, err
		}
		if host, _, err := net.SplitHostPort(addr); err != nil || host != loopbackIP {
			return nil, fmt.Errorf("the drill's listener %s is %q, not on loopback", attr, addr)
		}
	}
	listener.Body().SetAttributeValue("address", cty.StringVal(hostPort(loopbackIP, apiPort)))
	listener.Body().SetAttributeValue("cluster_address", cty.StringVal(hostPort(loopbackIP, clusterPort)))
	body.SetAttributeValue("api_addr", cty.StringVal("http://"+hostPort(loopbackIP, apiPort)))
	body.SetAttributeValue("cluster_addr", cty.StringVal("https://"+hostPort(loopbackIP, clusterPort)))
	if err := useTransitSeal(body, seal); err != nil {
		return nil, err
	}
	return f.Bytes(), nil
}

// listenerCertFile returns the pod path of the listener's certificate.
func listenerCertFile(config []byte) (string, error) {
	f, diags := hclwrite.ParseConfig(config, "server.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return "", diags
	}
	listener, err := onlyBlock(f.Body(), "listener", "tcp")
	if err != nil {
		return "", err
	}
	return attrString(listener.Body(), "tls_cert_file")
}

// rebasePaths moves every absolute path among the string attributes of body
// and its blocks under root.
func rebasePaths(body *hclwrite.Body, root string) {
	for name := range body.Attributes() {
		v, err := attrString(body, name)
		if err != nil || !strings.HasPrefix(v, "/") {
			continue // not a string, or not a path
		}
		body.SetAttributeValue(name, cty.StringVal(filepath.Join(root, v)))
	}
	for _, b := range body.Blocks() {
		rebasePaths(b.Body(), root)
	}
}

// attrString evaluates the attribute name of body, which must be a string.
func attrString(body *hclwrite.Body, name string) (string, error) {
	attr := body.GetAttribute(name)
	if attr == nil {
		return "", fmt.Errorf("no attribute %s", name)
	}
	expr, diags := hclsyntax.ParseExpression(attr.Expr().BuildTokens(nil).Bytes(), name, hcl.InitialPos)
	if diags.HasErrors() {
		return "", diags
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return "", diags
	}
	if v.Type() != cty.String || v.IsNull() {
		return "", fmt.Errorf("%s is %s, not a string", name, v.Type().FriendlyName())
	}
	return v.AsString(), nil
}

// blocksOf returns the blocks of body with this type and labels.
func blocksOf(body *hclwrite.Body, typ string, labels ...string) []*hclwrite.Block {
	var out []*hclwrite.Block
	for _, b := range body.Blocks() {
		if b.Type() == typ && strings.Join(b.Labels(), "\x00") == strings.Join(labels, "\x00") {
			out = append(out, b)
		}
	}
	return out
}

// onlyBlock returns the one block of body with this type and labels.
func onlyBlock(body *hclwrite.Body, typ string, labels ...string) (*hclwrite.Block, error) {
	bs := blocksOf(body, typ, labels...)
	if len(bs) != 1 {
		return nil, fmt.Errorf("%d %s %q blocks; want one", len(bs), typ, labels)
	}
	return bs[0], nil
}

// hostPort joins an IPv4 address and a port.
func hostPort(ip string, port int) string {
	return fmt.Sprintf("%s:%d", ip, port)
}
