-- Run once per Postgres server by its owner (a superuser; on RDS the
-- master user), connected to the database that databases[].database names.
-- It creates what Vault's database engine needs, and nothing more:
--
--   vault_admin         the role Vault logs in as. It may change its own
--                       password (rotate-root; any role may) and call
--                       vault.set_password. No CREATEROLE: in PostgreSQL 15
--                       a CREATEROLE role may alter, grant and create any
--                       non-superuser role, including membership in
--                       pg_read_server_files or pg_execute_server_program.
--   vault_rotated       the roles whose passwords Vault may change: its
--                       direct members, none of them a superuser.
--   vault.set_password  changes the password of a member of vault_rotated,
--                       as the owner who created it (SECURITY DEFINER).
CREATE ROLE vault_admin LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE ROLE vault_rotated NOLOGIN;

CREATE SCHEMA vault;
REVOKE ALL ON SCHEMA vault FROM PUBLIC;
GRANT USAGE ON SCHEMA vault TO vault_admin;

CREATE FUNCTION vault.set_password(role_name name, new_password text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_auth_members m
      JOIN pg_roles r ON r.oid = m.member
      JOIN pg_roles g ON g.oid = m.roleid
     WHERE r.rolname = role_name AND g.rolname = 'vault_rotated'
       AND NOT r.rolsuper AND NOT r.rolreplication AND NOT r.rolbypassrls
  ) THEN
    RAISE EXCEPTION 'vault.set_password: % is not a direct member of vault_rotated, or is a superuser, replication or bypassrls role', role_name;
  END IF;
  EXECUTE format('ALTER ROLE %I WITH PASSWORD %L', role_name, new_password);
END
$$;
REVOKE ALL ON FUNCTION vault.set_password(name, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION vault.set_password(name, text) TO vault_admin;
