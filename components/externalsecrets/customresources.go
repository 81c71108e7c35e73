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

// databaseStore is the store of the static roles' credentials. ESO's
// Vault provider (providers/v1/vault, client_get.go buildPath) puts
// "data/" after the mount of a version v2 store, which names nothing on a
// database mount; a version v1 store whose path is the database mount
// reads <mount>/static-creds/<role> exactly, with a plain GET. That read
// creates no lease (static credentials have none) and revokes nothing, so
// every refresh returns the current password and leaks nothing. The
// VaultDynamicSecret generator would do the same GET, but adds a second
// kind, a provider block of its own and generator state, and its Cleanup
// does nothing, which would leak the leases of any dynamic path it were
// pointed at.
func databaseStore(store StoreConfig, name, mount string) StoreConfig {
	store.Name = name
	store.Path = mount
	store.Version = "v1"
	return store
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
// A static role's ExternalSecret reads <mount>/static-creds/<role>
// through the database store.
func externalSecretSpec(es SecretConfig, storeName, storeKind, databaseMount string) (map[string]any, error) {
	key := es.VaultKey
	if es.StaticRole != "" {
		key = StaticCredsKey(databaseMount, es.StaticRole)
	}
	data := make([]externalSecretData, 0, len(es.Data))
	for _, d := range es.Data {
		data = append(data, externalSecretData{
			SecretKey: d.SecretKey,
			RemoteRef: remoteRef{Key: key, Property: d.Property},
		})
	}
	return kube.ValuesMap(externalSecretSpecBody{
		RefreshInterval: es.RefreshInterval,
		SecretStoreRef:  secretStoreRef{Name: storeName, Kind: storeKind},
		Target:          externalSecretTarget{Name: es.Target, CreationPolicy: "Owner"},
		Data:            data,
	})
}

// StaticCredsKey is the remote key of a static role's credentials: the
// Vault path itself, which a version v1 store on the mount reads as is.
func StaticCredsKey(mount, role string) string { return mount + "/static-creds/" + role }
