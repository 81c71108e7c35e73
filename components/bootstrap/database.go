package bootstrap

import (
	_ "embed"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/secrets-platform/secrets-platform/components/validate"
)

// Vault's database secrets engine owns the Postgres credentials: the
// bootstrap enables it at DatabaseMount, writes one connection per
// database (TLS verify-full against the database's CA), and one static
// role per application role, which Vault rotates every rotationPeriod. The
// connection's admin password enters once, through a one-time KV entry
// (IntakePath) the bootstrap consumes, destroys and replaces with a
// password only Vault knows (rotate-root).

// DatabaseConfig is one Postgres database whose roles Vault manages: an
// item of the stack's `databases` list. Its settings span this component
// (the Vault side), the network policy and the ExternalSecrets that
// deliver its roles, so the stack holds the list (like `dr`) and passes it
// in VaultSetup; its type, defaults and validation live here.
type DatabaseConfig struct {
	// Name names the connection in Vault (<mount>/config/<name>) and its
	// one-time admin password entry.
	Name string `json:"name"`
	// Host is the server's DNS name or IP address, which its certificate
	// must cover (sslmode verify-full).
	Host string `json:"host"`
	// Port is the server's port. Default: 5432.
	Port int `json:"port,omitempty"`
	// Database is the database Vault connects to; it holds the
	// vault.set_password function (docs/runbooks/secret-rotation.md).
	Database string `json:"database"`
	// SSLMode is how Vault checks the server's certificate; only
	// verify-full (CA and host name) is allowed. Default: verify-full.
	SSLMode string `json:"sslMode,omitempty"`
	// CACertPEM is the CA bundle (PEM) that signed the server's
	// certificate; Vault trusts it and nothing else for this connection.
	CACertPEM string `json:"caCertPem"`
	// AdminUsername is the role Vault logs in as; its password enters once
	// and is rotated at once (rotate-root). Default: vault_admin.
	AdminUsername string `json:"adminUsername,omitempty"`
	// PodLabels select the database's pods when it runs in the namespace:
	// the network policy lets Vault reach only them, on Port. Exactly one of
	// podLabels and cidrs. Default: none.
	PodLabels map[string]string `json:"podLabels,omitempty"`
	// CIDRs are the database's addresses when it runs outside the cluster
	// (RDS): the network policy lets Vault reach only them, on Port.
	// Default: none.
	CIDRs []string `json:"cidrs,omitempty"`
	// StaticRoles are the application roles Vault rotates (at least one).
	StaticRoles []StaticRoleConfig `json:"staticRoles"`
}

// StaticRoleConfig is one Postgres role whose password Vault owns.
type StaticRoleConfig struct {
	// Name is the static role in Vault (<mount>/static-roles/<name>, read
	// at <mount>/static-creds/<name>); unique across databases.
	Name string `json:"name"`
	// Username is the Postgres role; it must exist and be a member of
	// vault_rotated (the SQL in docs/runbooks/secret-rotation.md).
	Username string `json:"username"`
	// RotationPeriod is how often Vault changes the password (a Go
	// duration, at least 5s, Vault's minimum). Default: 24h.
	RotationPeriod string `json:"rotationPeriod,omitempty"`
}

// Defaults of a database and a static role.
const (
	DefaultDatabasePort   = 5432
	DefaultSSLMode        = "verify-full"
	DefaultAdminUsername  = "vault_admin"
	DefaultRotationPeriod = "24h"
	// MinRotationPeriod is Vault's own minimum for a static role.
	MinRotationPeriod = 5 * time.Second
)

// DatabaseMountName follows Config.NamePrefix in the database engine's
// mount; with the prefix the bootstrap knows the mount, and everything in
// it, as its own.
const DatabaseMountName = "database"

// DatabaseMount is the database secrets engine's mount path.
func (c Config) DatabaseMount() string { return c.NamePrefix + DatabaseMountName }

// StaticCredsPath is the one path a static role's credentials are read at.
func (c Config) StaticCredsPath(role string) string {
	return c.DatabaseMount() + "/static-creds/" + role
}

// IntakeName follows Config.NamePrefix in the KV path of the one-time
// admin passwords and in the name of the role that may write them.
const IntakeName = "database-intake"

// IntakeRole is the Kubernetes-auth role (and policy) that may create the
// one-time admin password entries, and nothing else.
func (c Config) IntakeRole() string { return c.NamePrefix + IntakeName }

// IntakeServiceAccount is the service account the intake role admits.
func (c Config) IntakeServiceAccount() string { return c.ServiceAccount + "-" + IntakeName }

// IntakeKey is the one-time admin password entry of database db, under
// the KV mount.
func (c Config) IntakeKey(db string) string { return c.IntakeRole() + "/" + db }

// withDefaults is the database with the defaults of its unset fields.
func (d DatabaseConfig) withDefaults() DatabaseConfig {
	if d.Port == 0 {
		d.Port = DefaultDatabasePort
	}
	if d.SSLMode == "" {
		d.SSLMode = DefaultSSLMode
	}
	if d.AdminUsername == "" {
		d.AdminUsername = DefaultAdminUsername
	}
	roles := make([]StaticRoleConfig, len(d.StaticRoles))
	for i, r := range d.StaticRoles {
		if r.RotationPeriod == "" {
			r.RotationPeriod = DefaultRotationPeriod
		}
		roles[i] = r
	}
	d.StaticRoles = roles
	return d
}

// ResolveDatabases are the databases with their defaults filled in.
func ResolveDatabases(dbs []DatabaseConfig) []DatabaseConfig {
	out := make([]DatabaseConfig, len(dbs))
	for i, d := range dbs {
		out[i] = d.withDefaults()
	}
	return out
}

var (
	// Vault's names of connections and roles are \w[\w.-]*; these are also
	// file names in the Job's ConfigMap, so lowercase and no dots.
	vaultNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	// A Postgres role or database name the bootstrap quotes nowhere: plain
	// identifiers only, so no statement or URL needs escaping.
	pgIdentPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
)

// ValidateDatabases reports every invalid setting of the databases, keyed
// by its config path under path (for example "databases").
func ValidateDatabases(path string, dbs []DatabaseConfig) []validate.Problem {
	var p validate.Problems
	databaseProblems(&p, path, dbs)
	return p
}

func databaseProblems(p *validate.Problems, path string, dbs []DatabaseConfig) {
	names, roles := map[string]bool{}, map[string]string{}
	for i, d := range ResolveDatabases(dbs) {
		item := validate.Index(path, i)
		switch {
		case !vaultNamePattern.MatchString(d.Name):
			p.Addf(item+".name", "%q must be lowercase letters, digits, - and _, starting with a letter or digit (it names the connection in Vault), for example postgres", d.Name)
		case names[d.Name]:
			p.Addf(item+".name", "%q is used twice; each database is one connection in Vault", d.Name)
		}
		names[d.Name] = true
		if !validHost(d.Host) {
			p.Addf(item+".host", "%q is not a DNS name or IP address; give the name the server's certificate covers (sslmode verify-full checks it), for example postgres.production.svc", d.Host)
		}
		p.Port(item+".port", d.Port)
		if !pgIdentPattern.MatchString(d.Database) {
			p.Addf(item+".database", "%q is not a plain Postgres identifier (lowercase letters, digits and _, starting with a letter or _, at most 63)", d.Database)
		}
		if d.SSLMode != DefaultSSLMode {
			p.Addf(item+".sslMode", "%q is not allowed; only verify-full: Vault sends the admin password over this connection, so it must check the CA and the host name", d.SSLMode)
		}
		if strings.TrimSpace(d.CACertPEM) == "" {
			p.Addf(item+".caCertPem", "required: the PEM of the CA that signed the server's certificate (verify-full trusts only it)")
		} else {
			p.CACertificate(item+".caCertPem", d.CACertPEM)
		}
		if !pgIdentPattern.MatchString(d.AdminUsername) {
			p.Addf(item+".adminUsername", "%q is not a plain Postgres identifier (lowercase letters, digits and _, starting with a letter or _)", d.AdminUsername)
		}
		switch {
		case len(d.PodLabels) > 0 && len(d.CIDRs) > 0:
			p.Addf(item, "set podLabels (a database in the namespace) or cidrs (outside the cluster, such as RDS), not both: the network policy lets Vault reach exactly one of them")
		case len(d.PodLabels) == 0 && len(d.CIDRs) == 0:
			p.Addf(item, "set podLabels (a database in the namespace) or cidrs (outside the cluster, such as RDS): under default deny Vault reaches only what a network policy names")
		}
		for _, k := range validate.SortedKeys(d.PodLabels) {
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				p.Addf(item+".podLabels."+k, "is not a label key: %s", strings.Join(errs, "; "))
			}
			if errs := validation.IsValidLabelValue(d.PodLabels[k]); len(errs) > 0 {
				p.Addf(item+".podLabels."+k, "%q is not a label value: %s", d.PodLabels[k], strings.Join(errs, "; "))
			}
		}
		p.CIDRs(item+".cidrs", d.CIDRs)
		for _, cidr := range d.CIDRs {
			if _, n, err := net.ParseCIDR(cidr); err == nil {
				if ones, _ := n.Mask.Size(); ones == 0 {
					p.Addf(item+".cidrs", "%q is every address; name the database's subnets or its address /32", cidr)
				}
			}
		}
		if len(d.StaticRoles) == 0 {
			p.Addf(item+".staticRoles", "required: at least one role whose password Vault rotates")
		}
		for j, r := range d.StaticRoles {
			ri := validate.Index(item+".staticRoles", j)
			switch {
			case !vaultNamePattern.MatchString(r.Name):
				p.Addf(ri+".name", "%q must be lowercase letters, digits, - and _, starting with a letter or digit (it names the static role in Vault)", r.Name)
			case roles[r.Name] != "":
				p.Addf(ri+".name", "%q is also a static role of database %q; static roles share one mount, so names are unique across databases", r.Name, roles[r.Name])
			}
			roles[r.Name] = d.Name
			if !pgIdentPattern.MatchString(r.Username) {
				p.Addf(ri+".username", "%q is not a plain Postgres identifier (lowercase letters, digits and _, starting with a letter or _)", r.Username)
			} else if r.Username == d.AdminUsername {
				p.Addf(ri+".username", "%q is the admin role; Vault rotates it with rotate-root, not as a static role", r.Username)
			}
			period, err := time.ParseDuration(r.RotationPeriod)
			switch {
			case err != nil:
				p.Addf(ri+".rotationPeriod", "%q is not a Go duration; write it like 24h or 30m", r.RotationPeriod)
			case period < MinRotationPeriod:
				p.Addf(ri+".rotationPeriod", "%s is under Vault's minimum of 5s for a static role", r.RotationPeriod)
			case period%time.Second != 0:
				p.Addf(ri+".rotationPeriod", "%s is not whole seconds; Vault counts the period in seconds", r.RotationPeriod)
			}
		}
	}
}

// validHost is a DNS name or an IP address (IPv6 without brackets).
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	return len(validation.IsDNS1123Subdomain(h)) == 0
}

// connectionURL is the connection's URL with Vault's templates for the
// admin's name and password, which Vault fills in from the connection's
// own fields: the password never appears in the URL Vault shows.
func connectionURL(d DatabaseConfig) string {
	u := url.URL{
		Scheme:   "postgresql",
		Host:     net.JoinHostPort(d.Host, strconv.Itoa(d.Port)),
		Path:     "/" + d.Database,
		RawQuery: "sslmode=" + d.SSLMode,
	}
	return strings.Replace(u.String(), "//", "//{{username}}:{{password}}@", 1)
}

// RotationStatement is how Vault changes a static role's password: through
// the SECURITY DEFINER function the database owner creates once
// (postgres-admin.sql), so the admin role needs no CREATEROLE. Vault
// replaces {{password}} with the SCRAM-SHA-256 verifier, never the
// password itself (password_authentication below).
const RotationStatement = "SELECT vault.set_password('{{username}}', '{{password}}');"

// Files of the database configuration in the Job's ConfigMap.
const (
	databasePrefix   = "database-"    // database-<name>.args, database-<name>-ca.pem
	staticRolePrefix = "static-role-" // static-role-<name>.args
	rotationFile     = "rotation.sql"
)

// databaseFiles renders each connection (without any password) and each
// static role as `vault write` arguments, one a line, reading the CA and
// the rotation statement from files beside them.
func databaseFiles(dbs []DatabaseConfig) (map[string]string, error) {
	files := map[string]string{}
	if len(dbs) == 0 {
		return files, nil
	}
	files[rotationFile] = RotationStatement + "\n"
	for _, d := range dbs {
		var allowed []string
		for _, r := range d.StaticRoles {
			allowed = append(allowed, r.Name)
			period, err := time.ParseDuration(r.RotationPeriod)
			if err != nil {
				return nil, fmt.Errorf("bootstrap: static role %s: rotation period %q: %w", r.Name, r.RotationPeriod, err)
			}
			files[staticRolePrefix+r.Name+".args"] = lines(
				"db_name="+d.Name,
				"username="+r.Username,
				"rotation_period="+strconv.Itoa(int(period.Seconds())),
				"rotation_statements=@"+rotationFile,
			)
		}
		slices.Sort(allowed)
		files[databasePrefix+d.Name+"-ca.pem"] = strings.TrimSpace(d.CACertPEM) + "\n"
		files[databasePrefix+d.Name+".args"] = lines(
			"plugin_name=postgresql-database-plugin",
			"connection_url="+connectionURL(d),
			"username="+d.AdminUsername,
			"tls_ca=@"+databasePrefix+d.Name+"-ca.pem",
			"allowed_roles="+strings.Join(allowed, ","),
			// Vault sends Postgres the SCRAM verifier, not the password, in
			// every ALTER ROLE: nothing in Postgres's logs reveals it.
			"password_authentication=scram-sha-256",
			"verify_connection=true",
		)
	}
	return files, nil
}

func lines(l ...string) string { return strings.Join(l, "\n") + "\n" }

// databaseRules are what the configurator may do with databases: the
// mount, its connections and static roles (all its own: the mount has the
// prefix), rotate-root, and read and destroy the one-time admin passwords.
func databaseRules(c Config, kvMount string) []Rule {
	m := c.DatabaseMount()
	intake := c.IntakeRole()
	return []Rule{
		{Path: "sys/mounts/" + m, Capabilities: []string{"create", "read", "update"}},
		{Path: m + "/config", Capabilities: []string{"list"}},
		{Path: m + "/config/*", Capabilities: []string{"create", "read", "update", "delete"}},
		{Path: m + "/static-roles", Capabilities: []string{"list"}},
		{Path: m + "/static-roles/*", Capabilities: []string{"create", "read", "update", "delete"}},
		{Path: m + "/rotate-root/*", Capabilities: []string{"update"}},
		{Path: kvMount + "/data/" + intake + "/*", Capabilities: []string{"read"}},
		{Path: kvMount + "/metadata/" + intake + "/*", Capabilities: []string{"delete"}},
	}
}

// intakeRules let an operator create a database's one-time admin password
// entry: create only, so it can neither read one nor overwrite one the
// bootstrap has not consumed yet.
func intakeRules(c Config, kvMount string) []Rule {
	return []Rule{{Path: kvMount + "/data/" + c.IntakeRole() + "/*", Capabilities: []string{"create"}}}
}

// IntakeCommand is the one command an operator runs to hand Vault a
// database's admin password; it reads the password from the terminal.
func (c Config) IntakeCommand(namespace, kvMount, authMount, db string) string {
	return fmt.Sprintf("VAULT_TOKEN=$(vault write -field=token auth/%s/login role=%s jwt=\"$(kubectl -n %s create token %s --audience %s --duration 10m)\") vault kv put -mount=%s %s password=-",
		authMount, c.IntakeRole(), namespace, c.IntakeServiceAccount(), Audience, kvMount, c.IntakeKey(db))
}

// PostgresAdminSQL is what a database's owner runs once before Vault
// manages it (docs/runbooks/secret-rotation.md quotes it): the admin role
// with no CREATEROLE, the group of the roles Vault may rotate, and the
// function RotationStatement calls.
//
//go:embed postgres-admin.sql
var PostgresAdminSQL string
