//! One tenant's data in and out: the export document, checking an import against the
//! registry, the order in which a purge deletes. Pure Rust, no Postgres.
//!
//! Document (format `multitenant-export`, version 1):
//! `{"format", "version", "tenant": {slug, name, plan, status, region, settings},
//!   "tables": {"schema.table": [row objects without the tenant column]},
//!   "members": [...], "roles": [...], "permissions": [...], "organizations": [...],
//!   "usage": [...], "audit": [...]? }`

use crate::core::error::{MtError, MtResult};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

pub const FORMAT: &str = "multitenant-export";
pub const VERSION: i64 = 1;

/// The keys a document may have at the top level.
const TOP_KEYS: [&str; 10] = [
    "format",
    "version",
    "tenant",
    "tables",
    "members",
    "roles",
    "permissions",
    "organizations",
    "usage",
    "audit",
];

/// Check the envelope of an import document: format, version, no unknown keys; returns the
/// tables part (table name -> rows).
pub fn envelope(doc: &Value) -> MtResult<&Map<String, Value>> {
    let Value::Object(o) = doc else {
        return Err(MtError::invalid("an export document must be a JSON object"));
    };
    let unknown: Vec<&str> = o
        .keys()
        .map(String::as_str)
        .filter(|k| !TOP_KEYS.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(MtError::invalid(format!(
            "unknown keys in the document: {}",
            unknown.join(", ")
        )));
    }
    if o.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(MtError::invalid(format!(
            "not a {FORMAT} document (format)"
        )));
    }
    if o.get("version").and_then(Value::as_i64) != Some(VERSION) {
        return Err(MtError::invalid(format!(
            "unsupported document version (this build reads version {VERSION})"
        )));
    }
    match o.get("tables") {
        None => Err(MtError::invalid("the document has no tables")),
        Some(Value::Object(t)) => Ok(t),
        Some(_) => Err(MtError::invalid("tables must be an object of table: rows")),
    }
}

/// Check the roles, permissions and members of a document the way `create_role`,
/// `grant_permission` and `add_member` check theirs; the built-in roles can be neither
/// redefined nor given permissions by a document (that would widen every tenant member's
/// rights). `known`: roles the tenant has already.
pub fn check_rbac(doc: &Value, known: &BTreeSet<String>) -> MtResult<()> {
    use crate::core::names::{permission_part, user_id};
    use crate::core::rbac::{validate_condition, BUILTIN_ROLE_NAMES};
    let list = |k: &str| -> MtResult<Vec<&Map<String, Value>>> {
        match doc.get(k) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_object()
                        .ok_or_else(|| MtError::invalid(format!("{k}: entry {i} is not an object")))
                })
                .collect(),
            Some(_) => Err(MtError::invalid(format!("{k} must be an array"))),
        }
    };
    let text = |o: &Map<String, Value>, k: &str, part: &str| -> MtResult<String> {
        let s = o
            .get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| MtError::invalid(format!("{part}: \"{k}\" must be a string")))?;
        Ok(s.to_string())
    };
    let mut roles = known.clone();
    for r in list("roles")? {
        let name = text(r, "name", "roles")?;
        permission_part("role", &name)?;
        if name.contains('*') || BUILTIN_ROLE_NAMES.contains(&name.as_str()) {
            return Err(MtError::invalid(format!(
                "roles: \"{name}\" cannot be defined by a document"
            )));
        }
        if let Some(inh) = r.get("inherits") {
            let ok = inh.is_null()
                || inh.as_array().is_some_and(|a| {
                    a.iter().all(|x| {
                        x.as_str()
                            .is_some_and(|x| permission_part("role", x).is_ok())
                    })
                });
            if !ok {
                return Err(MtError::invalid(format!(
                    "roles: \"{name}\" has a bad inherits"
                )));
            }
        }
        roles.insert(name);
    }
    for p in list("permissions")? {
        let role = text(p, "role", "permissions")?;
        if BUILTIN_ROLE_NAMES.contains(&role.as_str()) || !roles.contains(&role) {
            return Err(MtError::invalid(format!(
                "permissions: role \"{role}\" is built in or not defined"
            )));
        }
        permission_part("resource", &text(p, "resource", "permissions")?)?;
        permission_part("action", &text(p, "action", "permissions")?)?;
        validate_condition(p.get("condition").unwrap_or(&Value::Null))?;
    }
    for m in list("members")? {
        user_id(&text(m, "user_id", "members")?)?;
        if let Some(rs) = m.get("roles").and_then(Value::as_array) {
            for r in rs {
                let r = r.as_str().unwrap_or("");
                if !roles.contains(r) {
                    return Err(MtError::invalid(format!(
                        "members: role \"{}\" is not defined",
                        r.escape_default()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The rows of `table` ready to insert for `tenant`: every key must be a column (the
/// tenant column may be present and is overwritten: rows always land in the importing
/// tenant).
pub fn rows_for(
    table: &str,
    rows: &Value,
    columns: &BTreeSet<String>,
    tenant_column: &str,
    tenant: &str,
) -> MtResult<Vec<Value>> {
    let Value::Array(rows) = rows else {
        return Err(MtError::invalid(format!("{table}: rows must be an array")));
    };
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let Value::Object(o) = r else {
            return Err(MtError::invalid(format!(
                "{table}: row {i} is not an object"
            )));
        };
        if let Some(bad) = o.keys().find(|k| !columns.contains(k.as_str())) {
            return Err(MtError::invalid(format!(
                "{table}: row {i} has the unknown column \"{}\"",
                bad.escape_default()
            )));
        }
        let mut o = o.clone();
        o.insert(tenant_column.to_string(), Value::String(tenant.to_string()));
        out.push(Value::Object(o));
    }
    Ok(out)
}

/// The order in which to delete a tenant's rows: a table before the tables it references
/// (`refs`: table -> tables it has foreign keys to, among the registered ones). Cycles are
/// broken by name order (the deletes then rely on the keys' own ON DELETE actions).
pub fn delete_order(refs: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    // referenced-by counts: a table may go once nothing left references it
    let mut referenced_by: BTreeMap<&str, usize> = refs.keys().map(|t| (t.as_str(), 0)).collect();
    for (t, parents) in refs {
        for p in parents {
            if p != t {
                if let Some(n) = referenced_by.get_mut(p.as_str()) {
                    *n += 1;
                }
            }
        }
    }
    let mut done: Vec<String> = Vec::new();
    let mut left: BTreeSet<&str> = refs.keys().map(String::as_str).collect();
    while !left.is_empty() {
        let next = left
            .iter()
            .find(|t| referenced_by.get(**t).copied().unwrap_or(0) == 0)
            .copied()
            .unwrap_or_else(|| *left.iter().next().expect("not empty"));
        left.remove(next);
        done.push(next.to_string());
        for p in refs.get(next).into_iter().flatten() {
            if p != next {
                if let Some(n) = referenced_by.get_mut(p.as_str()) {
                    *n = n.saturating_sub(1);
                }
            }
        }
    }
    done
}

/// A document's table entries in the order to insert them: parents first (the reverse of
/// the delete order).
pub fn insert_order(refs: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut v = delete_order(refs);
    v.reverse();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::Code;
    use serde_json::json;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn envelope_and_rows_are_checked() {
        let ok = json!({"format": FORMAT, "version": 1, "tables": {"public.t": []}});
        assert_eq!(envelope(&ok).unwrap().len(), 1);
        for bad in [
            json!([]),
            json!({"format": "other", "version": 1, "tables": {}}),
            json!({"format": FORMAT, "version": 2, "tables": {}}),
            json!({"format": FORMAT, "version": 1}),
            json!({"format": FORMAT, "version": 1, "tables": [], }),
            json!({"format": FORMAT, "version": 1, "tables": {}, "tabels": {}}),
        ] {
            assert_eq!(
                envelope(&bad).unwrap_err().code,
                Code::InvalidArgument,
                "{bad}"
            );
        }
        let cols = set(&["id", "body", "tenant_id"]);
        let rows = rows_for(
            "t",
            &json!([{"id": 1, "body": "x", "tenant_id": "other"}]),
            &cols,
            "tenant_id",
            "mine",
        )
        .unwrap();
        assert_eq!(
            rows[0]["tenant_id"], "mine",
            "the tenant column is rewritten"
        );
        let e = rows_for(
            "t",
            &json!([{"id": 1, "secret": 2}]),
            &cols,
            "tenant_id",
            "m",
        )
        .unwrap_err();
        assert!(e.to_string().contains("secret"), "{e}");
        assert!(rows_for("t", &json!({"id": 1}), &cols, "tenant_id", "m").is_err());
        assert!(rows_for("t", &json!([1]), &cols, "tenant_id", "m").is_err());
    }

    #[test]
    fn documents_cannot_widen_built_in_roles() {
        let known = set(&["viewer", "member", "admin", "owner"]);
        let ok = json!({"roles": [{"name": "pilot", "inherits": ["viewer"]}],
                        "permissions": [{"role": "pilot", "resource": "tasks", "action": "update", "condition": null}],
                        "members": [{"user_id": "neil", "roles": ["pilot", "member"]}]});
        assert!(check_rbac(&ok, &known).is_ok());
        for bad in [
            json!({"roles": [{"name": "viewer", "inherits": ["owner"]}]}),
            json!({"permissions": [{"role": "viewer", "resource": "*", "action": "*"}]}),
            json!({"permissions": [{"role": "ghost", "resource": "a", "action": "b"}]}),
            json!({"roles": [{"name": "p"}], "permissions": [{"role": "p", "resource": "a", "action": "b", "condition": {"x": {"regex": 1}}}]}),
            json!({"members": [{"user_id": "neil", "roles": ["ghost"]}]}),
            json!({"members": [{"user_id": ""}]}),
            json!({"roles": [{"name": "A B"}]}),
            json!({"roles": {}}),
        ] {
            assert_eq!(
                check_rbac(&bad, &known).unwrap_err().code,
                Code::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn children_are_deleted_before_their_parents() {
        let mut refs = BTreeMap::new();
        refs.insert("a_lines".to_string(), set(&["orders", "products"]));
        refs.insert("orders".to_string(), set(&["customers"]));
        refs.insert("customers".to_string(), set(&[]));
        refs.insert("products".to_string(), set(&[]));
        refs.insert("selfref".to_string(), set(&["selfref"]));
        let order = delete_order(&refs);
        let pos = |t: &str| order.iter().position(|x| x == t).unwrap();
        assert!(pos("a_lines") < pos("orders") && pos("orders") < pos("customers"));
        assert!(pos("a_lines") < pos("products"));
        assert_eq!(order.len(), 5);
        let ins = insert_order(&refs);
        assert!(ins.iter().position(|x| x == "customers") < ins.iter().position(|x| x == "orders"));
        // a cycle still yields every table once
        let mut cyc = BTreeMap::new();
        cyc.insert("x".to_string(), set(&["y"]));
        cyc.insert("y".to_string(), set(&["x"]));
        assert_eq!(delete_order(&cyc).len(), 2);
    }
}
