package externalsecrets_test

import (
	"testing"

	"github.com/secrets-platform/secrets-platform/components/externalsecrets"
	"github.com/secrets-platform/secrets-platform/tests"
)

const databaseMount = "secrets-platform-database"

// withDatabaseSecret adds an ExternalSecret of static role app beside the
// KV one.
func withDatabaseSecret(a *externalsecrets.ExternalSecretsStackArgs) {
	a.DatabaseMount = databaseMount
	a.Secrets = append(a.Secrets, externalsecrets.SecretConfig{Name: "app-db", StaticRole: "app", RefreshInterval: "5m"})
}

// TestStaticRoleIsReadThroughAVersion1StoreOnTheMount: ESO's Vault
// provider puts data/ after the mount of a v2 store, so a static role's
// credentials are read through a second store, version v1, whose path is
// the database mount: the remote key is then read as is.
func TestStaticRoleIsReadThroughAVersion1StoreOnTheMount(t *testing.T) {
	mon, _ := run(t, caPEM(t), withDatabaseSecret)
	var kv, db secretStore
	tests.Decode(t, tests.MustFind(t, mon, secretStoreType, "eso-store").Inputs, &kv)
	tests.Decode(t, tests.MustFind(t, mon, secretStoreType, "eso-database-store").Inputs, &db)
	v := db.Spec.Provider.Vault
	if db.Metadata.Name != "vault-database" || v.Path != databaseMount || v.Version != "v1" {
		t.Errorf("the database store is %s on %q version %q; want vault-database on %s, version v1", db.Metadata.Name, v.Path, v.Version, databaseMount)
	}
	if v.Server != kv.Spec.Provider.Vault.Server || v.CABundle != kv.Spec.Provider.Vault.CABundle || v.Auth != kv.Spec.Provider.Vault.Auth {
		t.Errorf("the database store reaches Vault otherwise than the KV store: %+v vs %+v", v, kv.Spec.Provider.Vault)
	}
	if kv.Spec.Provider.Vault.Version != "v2" || kv.Spec.Provider.Vault.Path != "secret" {
		t.Errorf("the KV store changed: %+v", kv.Spec.Provider.Vault)
	}
	var es externalSecret
	tests.Decode(t, tests.MustFind(t, mon, externalSecretType, "eso-app-db").Inputs, &es)
	if es.Spec.SecretStoreRef.Name != "vault-database" || es.Spec.RefreshInterval != "5m" || es.Spec.Target.Name != "app-db" {
		t.Errorf("the ExternalSecret reads through %q every %s into %q; want vault-database, 5m, app-db", es.Spec.SecretStoreRef.Name, es.Spec.RefreshInterval, es.Spec.Target.Name)
	}
	want := map[string]string{"username": "username", "password": "password"}
	if len(es.Spec.Data) != len(want) {
		t.Fatalf("the ExternalSecret maps %d properties; want username and password", len(es.Spec.Data))
	}
	for _, d := range es.Spec.Data {
		if d.RemoteRef.Key != databaseMount+"/static-creds/app" || want[d.RemoteRef.Property] != d.SecretKey {
			t.Errorf("%s <- %s %s; want the static role's %s at %s/static-creds/app", d.SecretKey, d.RemoteRef.Key, d.RemoteRef.Property, d.SecretKey, databaseMount)
		}
	}
	// Without a static role, no second store.
	mon, _ = run(t, caPEM(t), nil)
	if _, ok := mon.Find(secretStoreType, "eso-database-store"); ok {
		t.Error("a database store exists without an ExternalSecret of a static role")
	}
}
