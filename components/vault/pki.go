package vault

import (
	"fmt"

	"github.com/pulumi/pulumi-tls/sdk/v5/go/tls"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Keys are ECDSA P-256: 128-bit security against RSA-2048's 112, smaller
// certificates and cheaper handshakes, and every client here (Vault's Raft
// peers, External Secrets, Prometheus, the Vault CLI, kubelet probes) is Go,
// which supports it fully.
const (
	keyAlgorithm = "ECDSA"
	ecdsaCurve   = "P256"
)

// Key usages. The server certificate is also a client certificate: Raft
// peers present it when they join the leader (leader_client_cert_file).
var (
	caUses     = []string{"cert_signing", "crl_signing", "digital_signature"}
	serverUses = []string{"digital_signature", "key_encipherment", "server_auth", "client_auth"}
)

// loopbackIP is where the chart points VAULT_ADDR inside the pod.
const loopbackIP = "127.0.0.1"

// pki is the CA and the Vault server's certificate and key.
type pki struct {
	caCertPEM     pulumi.StringOutput
	serverCertPEM pulumi.StringOutput
	serverKeyPEM  pulumi.StringOutput // secret
}

// dnsNames lists every name clients and Raft peers dial: the chart's
// services <name>, <name>-active and the headless <name>-internal, each pod
// <name>-<i>.<name>-internal, in short and qualified forms.
func dnsNames(name, namespace, clusterDomain string, replicas int) []string {
	var names []string
	for _, svc := range []string{name, name + "-active"} {
		names = append(names,
			svc,
			svc+"."+namespace,
			svc+"."+namespace+".svc",
			svc+"."+namespace+".svc."+clusterDomain,
		)
	}
	internal := name + "-internal"
	names = append(names,
		internal,
		"*."+internal,
		"*."+internal+"."+namespace+".svc."+clusterDomain,
	)
	for i := 0; i < replicas; i++ {
		names = append(names, fmt.Sprintf("%s-%d.%s", name, i, internal))
	}
	return append(names, "localhost")
}

// newPKI issues the server certificate, from a CA created here (the seed's
// option A) or from the CA given in args (option C: no CA key is created).
func newPKI(ctx *pulumi.Context, name string, args TLSConfig, names pulumi.StringArrayInput, commonName pulumi.StringInput, parent pulumi.ResourceOption) (*pki, error) {
	var org pulumi.StringPtrInput
	if args.Organization != "" {
		org = pulumi.String(args.Organization)
	}
	var caCert, caKey pulumi.StringOutput
	if args.CACertPEM != "" {
		caCert = pulumi.String(args.CACertPEM).ToStringOutput()
		caKey = pulumi.ToSecret(pulumi.String(args.CAKeyPEM)).(pulumi.StringOutput)
	} else {
		key, err := tls.NewPrivateKey(ctx, name+"-ca-key", &tls.PrivateKeyArgs{
			Algorithm:  pulumi.String(keyAlgorithm),
			EcdsaCurve: pulumi.String(ecdsaCurve),
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("creating CA key: %w", err)
		}
		cert, err := tls.NewSelfSignedCert(ctx, name+"-ca-cert", &tls.SelfSignedCertArgs{
			PrivateKeyPem: key.PrivateKeyPem,
			Subject: &tls.SelfSignedCertSubjectArgs{
				CommonName:   pulumi.String(name + " Vault CA"),
				Organization: org,
			},
			IsCaCertificate:     pulumi.Bool(true),
			ValidityPeriodHours: pulumi.Int(args.CAValidityHours),
			EarlyRenewalHours:   pulumi.Int(args.CAEarlyRenewalHours),
			AllowedUses:         pulumi.ToStringArray(caUses),
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("creating CA certificate: %w", err)
		}
		caCert, caKey = cert.CertPem, key.PrivateKeyPem
	}

	key, err := tls.NewPrivateKey(ctx, name+"-server-key", &tls.PrivateKeyArgs{
		Algorithm:  pulumi.String(keyAlgorithm),
		EcdsaCurve: pulumi.String(ecdsaCurve),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating server key: %w", err)
	}
	csr, err := tls.NewCertRequest(ctx, name+"-server-csr", &tls.CertRequestArgs{
		PrivateKeyPem: key.PrivateKeyPem,
		Subject: &tls.CertRequestSubjectArgs{
			CommonName:   commonName,
			Organization: org,
		},
		DnsNames:    names,
		IpAddresses: pulumi.ToStringArray([]string{loopbackIP}),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating server certificate request: %w", err)
	}
	cert, err := tls.NewLocallySignedCert(ctx, name+"-server-cert", &tls.LocallySignedCertArgs{
		CertRequestPem:  csr.CertRequestPem,
		CaCertPem:       caCert,
		CaPrivateKeyPem: caKey,
		// Re-issued by the first `pulumi up` inside the renewal window.
		ValidityPeriodHours: pulumi.Int(args.ValidityHours),
		EarlyRenewalHours:   pulumi.Int(args.EarlyRenewalHours),
		AllowedUses:         pulumi.ToStringArray(serverUses),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("creating server certificate: %w", err)
	}
	return &pki{
		caCertPEM:     caCert,
		serverCertPEM: cert.CertPem,
		serverKeyPEM:  pulumi.ToSecret(key.PrivateKeyPem).(pulumi.StringOutput),
	}, nil
}
