package recorder

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// mockOutputs returns the state a real provider would answer with: the
// inputs, plus computed properties. TLS resources get real keys and
// certificates so that tests can parse what the program would receive;
// they are derived from the stack and the resource's name (keys.go), and
// certificates start at the monitor's clock, so a run is reproducible.
func (m *Monitor) mockOutputs(typeToken, name, id string, inputs resource.PropertyMap) (resource.PropertyMap, error) {
	out := inputs.Copy()
	set := func(key string, v any) {
		if _, has := out[resource.PropertyKey(key)]; !has {
			out[resource.PropertyKey(key)] = resource.NewPropertyValue(v)
		}
	}
	secret := func(key, v string) {
		out[resource.PropertyKey(key)] = resource.MakeSecret(resource.NewProperty(v))
	}

	switch typeToken {
	case "tls:index/privateKey:PrivateKey":
		key, err := seededKey(plainString(inputs, "algorithm"), m.stack, name)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		pub, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			return nil, err
		}
		secret("privateKeyPem", encodePEM("PRIVATE KEY", der))
		secret("privateKeyPemPkcs8", encodePEM("PRIVATE KEY", der))
		set("publicKeyPem", encodePEM("PUBLIC KEY", pub))
	case "tls:index/selfSignedCert:SelfSignedCert":
		key, err := parseKey(plainString(inputs, "privateKeyPem"))
		if err != nil {
			return nil, err
		}
		tmpl := m.certTemplate(name, inputs)
		der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return nil, err
		}
		set("certPem", encodePEM("CERTIFICATE", der))
	case "tls:index/certRequest:CertRequest":
		key, err := parseKey(plainString(inputs, "privateKeyPem"))
		if err != nil {
			return nil, err
		}
		tmpl := m.certTemplate(name, inputs)
		der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{
			Subject: tmpl.Subject, DNSNames: tmpl.DNSNames, IPAddresses: tmpl.IPAddresses,
		}, key)
		if err != nil {
			return nil, err
		}
		set("certRequestPem", encodePEM("CERTIFICATE REQUEST", der))
	case "tls:index/locallySignedCert:LocallySignedCert":
		pem, err := m.signRequest(name, inputs)
		if err != nil {
			return nil, err
		}
		set("certPem", pem)
	}

	if strings.HasPrefix(typeToken, "aws:") {
		arn := mockARN(m.Account(), typeToken, name, id, inputs)
		set("arn", arn)
		switch typeToken {
		case "aws:kms/key:Key", "aws:kms/replicaKey:ReplicaKey":
			set("keyId", id)
		case "aws:s3/bucketV2:BucketV2", "aws:s3/bucket:Bucket":
			set("bucket", id)
			set("bucketRegionalDomainName", id+".s3."+MockRegion+".amazonaws.com")
		case "aws:iam/role:Role", "aws:iam/policy:Policy":
			set("name", name)
		}
	}
	if typeToken == "kubernetes:helm.sh/v3:Release" {
		// ReleaseStatus: version is the chart's version, revision the
		// release's counter.
		set("status", map[string]any{
			"status": "deployed", "name": plainString(inputs, "name"),
			"chart": plainString(inputs, "chart"), "version": plainString(inputs, "version"), "revision": 1,
		})
	}
	return out, nil
}

// mockARN builds an ARN shaped like the real one for the resource type.
func mockARN(account, typeToken, name, id string, inputs resource.PropertyMap) string {
	switch typeToken {
	case "aws:s3/bucketV2:BucketV2", "aws:s3/bucket:Bucket":
		if b := plainString(inputs, "bucket"); b != "" {
			id = b
		}
		return "arn:aws:s3:::" + id
	case "aws:iam/role:Role":
		return "arn:aws:iam::" + account + ":role/" + name
	case "aws:iam/policy:Policy":
		return "arn:aws:iam::" + account + ":policy/" + name
	case "aws:kms/key:Key", "aws:kms/replicaKey:ReplicaKey":
		return "arn:aws:kms:" + MockRegion + ":" + account + ":key/" + id
	case "aws:kms/alias:Alias":
		return "arn:aws:kms:" + MockRegion + ":" + account + ":" + plainString(inputs, "name")
	}
	service := strings.SplitN(strings.TrimPrefix(typeToken, "aws:"), "/", 2)[0]
	return "arn:aws:" + service + ":" + MockRegion + ":" + account + ":" + name
}

func plainString(m resource.PropertyMap, key string) string {
	v, ok := m[resource.PropertyKey(key)]
	if !ok {
		return ""
	}
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.IsString() {
		return v.StringValue()
	}
	return ""
}

func plainStrings(m resource.PropertyMap, key string) []string {
	v, ok := m[resource.PropertyKey(key)]
	if !ok || !v.IsArray() {
		return nil
	}
	var out []string
	for _, e := range v.ArrayValue() {
		if e.IsString() {
			out = append(out, e.StringValue())
		}
	}
	return out
}

func plainNumber(m resource.PropertyMap, key string) float64 {
	if v, ok := m[resource.PropertyKey(key)]; ok && v.IsNumber() {
		return v.NumberValue()
	}
	return 0
}

func parseKey(pemText string) (crypto.Signer, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("privateKeyPem is not PEM")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errNotSigner
	}
	return deterministicSigner{signer}, nil
}

func encodePEM(kind string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}))
}

// certTemplate reads the subject, names, validity and usages the tls
// provider takes as inputs.
func (m *Monitor) certTemplate(name string, inputs resource.PropertyMap) *x509.Certificate {
	start := m.now()
	tmpl := &x509.Certificate{
		SerialNumber: seededSerial(m.stack, name),
		NotBefore:    start,
		NotAfter:     start.Add(time.Duration(plainNumber(inputs, "validityPeriodHours")) * time.Hour),
		DNSNames:     plainStrings(inputs, "dnsNames"),
	}
	for _, ip := range plainStrings(inputs, "ipAddresses") {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	if s, ok := inputs["subject"]; ok && s.IsObject() {
		subj := s.ObjectValue()
		tmpl.Subject = pkix.Name{CommonName: plainString(subj, "commonName")}
		if o := plainString(subj, "organization"); o != "" {
			tmpl.Subject.Organization = []string{o}
		}
	}
	if v, ok := inputs["isCaCertificate"]; ok && v.IsBool() && v.BoolValue() {
		tmpl.IsCA = true
		tmpl.BasicConstraintsValid = true
	}
	for _, use := range plainStrings(inputs, "allowedUses") {
		switch use {
		case "cert_signing":
			tmpl.KeyUsage |= x509.KeyUsageCertSign
		case "crl_signing":
			tmpl.KeyUsage |= x509.KeyUsageCRLSign
		case "digital_signature":
			tmpl.KeyUsage |= x509.KeyUsageDigitalSignature
		case "key_encipherment":
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		case "server_auth":
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		case "client_auth":
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
		}
	}
	return tmpl
}

// signRequest signs the certificate request with the CA, as
// tls.LocallySignedCert does.
func (m *Monitor) signRequest(name string, inputs resource.PropertyMap) (string, error) {
	reqBlock, _ := pem.Decode([]byte(plainString(inputs, "certRequestPem")))
	caBlock, _ := pem.Decode([]byte(plainString(inputs, "caCertPem")))
	if reqBlock == nil || caBlock == nil {
		return "", errors.New("certRequestPem and caCertPem must be PEM")
	}
	req, err := x509.ParseCertificateRequest(reqBlock.Bytes)
	if err != nil {
		return "", err
	}
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return "", err
	}
	caKey, err := parseKey(plainString(inputs, "caPrivateKeyPem"))
	if err != nil {
		return "", err
	}
	tmpl := m.certTemplate(name, inputs)
	tmpl.Subject, tmpl.DNSNames, tmpl.IPAddresses = req.Subject, req.DNSNames, req.IPAddresses
	der, err := x509.CreateCertificate(nil, tmpl, ca, req.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	return encodePEM("CERTIFICATE", der), nil
}
