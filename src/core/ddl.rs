//! DDL that `tenant.isolate` and `tenant.unisolate` run: pure Rust, no Postgres.
//!
//! Every identifier goes through [`quote_ident`] (always quoted, embedded quotes doubled);
//! no value is ever pasted into SQL here: the policies read the context through functions.

/// Quote an identifier the way Postgres' `quote_ident` would when quoting is needed;
/// we always quote, which is never wrong.
pub fn quote_ident(ident: &str) -> String {
    let mut out = String::with_capacity(ident.len() + 2);
    out.push('"');
    for ch in ident.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

/// A SQL string literal (standard_conforming_strings): quotes doubled; NULs removed.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\0', "").replace('\'', "''"))
}

pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// Names of the policies `isolate` creates. Restrictive policies AND with every other policy,
/// so a permissive policy a DBA adds later can narrow access within the tenant but can never
/// widen it to another tenant's rows.
pub const POLICY_ISOLATION: &str = "tenant_isolation";
pub const POLICY_UPDATE: &str = "tenant_isolation_update";
pub const POLICY_DELETE: &str = "tenant_isolation_delete";
pub const POLICY_ACCESS: &str = "tenant_isolation_access";
/// The Citus shape's INSERT policy (see [`Target::citus`]).
pub const POLICY_INSERT: &str = "tenant_isolation_insert";
/// Every policy name either shape uses: a re-run drops them all before creating its own, so
/// re-isolating switches a table from one shape to the other.
pub const ALL_POLICIES: [&str; 5] = [
    POLICY_ISOLATION,
    POLICY_UPDATE,
    POLICY_DELETE,
    POLICY_ACCESS,
    POLICY_INSERT,
];

/// The table to isolate and its tenant column (unquoted names as in the catalog).
pub struct Target<'a> {
    pub schema: &'a str,
    pub table: &'a str,
    pub column: &'a str,
    /// the schema is still 0.1.0's (no `tenant_internal._allow()`, see compat.rs): the permissive
    /// policy is `true`, as 0.1.0 wrote it, until `ALTER EXTENSION ... UPDATE` redoes it
    pub legacy_schema: bool,
    /// Citus is installed in the database: the policies take the one shape Citus carries to
    /// the shards unchanged (see [`isolate_statements`]).
    pub citus: bool,
    /// what `protect` recorded for the table (`tenant.protected_tables`): the Citus shape
    /// folds its checks into the four policies, the one-node shape re-creates its own
    pub protect: Option<&'a Protection>,
}

/// What `isolate`/`unisolate` run: the statements, and apart from them the one that changes
/// the tenant column's default. On a distributed table Citus refuses DDL on the distribution
/// column's default ("cannot execute ALTER TABLE command involving partition column"), so the
/// caller runs that one with DDL propagation off: the coordinator's table holds the default,
/// which is where Citus fills in an INSERT's defaults before it routes the row.
pub struct IsolationDdl {
    pub statements: Vec<String>,
    pub column_default: String,
}

impl Target<'_> {
    fn table(&self) -> String {
        qualified(self.schema, self.table)
    }
    fn column(&self) -> String {
        quote_ident(self.column)
    }
}

/// Statements that make a table tenant-isolated.
/// `create_index`: no index leads with the tenant column yet.
/// Our policies are dropped first when present: a re-run is idempotent, and policies left on
/// the table by an older version do not get in the way.
pub fn isolate_statements(t: &Target, create_index: bool) -> IsolationDdl {
    let tbl = t.table();
    let col = t.column();
    let mut v = Vec::with_capacity(12);
    v.push(format!("ALTER TABLE {tbl} ENABLE ROW LEVEL SECURITY"));
    v.push(format!("ALTER TABLE {tbl} FORCE ROW LEVEL SECURITY"));
    for p in ALL_POLICIES {
        v.push(format!("DROP POLICY IF EXISTS {} ON {tbl}", quote_ident(p)));
    }
    if t.citus {
        // protect's restrictive policies would be permissive on the shards (ORed with the
        // tenant's): its checks are folded into the tenant's policies instead
        for p in PROTECT_POLICIES {
            v.push(format!("DROP POLICY IF EXISTS {} ON {tbl}", quote_ident(p)));
        }
        v.extend(citus_policies(&tbl, &col, t.protect));
    } else {
        v.extend(single_node_policies(t, &tbl, &col));
        if let Some(p) = t.protect {
            v.extend(protect_statements(&tbl, p));
        }
    }
    if create_index {
        v.push(format!("CREATE INDEX ON {tbl} ({col})"));
    }
    IsolationDdl {
        statements: v,
        column_default: format!(
            "ALTER TABLE {tbl} ALTER COLUMN {col} SET DEFAULT \"tenant\".\"require_tenant\"()"
        ),
    }
}

/// One node: a restrictive policy per command narrows every other policy to the tenant, and
/// one permissive policy lets rows through.
fn single_node_policies(t: &Target, tbl: &str, col: &str) -> Vec<String> {
    // `(SELECT f())` makes the context an InitPlan: evaluated once per query, and the
    // comparison stays an index condition on the tenant column.
    // `OPERATOR(pg_catalog.=)`: the comparison is resolved when the policy is created, in the
    // caller's session; an `=` of the caller's own in an earlier schema must not be picked
    let read = format!("{col} OPERATOR(pg_catalog.=) (SELECT \"tenant\".\"current_tenant\"())");
    let write = format!("{col} OPERATOR(pg_catalog.=) (SELECT \"tenant\".\"require_tenant\"())");
    let allow = if t.legacy_schema {
        "true"
    } else {
        "\"tenant_internal\".\"_allow\"()"
    };
    vec![
        format!(
            "CREATE POLICY {} ON {tbl} AS RESTRICTIVE FOR ALL TO PUBLIC USING ({read}) WITH CHECK ({write})",
            quote_ident(POLICY_ISOLATION)
        ),
        // UPDATE and DELETE read rows through USING: with `require_tenant()` there, a write
        // without a (writable) context raises MT001/MT003 instead of quietly matching nothing.
        format!(
            "CREATE POLICY {} ON {tbl} AS RESTRICTIVE FOR UPDATE TO PUBLIC USING ({write})",
            quote_ident(POLICY_UPDATE)
        ),
        format!(
            "CREATE POLICY {} ON {tbl} AS RESTRICTIVE FOR DELETE TO PUBLIC USING ({write})",
            quote_ident(POLICY_DELETE)
        ),
        format!(
            "CREATE POLICY {} ON {tbl} AS PERMISSIVE FOR ALL TO PUBLIC USING ({allow}) WITH CHECK ({allow})",
            quote_ident(POLICY_ACCESS)
        ),
    ]
}

/// Citus: one PERMISSIVE policy per command and no catch-all, with no subquery. Citus
/// refuses subqueries in the policies of distributed tables, and it recreates every policy
/// on the shards as PERMISSIVE (its deparser never writes `AS RESTRICTIVE`): a restrictive
/// tenant policy beside a permissive `true` would open every shard to every session. These
/// four mean the same on the coordinator, on each shard and on one node. The price: a
/// permissive policy a DBA adds to the table widens access (it is ORed with these), so on
/// Citus extra policies must repeat the tenant condition (docs/citus.md). A protected table
/// (`protect`) has its permission checks ANDed into each command's policy, after the tenant
/// condition.
fn citus_policies(tbl: &str, col: &str, protect: Option<&Protection>) -> Vec<String> {
    let read = format!("{col} OPERATOR(pg_catalog.=) \"tenant\".\"current_tenant\"()");
    let write = format!("{col} OPERATOR(pg_catalog.=) \"tenant\".\"require_tenant\"()");
    let checks = protect.map(protect_checks);
    let and = |tenant: &str, check: Option<&String>| match check {
        Some(c) => format!("{tenant} AND {c}"),
        None => tenant.to_string(),
    };
    let c = checks.as_ref();
    let read_q = and(&read, c.map(|c| &c.read));
    let insert_q = and(&write, c.map(|c| &c.create));
    let update_q = and(&write, c.map(|c| &c.update));
    let delete_q = and(&write, c.map(|c| &c.delete));
    vec![
        format!(
            "CREATE POLICY {} ON {tbl} AS PERMISSIVE FOR SELECT TO PUBLIC USING ({read_q})",
            quote_ident(POLICY_ISOLATION)
        ),
        format!(
            "CREATE POLICY {} ON {tbl} AS PERMISSIVE FOR INSERT TO PUBLIC WITH CHECK ({insert_q})",
            quote_ident(POLICY_INSERT)
        ),
        format!(
            "CREATE POLICY {} ON {tbl} AS PERMISSIVE FOR UPDATE TO PUBLIC USING ({update_q}) WITH CHECK ({update_q})",
            quote_ident(POLICY_UPDATE)
        ),
        format!(
            "CREATE POLICY {} ON {tbl} AS PERMISSIVE FOR DELETE TO PUBLIC USING ({delete_q})",
            quote_ident(POLICY_DELETE)
        ),
    ]
}

/// What the table looked like before `isolate`, so `unisolate` can put it back.
pub struct Previous<'a> {
    pub rls_enabled: bool,
    pub rls_forced: bool,
    /// `pg_get_expr` text of the column default before isolate (catalog output, not user input)
    pub column_default: Option<&'a str>,
    /// the index isolate created, as a quoted qualified name (`format('%I.%I')` output)
    pub created_index: Option<&'a str>,
}

pub fn unisolate_statements(t: &Target, prev: &Previous) -> IsolationDdl {
    let tbl = t.table();
    let col = t.column();
    let mut v = Vec::with_capacity(8);
    for p in ALL_POLICIES {
        v.push(format!("DROP POLICY IF EXISTS {} ON {tbl}", quote_ident(p)));
    }
    if !prev.rls_forced {
        v.push(format!("ALTER TABLE {tbl} NO FORCE ROW LEVEL SECURITY"));
    }
    if !prev.rls_enabled {
        v.push(format!("ALTER TABLE {tbl} DISABLE ROW LEVEL SECURITY"));
    }
    if let Some(idx) = prev.created_index {
        v.push(format!("DROP INDEX IF EXISTS {idx}"));
    }
    IsolationDdl {
        statements: v,
        column_default: match prev.column_default {
            Some(expr) => format!("ALTER TABLE {tbl} ALTER COLUMN {col} SET DEFAULT {expr}"),
            None => format!("ALTER TABLE {tbl} ALTER COLUMN {col} DROP DEFAULT"),
        },
    }
}

/// Names of the policies `protect` creates, one per command.
pub const PROTECT_POLICIES: [&str; 4] = [
    "tenant_protect_read",
    "tenant_protect_create",
    "tenant_protect_update",
    "tenant_protect_delete",
];

/// Condition fields that name a row's owner when `protect` maps them to a column.
pub const OWNER_FIELDS: [&str; 2] = ["owner_id", "ownerId"];

/// What `protect` recorded about a table: the resource, the condition fields read from
/// the row (field -> column) and the column naming the row's owner.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Protection {
    pub resource: String,
    pub fields: Vec<(String, String)>,
    pub owner: Option<String>,
}

/// `protect`'s check per command: `tenant.can(resource, action, ctx)` with `ctx` built from
/// the row. With an owner column, a new row owned by anyone but the current user also needs
/// `can(resource, 'assign', ctx)`: creating rows for others is a permission of its own.
struct ProtectChecks {
    read: String,
    create: String,
    update: String,
    delete: String,
}

fn protect_checks(p: &Protection) -> ProtectChecks {
    let ctx = if p.fields.is_empty() {
        "'{}'::jsonb".to_string()
    } else {
        let pairs: Vec<String> = p
            .fields
            .iter()
            .map(|(f, col)| {
                format!(
                    "{}, {}::pg_catalog.text",
                    quote_literal(f),
                    quote_ident(col)
                )
            })
            .collect();
        format!("pg_catalog.jsonb_build_object({})", pairs.join(", "))
    };
    let res = quote_literal(&p.resource);
    let can = |action: &str| format!("\"tenant\".\"can\"({res}, '{action}', {ctx})");
    let create = match &p.owner {
        Some(col) => format!(
            "{} AND ({}::pg_catalog.text OPERATOR(pg_catalog.=) \"tenant\".\"current_user_id\"() OR {})",
            can("create"),
            quote_ident(col),
            can("assign")
        ),
        None => can("create"),
    };
    ProtectChecks {
        read: can("read"),
        create,
        update: can("update"),
        delete: can("delete"),
    }
}

/// What `protect` makes of a table on one node: restrictive per-command policies with
/// [`protect_checks`]. `tbl` is already qualified and quoted. (With Citus, `isolate`'s
/// policies carry the checks instead: see [`citus_policies`].)
pub fn protect_statements(tbl: &str, p: &Protection) -> Vec<String> {
    let c = protect_checks(p);
    let mut v: Vec<String> = PROTECT_POLICIES
        .iter()
        .map(|p| format!("DROP POLICY IF EXISTS {} ON {tbl}", quote_ident(p)))
        .collect();
    v.push(format!("ALTER TABLE {tbl} ENABLE ROW LEVEL SECURITY"));
    v.push(format!("ALTER TABLE {tbl} FORCE ROW LEVEL SECURITY"));
    v.push(format!(
        "CREATE POLICY \"tenant_protect_read\" ON {tbl} AS RESTRICTIVE FOR SELECT USING ({})",
        c.read
    ));
    v.push(format!(
        "CREATE POLICY \"tenant_protect_create\" ON {tbl} AS RESTRICTIVE FOR INSERT WITH CHECK ({})",
        c.create
    ));
    v.push(format!(
        "CREATE POLICY \"tenant_protect_update\" ON {tbl} AS RESTRICTIVE FOR UPDATE USING ({}) WITH CHECK ({})",
        c.update, c.update
    ));
    v.push(format!(
        "CREATE POLICY \"tenant_protect_delete\" ON {tbl} AS RESTRICTIVE FOR DELETE USING ({})",
        c.delete
    ));
    v
}

/// The policies that keep a table of a tenant's own schema to that tenant's context: the
/// same shape as `isolate_statements`, with the tenant's id as a constant instead of a column.
pub const POLICY_SCHEMA: &str = "mt_schema_tenant";
const POLICY_SCHEMA_UPDATE: &str = "mt_schema_update";
const POLICY_SCHEMA_DELETE: &str = "mt_schema_delete";
const POLICY_SCHEMA_ACCESS: &str = "mt_schema_access";
const POLICY_SCHEMA_INSERT: &str = "mt_schema_insert";

/// Close a table of a tenant's own schema to every context but the tenant's: RLS forced
/// (also for its owner), restrictive policies comparing the context with the tenant's id
/// (`require_tenant()` for writes: MT001/MT003 without a writable context), and the
/// permissive policy every row needs. Idempotent. With `citus` (Citus is installed: a
/// tenant schema may be a distributed schema, whose single shard carries the policies as
/// Citus copies them) the shape `isolate` writes there: one permissive policy per command,
/// no subquery, no catch-all (docs/citus.md).
pub fn schema_guard_statements(
    schema: &str,
    table: &str,
    tenant: uuid::Uuid,
    citus: bool,
) -> Vec<String> {
    let name = qualified(schema, table);
    let id = format!("'{tenant}'::pg_catalog.uuid");
    let mut v = vec![
        format!("ALTER TABLE {name} ENABLE ROW LEVEL SECURITY"),
        format!("ALTER TABLE {name} FORCE ROW LEVEL SECURITY"),
    ];
    for p in [
        POLICY_SCHEMA,
        POLICY_SCHEMA_INSERT,
        POLICY_SCHEMA_UPDATE,
        POLICY_SCHEMA_DELETE,
        POLICY_SCHEMA_ACCESS,
    ] {
        v.push(format!(
            "DROP POLICY IF EXISTS {} ON {name}",
            quote_ident(p)
        ));
    }
    if citus {
        let read = format!("{id} OPERATOR(pg_catalog.=) \"tenant\".\"current_tenant\"()");
        let write = format!("{id} OPERATOR(pg_catalog.=) \"tenant\".\"require_tenant\"()");
        v.push(format!(
            "CREATE POLICY {} ON {name} AS PERMISSIVE FOR SELECT TO PUBLIC USING ({read})",
            quote_ident(POLICY_SCHEMA)
        ));
        v.push(format!(
            "CREATE POLICY {} ON {name} AS PERMISSIVE FOR INSERT TO PUBLIC WITH CHECK ({write})",
            quote_ident(POLICY_SCHEMA_INSERT)
        ));
        v.push(format!(
            "CREATE POLICY {} ON {name} AS PERMISSIVE FOR UPDATE TO PUBLIC USING ({write}) WITH CHECK ({write})",
            quote_ident(POLICY_SCHEMA_UPDATE)
        ));
        v.push(format!(
            "CREATE POLICY {} ON {name} AS PERMISSIVE FOR DELETE TO PUBLIC USING ({write})",
            quote_ident(POLICY_SCHEMA_DELETE)
        ));
        return v;
    }
    let read = format!("{id} OPERATOR(pg_catalog.=) (SELECT \"tenant\".\"current_tenant\"())");
    let write = format!("{id} OPERATOR(pg_catalog.=) (SELECT \"tenant\".\"require_tenant\"())");
    let allow = "\"tenant_internal\".\"_allow\"()";
    v.push(format!(
        "CREATE POLICY {} ON {name} AS RESTRICTIVE FOR ALL TO PUBLIC USING ({read}) WITH CHECK ({write})",
        quote_ident(POLICY_SCHEMA)
    ));
    v.push(format!(
        "CREATE POLICY {} ON {name} AS RESTRICTIVE FOR UPDATE TO PUBLIC USING ({write})",
        quote_ident(POLICY_SCHEMA_UPDATE)
    ));
    v.push(format!(
        "CREATE POLICY {} ON {name} AS RESTRICTIVE FOR DELETE TO PUBLIC USING ({write})",
        quote_ident(POLICY_SCHEMA_DELETE)
    ));
    v.push(format!(
        "CREATE POLICY {} ON {name} AS PERMISSIVE FOR ALL TO PUBLIC USING ({allow}) WITH CHECK ({allow})",
        quote_ident(POLICY_SCHEMA_ACCESS)
    ));
    v
}

/// A privilege granted on a template object, copied to the tenant's copy: (privilege,
/// grantee role name or None for PUBLIC).
pub type Grant = (String, Option<String>);

fn grant_to(g: &Grant) -> String {
    match &g.1 {
        Some(r) => quote_ident(r),
        None => "PUBLIC".into(),
    }
}

/// Create a tenant's schema from a template schema: the schema, a copy of each template
/// table (`LIKE ... INCLUDING ALL`), the template's USAGE on the schema and its SELECT,
/// INSERT, UPDATE and DELETE on the tables (nothing else: TRUNCATE ignores row security,
/// TRIGGER and CREATE would let another role's code run in the tenant's schema, REFERENCES
/// probes rows), and the guard of each table. `tables`: (name, grants).
pub fn provision_statements(
    template: &str,
    target: &str,
    schema_grants: &[Grant],
    tables: &[(String, Vec<Grant>)],
    tenant: uuid::Uuid,
    citus: bool,
) -> Vec<String> {
    let mut v = vec![format!("CREATE SCHEMA {}", quote_ident(target))];
    for g in schema_grants {
        if g.0 == "USAGE" {
            v.push(format!(
                "GRANT USAGE ON SCHEMA {} TO {}",
                quote_ident(target),
                grant_to(g)
            ));
        }
    }
    for (t, grants) in tables {
        v.push(format!(
            "CREATE TABLE {} (LIKE {} INCLUDING ALL)",
            qualified(target, t),
            qualified(template, t)
        ));
        for g in grants {
            if PRIVILEGES.contains(&g.0.as_str()) {
                v.push(format!(
                    "GRANT {} ON {} TO {}",
                    g.0,
                    qualified(target, t),
                    grant_to(g)
                ));
            }
        }
        v.extend(schema_guard_statements(target, t, tenant, citus));
    }
    v
}

const PRIVILEGES: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protect_maps_fields_and_guards_the_owner_on_insert() {
        let f = vec![
            ("ownerId".to_string(), "owner_id".to_string()),
            ("status".to_string(), "Sta\"tus".to_string()),
        ];
        let v = protect_statements(
            "public.c",
            &Protection {
                resource: "campaigns".into(),
                fields: f,
                owner: Some("owner_id".into()),
            },
        );
        let insert = v.iter().find(|s| s.contains("FOR INSERT")).unwrap();
        assert!(insert.contains(
            "pg_catalog.jsonb_build_object('ownerId', \"owner_id\"::pg_catalog.text, 'status', \"Sta\"\"tus\"::pg_catalog.text)"
        ), "{insert}");
        assert!(insert.contains(
            "\"owner_id\"::pg_catalog.text OPERATOR(pg_catalog.=) \"tenant\".\"current_user_id\"()"
        ));
        assert!(insert.contains("'assign'"));
        assert_eq!(
            v.iter().filter(|s| s.starts_with("CREATE POLICY")).count(),
            4
        );
        let plain = protect_statements(
            "public.c",
            &Protection {
                resource: "it's".into(),
                ..Protection::default()
            },
        );
        assert!(plain
            .iter()
            .any(|s| s.contains("'it''s', 'read', '{}'::jsonb")));
        assert!(!plain.iter().any(|s| s.contains("assign")));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("events"), "\"events\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(
            qualified("public", "Mixed Case"),
            "\"public\".\"Mixed Case\""
        );
        assert_eq!(
            quote_ident("x\"; DROP TABLE t; --"),
            "\"x\"\"; DROP TABLE t; --\""
        );
    }

    #[test]
    fn isolate_builds_quoted_restrictive_policies() {
        let t = Target {
            schema: "app",
            table: "ev\"il",
            column: "tenant id",
            legacy_schema: false,
            citus: false,
            protect: None,
        };
        let ddl = isolate_statements(&t, true);
        assert_eq!(
            ddl.column_default,
            "ALTER TABLE \"app\".\"ev\"\"il\" ALTER COLUMN \"tenant id\" SET DEFAULT \"tenant\".\"require_tenant\"()"
        );
        let v = ddl.statements;
        assert!(v
            .iter()
            .all(|s| !s.contains("app.") && !s.contains(" ev\"il")));
        assert!(v[0].starts_with("ALTER TABLE \"app\".\"ev\"\"il\" ENABLE ROW LEVEL SECURITY"));
        assert!(v.iter().any(|s| s.contains("FORCE ROW LEVEL SECURITY")));
        let iso = v
            .iter()
            .find(|s| s.starts_with("CREATE POLICY \"tenant_isolation\" "))
            .unwrap();
        assert!(iso.contains("AS RESTRICTIVE FOR ALL"));
        assert!(iso.contains(
            "USING (\"tenant id\" OPERATOR(pg_catalog.=) (SELECT \"tenant\".\"current_tenant\"()))"
        ));
        assert!(iso.contains(
            "WITH CHECK (\"tenant id\" OPERATOR(pg_catalog.=) (SELECT \"tenant\".\"require_tenant\"()))"
        ));
        assert!(v.iter().any(|s| s.contains("AS RESTRICTIVE FOR DELETE")));
        // the permissive policy depends on the extension (DROP ... CASCADE removes it)
        assert!(v.iter().any(|s| s.contains(
            "AS PERMISSIVE FOR ALL TO PUBLIC USING (\"tenant_internal\".\"_allow\"()) WITH CHECK (\"tenant_internal\".\"_allow\"())"
        )));
        assert!(v.iter().any(|s| s.contains("AS RESTRICTIVE FOR UPDATE")));
        assert_eq!(
            v.last().unwrap(),
            "CREATE INDEX ON \"app\".\"ev\"\"il\" (\"tenant id\")"
        );
        assert!(!isolate_statements(&t, false)
            .statements
            .iter()
            .any(|s| s.starts_with("CREATE INDEX")));
        assert_drops_before_creates(&v);
    }

    /// re-running replaces: every policy name of either shape is dropped before any is created
    fn assert_drops_before_creates(v: &[String]) {
        let first_create = v
            .iter()
            .position(|s| s.starts_with("CREATE POLICY"))
            .unwrap();
        for p in ALL_POLICIES {
            let drop = v
                .iter()
                .position(|s| s.starts_with(&format!("DROP POLICY IF EXISTS \"{p}\"")))
                .unwrap();
            assert!(drop < first_create, "{p}");
        }
    }

    #[test]
    fn citus_shape_is_permissive_per_command_without_subqueries() {
        let t = Target {
            schema: "app",
            table: "events",
            column: "tenant_id",
            legacy_schema: false,
            citus: true,
            protect: None,
        };
        let ddl = isolate_statements(&t, false);
        // the same default as on one node (the caller decides where it is set)
        assert_eq!(
            ddl.column_default,
            "ALTER TABLE \"app\".\"events\" ALTER COLUMN \"tenant_id\" SET DEFAULT \"tenant\".\"require_tenant\"()"
        );
        let v = ddl.statements;
        assert_drops_before_creates(&v);
        let creates: Vec<&String> = v
            .iter()
            .filter(|s| s.starts_with("CREATE POLICY"))
            .collect();
        assert_eq!(creates.len(), 4);
        for c in &creates {
            // Citus refuses subqueries and turns RESTRICTIVE into PERMISSIVE on the shards
            assert!(!c.contains("SELECT") || c.contains("FOR SELECT"), "{c}");
            assert!(!c.contains("(SELECT"), "{c}");
            assert!(!c.contains("RESTRICTIVE"), "{c}");
            assert!(!c.contains("FOR ALL"), "no catch-all: {c}");
            assert!(!c.contains("_allow"), "no catch-all: {c}");
        }
        for cmd in ["SELECT", "INSERT", "UPDATE", "DELETE"] {
            assert_eq!(
                creates
                    .iter()
                    .filter(|c| c.contains(&format!("FOR {cmd} ")))
                    .count(),
                1,
                "{cmd}"
            );
        }
        // reads see no rows without a context, writes raise MT001
        assert!(creates[0].contains(
            "USING (\"tenant_id\" OPERATOR(pg_catalog.=) \"tenant\".\"current_tenant\"())"
        ));
        assert!(creates[1..].iter().all(
            |c| c.contains("\"tenant\".\"require_tenant\"()") && !c.contains("current_tenant")
        ));
    }

    #[test]
    fn protect_folds_into_the_citus_policies_and_follows_the_one_node_shape() {
        let prot = Protection {
            resource: "docs".into(),
            fields: vec![("owner_id".into(), "author".into())],
            owner: Some("author".into()),
        };
        let t = Target {
            schema: "app",
            table: "docs",
            column: "tenant_id",
            legacy_schema: false,
            citus: true,
            protect: Some(&prot),
        };
        let v = isolate_statements(&t, false).statements;
        // protect's restrictive policies (permissive on the shards) are dropped first
        let first_create = v
            .iter()
            .position(|s| s.starts_with("CREATE POLICY"))
            .unwrap();
        for p in PROTECT_POLICIES {
            let drop = v
                .iter()
                .position(|s| s.starts_with(&format!("DROP POLICY IF EXISTS \"{p}\"")))
                .unwrap();
            assert!(drop < first_create, "{p}");
        }
        let creates: Vec<&String> = v
            .iter()
            .filter(|s| s.starts_with("CREATE POLICY"))
            .collect();
        assert_eq!(creates.len(), 4, "{creates:?}");
        let ctx = "pg_catalog.jsonb_build_object('owner_id', \"author\"::pg_catalog.text)";
        for (cmd, tenant, action) in [
            ("SELECT", "current_tenant", "read"),
            ("INSERT", "require_tenant", "create"),
            ("UPDATE", "require_tenant", "update"),
            ("DELETE", "require_tenant", "delete"),
        ] {
            let c = creates
                .iter()
                .find(|c| c.contains(&format!("FOR {cmd} ")))
                .unwrap();
            assert!(!c.contains("RESTRICTIVE") && !c.contains("(SELECT"), "{c}");
            // the tenant condition first, then the permission, ANDed
            let want = format!(
                "(\"tenant_id\" OPERATOR(pg_catalog.=) \"tenant\".\"{tenant}\"() AND \"tenant\".\"can\"('docs', '{action}', {ctx})"
            );
            assert!(c.contains(&want), "{c}\nwants {want}");
        }
        let insert = creates.iter().find(|c| c.contains("FOR INSERT")).unwrap();
        assert!(insert.contains("'assign'"), "{insert}");
        // without Citus the same registration re-creates protect's own restrictive policies
        let one = Target { citus: false, ..t };
        let v = isolate_statements(&one, false).statements;
        assert_eq!(
            v.iter()
                .filter(|s| s.starts_with("CREATE POLICY \"tenant_protect_"))
                .count(),
            4
        );
        assert!(v
            .iter()
            .filter(|s| s.starts_with("CREATE POLICY \"tenant_isolation"))
            .all(|s| !s.contains("can")));
    }

    #[test]
    fn unisolate_restores_previous_state() {
        let t = Target {
            schema: "public",
            table: "events",
            column: "tenant_id",
            legacy_schema: false,
            citus: false,
            protect: None,
        };
        let prev = Previous {
            rls_enabled: true,
            rls_forced: false,
            column_default: Some("'00000000-0000-0000-0000-000000000000'::uuid"),
            created_index: Some("events_tenant_id_idx"),
        };
        let ddl = unisolate_statements(&t, &prev);
        assert_eq!(
            ddl.column_default,
            "ALTER TABLE \"public\".\"events\" ALTER COLUMN \"tenant_id\" SET DEFAULT '00000000-0000-0000-0000-000000000000'::uuid"
        );
        let v = ddl.statements;
        assert!(v.iter().any(|s| s.ends_with("NO FORCE ROW LEVEL SECURITY")));
        assert!(!v.iter().any(|s| s.contains("DISABLE ROW LEVEL SECURITY")));
        assert!(v
            .iter()
            .any(|s| s == "DROP INDEX IF EXISTS events_tenant_id_idx"));
        let prev2 = Previous {
            rls_enabled: false,
            rls_forced: false,
            column_default: None,
            created_index: None,
        };
        let ddl2 = unisolate_statements(&t, &prev2);
        assert!(ddl2.column_default.ends_with("DROP DEFAULT"));
        let v2 = ddl2.statements;
        assert!(v2.iter().any(|s| s.ends_with("DISABLE ROW LEVEL SECURITY")));
        assert!(!v2.iter().any(|s| s.starts_with("DROP INDEX")));
    }

    #[test]
    fn schema_guard_on_citus_is_permissive_per_command_without_subquery() {
        let t = uuid::Uuid::parse_str("11111111-2222-3333-4444-555555555555").unwrap();
        let v = schema_guard_statements("tenant_x", "docs", t, true);
        let policies: Vec<&String> = v
            .iter()
            .filter(|s| s.starts_with("CREATE POLICY"))
            .collect();
        assert_eq!(policies.len(), 4);
        for p in &policies {
            assert!(p.contains("AS PERMISSIVE"), "{p}");
            assert!(!p.contains("(SELECT"), "no subquery: {p}");
            assert!(!p.contains("FOR ALL"), "no catch-all: {p}");
            assert!(
                p.contains("'11111111-2222-3333-4444-555555555555'::pg_catalog.uuid"),
                "{p}"
            );
        }
        assert!(policies
            .iter()
            .any(|p| p.contains("FOR SELECT") && p.contains("current_tenant")));
        assert!(policies
            .iter()
            .any(|p| p.contains("FOR INSERT") && p.contains("require_tenant")));
        // both shapes drop every policy name of the other
        let one_node = schema_guard_statements("tenant_x", "docs", t, false);
        for drops in [&v, &one_node] {
            assert_eq!(
                drops
                    .iter()
                    .filter(|s| s.starts_with("DROP POLICY"))
                    .count(),
                5
            );
        }
        assert!(v.iter().any(|s| s.ends_with("FORCE ROW LEVEL SECURITY")));
    }

    #[test]
    fn provisioning_quotes_and_guards_every_table() {
        let t = uuid::Uuid::parse_str("11111111-2222-3333-4444-555555555555").unwrap();
        let v = provision_statements(
            "tpl",
            "tenant_x",
            &[
                ("USAGE".into(), Some("app".into())),
                ("CREATE".into(), None),
                ("EVIL; DROP".into(), None),
            ],
            &[(
                "we\"ird".into(),
                vec![
                    ("SELECT".into(), Some("app".into())),
                    ("SELECT".into(), None),
                    ("TRUNCATE".into(), None),
                    ("TRIGGER".into(), Some("app".into())),
                ],
            )],
            t,
            false,
        );
        assert_eq!(v[0], "CREATE SCHEMA \"tenant_x\"");
        assert_eq!(v[1], "GRANT USAGE ON SCHEMA \"tenant_x\" TO \"app\"");
        assert!(!v.iter().any(|s| s.contains("EVIL")
            || s.contains("CREATE ON")
            || s.contains("TRUNCATE")
            || s.contains("TRIGGER ON")));
        assert_eq!(
            v[2],
            "CREATE TABLE \"tenant_x\".\"we\"\"ird\" (LIKE \"tpl\".\"we\"\"ird\" INCLUDING ALL)"
        );
        assert_eq!(
            v[3],
            "GRANT SELECT ON \"tenant_x\".\"we\"\"ird\" TO \"app\""
        );
        assert_eq!(v[4], "GRANT SELECT ON \"tenant_x\".\"we\"\"ird\" TO PUBLIC");
        assert!(v[5].ends_with("ENABLE ROW LEVEL SECURITY"));
        assert!(v[6].ends_with("FORCE ROW LEVEL SECURITY"));
        let guard = v[11..].join("\n");
        assert!(guard.contains("AS RESTRICTIVE FOR ALL TO PUBLIC USING ('11111111-2222-3333-4444-555555555555'::pg_catalog.uuid OPERATOR(pg_catalog.=)"), "{guard}");
        assert!(guard.contains("\"require_tenant\"())"), "{guard}");
        assert!(
            guard.contains(
                "AS PERMISSIVE FOR ALL TO PUBLIC USING (\"tenant_internal\".\"_allow\"())"
            ),
            "{guard}"
        );
    }
}
