package observability

// breakGlassRules is the alert of vault.breakGlass. Vault exports no metric
// of its own configuration, so no query can see whether generate-root is
// open; the program can, since it writes the setting. The rule therefore
// exists only while the setting is on, and then fires unconditionally
// (vector(1)): it says "the configuration this stack last applied opens
// generate-root", which is true from the `pulumi up` that turns it on to
// the one that turns it off. It fires a little early (the rollout replaces
// the voters after the rule is written) and stops a little early (the
// voters keep the open config until the rollout has replaced them), both by
// the length of a rollout, which the runbook's steps wait for.
func breakGlassRules(s scope) []rule {
	l := labels(severityWarning)
	// vector(1) has no labels: these say where.
	l["namespace"] = s.Namespace
	l["release"] = s.VaultRelease
	return []rule{{
		Alert:  AlertVaultBreakGlassOpen,
		Expr:   "vector(1)",
		Labels: l,
		Annotations: annotations(s, runbookInstall, "break-glass-on-vault-2x",
			"Vault "+s.VaultRelease+" in "+s.Namespace+" serves generate-root without a token (break glass)",
			"The stack's vault.breakGlass is true: the server config of "+s.VaultRelease+" has enable_unauthenticated_access = [\"generate-root\"], "+
				"so anyone who reaches Vault's port can start or cancel a root token generation (completing one still takes the recovery threshold). "+
				"Expected only during a break-glass ceremony; when it is over, set vault.breakGlass to false and run `pulumi up`."),
	}}
}
