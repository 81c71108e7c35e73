package externalsecrets

import (
	"encoding/pem"
	"fmt"
	"net/url"

	"github.com/secrets-platform/secrets-platform/components/kube"
)

// The bodies of the ESO custom resources, as typed structs whose json tags
// are the field names of external-secrets.io/v1 (apis/externalsecrets/v1:
// VaultProvider, VaultKubernetesAuth, ExternalSecretSpec; apis/meta/v1:
// ServiceAccountSelector). Only the fields this component sets are here.

type secretStoreSpec struct {
	Provider storeProvider `json:"provider"`
}

type storeProvider struct {
	Vault vaultProvider `json:"vault"`
}

type vaultProvider struct {
	Server  string `json:"server"`
	Path    string `json:"path"`
	Version string `json:"version"`
	// CABundle is []byte in the API, so JSON carries it base64-encoded;
	// encoding/json does exactly that for a []byte.
	CABundle []byte    `json:"caBundle"`
	Auth     vaultAuth `json:"auth"`
}

type vaultAuth struct {
	Kubernetes vaultKubernetesAuth `json:"kubernetes"`
}

type vaultKubernetesAuth struct {
	MountPath         string            `json:"mountPath"`
	Role              string            `json:"role"`
	ServiceAccountRef serviceAccountRef `json:"serviceAccountRef"`
}

// serviceAccountRef names an account of the store's own namespace.
type serviceAccountRef struct {
	Name      string   `json:"name"`
	Audiences []string `json:"audiences,omitempty"`
}

type externalSecretSpecBody struct {
	RefreshInterval string               `json:"refreshInterval"`
	SecretStoreRef  secretStoreRef       `json:"secretStoreRef"`
	Target          externalSecretTarget `json:"target"`
	Data            []externalSecretData `json:"data"`
}

type secretStoreRef struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

type externalSecretTarget struct {
	Name           string `json:"name"`
	CreationPolicy string `json:"creationPolicy"`
}

type externalSecretData struct {
	SecretKey string    `json:"secretKey"`
	RemoteRef remoteRef `json:"remoteRef"`
}

type remoteRef struct {
	Key      string `json:"key"`
	Property string `json:"property"`
}

// storeSpec builds the store's spec once the Vault address, the CA and the
// service account are known. It refuses a non-HTTPS
// address and a CA that is not a PEM certificate: with either, ESO would
// talk to Vault in clear or fall back to the system roots.
func storeSpec(store StoreConfig, address, caPEM, serviceAccount string) (map[string]any, error) {
	u, err := url.Parse(address)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("externalsecrets: Vault address %q must be an https:// URL", address)
	}
	if block, _ := pem.Decode([]byte(caPEM)); block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("externalsecrets: the Vault CA is not a PEM certificate")
	}
	ref := serviceAccountRef{Name: serviceAccount, Audiences: store.Audiences}
	return kube.ValuesMap(secretStoreSpec{Provider: storeProvider{Vault: vaultProvider{
		Server:   address,
		Path:     store.Path,
		Version:  store.Version,
		CABundle: []byte(caPEM),
		Auth: vaultAuth{Kubernetes: vaultKubernetesAuth{
			MountPath:         store.AuthMount,
			Role:              store.Role,
			ServiceAccountRef: ref,
		}},
	}}})
}

// externalSecretSpec builds an ExternalSecret's spec. creationPolicy Owner:
// ESO creates the Secret and owns it, so it goes when the ExternalSecret goes.
func externalSecretSpec(es SecretConfig, storeName, storeKind string) (map[string]any, error) {
	data := make([]externalSecretData, 0, len(es.Data))
	for _, d := range es.Data {
		data = append(data, externalSecretData{
			SecretKey: d.SecretKey,
			RemoteRef: remoteRef{Key: es.VaultKey, Property: d.Property},
		})
	}
	return kube.ValuesMap(externalSecretSpecBody{
		RefreshInterval: es.RefreshInterval,
		SecretStoreRef:  secretStoreRef{Name: storeName, Kind: storeKind},
		Target:          externalSecretTarget{Name: es.Target, CreationPolicy: "Owner"},
		Data:            data,
	})
}
