package vault

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Paths inside the Vault container. dataPath is also the chart's
// server.dataStorage.mountPath; the TLS secret is mounted under
// /vault/userconfig/<secret>, the chart's convention for user files.
const (
	dataPath      = "/vault/data"
	auditPath     = "/vault/audit"
	userConfigDir = "/vault/userconfig"
	apiPort       = 8200
	clusterPort   = 8201
)

// AuditLogFile is where the file audit device writes: on the audit volume,
// which outlives the pod.
const AuditLogFile = auditPath + "/vault_audit.log"

// podHost is pod i of the release called name under its headless service,
// which publishes pods before they are ready; the certificate names it.
func podHost(name string, i int) string {
	return fmt.Sprintf("%s-%d.%s-internal", name, i, name)
}

// PodAddress is the API address of pod i of the release called name, for
// whoever must reach one voter in particular, ready or not: Raft joins and
// the bootstrap.
func PodAddress(name string, i int) string {
	return fmt.Sprintf("https://%s:%d", podHost(name, i), apiPort)
}

// Prometheus keeps this much of Vault's metrics in memory; it must be longer
// than the scrape interval (the chart's ServiceMonitor scrapes every 30s).
const prometheusRetention = "24h"

// chartPlaceholders are substituted by the chart's start-up script (sed over
// the whole config, in _helpers.tpl "vault.args"), and "{{" would be run
// through Helm's tpl: none may appear in a config we write.
var chartPlaceholders = []string{"HOST_IP", "POD_IP", "HOSTNAME", "API_ADDR", "TRANSIT_ADDR", "RAFT_ADDR", "VAULT_REDUNDANCY_ZONE", "{{"}

// configParams are the resolved values the Vault server configuration is
// written from.
type configParams struct {
	// Name is the Helm release name and fullnameOverride: pods are
	// <Name>-<i>, the headless service is <Name>-internal.
	Name     string
	Replicas int
	// TLSDir holds tls.crt, tls.key and ca.crt (the mounted TLS secret).
	TLSDir   string
	Region   string
	KMSKeyID string
	Mlock    bool
	// BreakGlass opens generate-root to callers without a token.
	BreakGlass bool
}

// breakGlassEndpoints are the endpoint groups Vault 2.x serves without a
// token when listed in enable_unauthenticated_access: generate-root alone,
// what the break-glass ceremony needs; rekey stays behind a token.
var breakGlassEndpoints = []string{"generate-root"}

// serverConfig writes the Vault server configuration (HCL) that the chart
// takes in server.ha.raft.config: TLS on the listener and between Raft
// peers, AWS KMS auto-unseal, Kubernetes service registration, Prometheus
// telemetry.
func serverConfig(p configParams) ([]byte, error) {
	switch {
	case p.Name == "":
		return nil, errors.New("vault config: name is required")
	case p.Replicas < 1:
		return nil, fmt.Errorf("vault config: %d replicas; at least one is required", p.Replicas)
	case p.TLSDir == "":
		return nil, errors.New("vault config: TLS directory is required")
	case p.Region == "" || p.KMSKeyID == "":
		return nil, errors.New("vault config: the awskms seal needs a region and a key id")
	}
	cert, key, ca := p.TLSDir+"/tls.crt", p.TLSDir+"/tls.key", p.TLSDir+"/ca.crt"

	f := hclwrite.NewEmptyFile()
	root := f.Body()
	root.SetAttributeValue("ui", cty.True)
	// DESIGN decision 1. The chart appends "disable_mlock = true" unless the
	// config already sets it (vault.config in _helpers.tpl), so it is always
	// written here, in the form its check looks for.
	root.SetAttributeValue("disable_mlock", cty.BoolVal(!p.Mlock))
	if p.BreakGlass {
		// A top-level setting of Vault 2.x; without it 2.x refuses
		// sys/generate-root to a caller with no token, and in a break
		// glass nobody has one (install-and-init.md).
		vals := make([]cty.Value, len(breakGlassEndpoints))
		for i, e := range breakGlassEndpoints {
			vals[i] = cty.StringVal(e)
		}
		root.SetAttributeValue("enable_unauthenticated_access", cty.ListVal(vals))
	}

	root.AppendNewline()
	listener := root.AppendNewBlock("listener", []string{"tcp"}).Body()
	listener.SetAttributeValue("address", cty.StringVal(fmt.Sprintf("[::]:%d", apiPort)))
	listener.SetAttributeValue("cluster_address", cty.StringVal(fmt.Sprintf("[::]:%d", clusterPort)))
	listener.SetAttributeValue("tls_cert_file", cty.StringVal(cert))
	listener.SetAttributeValue("tls_key_file", cty.StringVal(key))
	// Lets clients present certificates; it does not require them.
	listener.SetAttributeValue("tls_client_ca_file", cty.StringVal(ca))
	listener.SetAttributeValue("tls_min_version", cty.StringVal("tls12"))
	listener.AppendNewline()
	// Prometheus scrapes /v1/sys/metrics without a Vault token.
	listener.AppendNewBlock("telemetry", nil).Body().
		SetAttributeValue("unauthenticated_metrics_access", cty.True)

	root.AppendNewline()
	raft := root.AppendNewBlock("storage", []string{"raft"}).Body()
	raft.SetAttributeValue("path", cty.StringVal(dataPath))
	for i := 0; i < p.Replicas; i++ {
		// Each voter through the headless service; the name is one of the
		// certificate's DNS names, so the join verifies it.
		host := podHost(p.Name, i)
		raft.AppendNewline()
		join := raft.AppendNewBlock("retry_join", nil).Body()
		join.SetAttributeValue("leader_api_addr", cty.StringVal(PodAddress(p.Name, i)))
		join.SetAttributeValue("leader_tls_servername", cty.StringVal(host))
		join.SetAttributeValue("leader_ca_cert_file", cty.StringVal(ca))
		join.SetAttributeValue("leader_client_cert_file", cty.StringVal(cert))
		join.SetAttributeValue("leader_client_key_file", cty.StringVal(key))
	}

	root.AppendNewline()
	// Credentials come from IRSA (the service account's role annotation).
	seal := root.AppendNewBlock("seal", []string{"awskms"}).Body()
	seal.SetAttributeValue("region", cty.StringVal(p.Region))
	seal.SetAttributeValue("kms_key_id", cty.StringVal(p.KMSKeyID))

	root.AppendNewline()
	// Labels pods vault-active / vault-sealed, which the chart's
	// <name>-active service selects on.
	root.AppendNewBlock("service_registration", []string{"kubernetes"})

	root.AppendNewline()
	telemetry := root.AppendNewBlock("telemetry", nil).Body()
	telemetry.SetAttributeValue("prometheus_retention_time", cty.StringVal(prometheusRetention))
	telemetry.SetAttributeValue("disable_hostname", cty.True)

	out := f.Bytes()
	for _, ph := range chartPlaceholders {
		if strings.Contains(string(out), ph) {
			return nil, fmt.Errorf("vault config: %q would be rewritten by the chart's start-up script; check the name, region and key id", ph)
		}
	}
	return out, nil
}
