//! Roles, inheritance, permissions and conditions: pure Rust, no Postgres.
//!
//! Condition language (kept small on purpose), a JSON object whose every entry must hold:
//!   `{"owner_id": "self"}`                 field equals the current user id
//!   `{"org_id": "self_org"}`               field equals the user's organization in the tenant
//!   `{"scope": "own_campaigns"}`           field equals a literal
//!   `{"status": {"in": ["draft", "open"]}}` field is one of the values
//!   `{"status": {"ne": "archived"}}`       field differs from the value
//!   `{"amount": {"lte": 100}}`             numeric comparison: lt, lte, gt, gte
//! Fields are looked up in the context object passed to `can()`; a missing field fails the
//! condition. Unknown operators are rejected when the permission is written.

use crate::core::error::{MtError, MtResult};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

pub const OPERATORS: [&str; 7] = ["eq", "ne", "in", "lt", "lte", "gt", "gte"];

/// Validate a condition when a permission is written.
pub fn validate_condition(c: &Value) -> MtResult<()> {
    let obj = match c {
        Value::Null => return Ok(()),
        Value::Object(o) => o,
        _ => {
            return Err(MtError::invalid(
                "a condition must be a JSON object of field: test",
            ))
        }
    };
    for (field, test) in obj {
        if field.is_empty() {
            return Err(MtError::invalid("condition fields must not be empty"));
        }
        if let Value::Object(ops) = test {
            if ops.len() != 1 {
                return Err(MtError::invalid(format!(
                    "condition on \"{field}\" must have exactly one operator"
                )));
            }
            let (op, arg) = ops.iter().next().expect("one entry");
            if !OPERATORS.contains(&op.as_str()) {
                return Err(
                    MtError::invalid(format!("unknown condition operator \"{op}\""))
                        .hint("Use eq, ne, in, lt, lte, gt or gte."),
                );
            }
            if op == "in" && !arg.is_array() {
                return Err(MtError::invalid("\"in\" needs an array"));
            }
            if ["lt", "lte", "gt", "gte"].contains(&op.as_str()) && !arg.is_number() {
                return Err(MtError::invalid(format!("\"{op}\" needs a number")));
            }
        }
    }
    Ok(())
}

fn resolve<'a>(
    v: &'a Value,
    who: &Subject<'a>,
    self_value: &'a mut Option<Value>,
) -> Option<&'a Value> {
    match v {
        Value::String(s) if s == "self" => {
            *self_value = who.user.map(|u| Value::String(u.to_string()));
            self_value.as_ref()
        }
        Value::String(s) if s == "self_org" => {
            *self_value = who.org.map(|o| Value::String(o.to_string()));
            self_value.as_ref()
        }
        other => Some(other),
    }
}

/// Who a condition is evaluated for: `self` is the user id, `self_org` the id of the
/// organization the user belongs to in the tenant (a condition naming one fails without).
#[derive(Clone, Copy, Debug, Default)]
pub struct Subject<'a> {
    pub user: Option<&'a str>,
    pub org: Option<&'a str>,
}

fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            n.to_string() == *s
        }
        _ => a == b,
    }
}

/// Does `condition` hold for `ctx`, with `self` meaning `user`?
pub fn condition_holds(condition: &Value, ctx: &Value, user: Option<&str>) -> bool {
    condition_holds_for(condition, ctx, &Subject { user, org: None })
}

/// Does `condition` hold for `ctx`, for `who` (`self`, `self_org`)?
pub fn condition_holds_for(condition: &Value, ctx: &Value, who: &Subject<'_>) -> bool {
    let obj = match condition {
        Value::Null => return true,
        Value::Object(o) => o,
        _ => return false,
    };
    obj.iter().all(|(field, test)| {
        let Some(actual) = ctx.get(field) else {
            return false;
        };
        let (op, arg) = match test {
            Value::Object(ops) => match ops.iter().next() {
                Some((op, arg)) => (op.as_str(), arg),
                None => return false,
            },
            lit => ("eq", lit),
        };
        let mut tmp = None;
        let Some(expected) = resolve(arg, who, &mut tmp) else {
            return false;
        };
        let num = |v: &Value| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        };
        match op {
            "eq" => loosely_equal(actual, expected),
            "ne" => !loosely_equal(actual, expected),
            "in" => expected.as_array().is_some_and(|a| {
                a.iter().any(|x| {
                    let mut t = None;
                    resolve(x, who, &mut t).is_some_and(|x| loosely_equal(actual, x))
                })
            }),
            "lt" | "lte" | "gt" | "gte" => match (num(actual), num(expected)) {
                (Some(a), Some(e)) => match op {
                    "lt" => a < e,
                    "lte" => a <= e,
                    "gt" => a > e,
                    _ => a >= e,
                },
                _ => false,
            },
            _ => false,
        }
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct Permission {
    pub role: String,
    pub resource: String,
    pub action: String,
    pub condition: Value,
}

fn matches(pattern: &str, value: &str) -> bool {
    pattern == "*"
        || pattern == value
        || pattern
            .strip_suffix(".*")
            .is_some_and(|p| value.starts_with(p) && value[p.len()..].starts_with('.'))
}

/// A tenant's roles and permissions, compiled for `can()`.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// role -> roles it inherits from
    pub inherits: HashMap<String, Vec<String>>,
    pub permissions: Vec<Permission>,
}

impl Policy {
    /// All roles reachable from `roles` through inheritance (cycles are rejected on write,
    /// and tolerated here).
    pub fn expand(&self, roles: &[String]) -> HashSet<String> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut stack: Vec<String> = roles.to_vec();
        while let Some(r) = stack.pop() {
            if seen.insert(r.clone()) {
                if let Some(parents) = self.inherits.get(&r) {
                    stack.extend(parents.iter().cloned());
                }
            }
        }
        seen
    }

    pub fn can(
        &self,
        roles: &[String],
        resource: &str,
        action: &str,
        ctx: &Value,
        user: Option<&str>,
    ) -> bool {
        self.can_for(roles, resource, action, ctx, &Subject { user, org: None })
    }

    /// [`Policy::can`] for a subject with an organization (`self_org` in conditions).
    pub fn can_for(
        &self,
        roles: &[String],
        resource: &str,
        action: &str,
        ctx: &Value,
        who: &Subject<'_>,
    ) -> bool {
        let all = self.expand(roles);
        self.permissions.iter().any(|p| {
            all.contains(&p.role)
                && matches(&p.resource, resource)
                && matches(&p.action, action)
                && condition_holds_for(&p.condition, ctx, who)
        })
    }

    /// Would making `role` inherit `parents` create a cycle?
    pub fn creates_cycle(&self, role: &str, parents: &[String]) -> bool {
        let mut g = self.inherits.clone();
        g.insert(role.to_string(), parents.to_vec());
        let probe = Policy {
            inherits: g,
            permissions: vec![],
        };
        parents
            .iter()
            .any(|p| probe.expand(std::slice::from_ref(p)).contains(role))
    }

    /// May a holder of `granter` roles hand out `role`? Only if every permission `role`
    /// (with what it inherits) carries is one the granter holds unconditionally or identically.
    pub fn may_grant(&self, granter: &[String], role: &str) -> bool {
        let mine = self.expand(granter);
        if mine.contains(role) {
            return true;
        }
        let theirs = self.expand(&[role.to_string()]);
        self.permissions
            .iter()
            .filter(|p| theirs.contains(&p.role))
            .all(|p| {
                self.permissions.iter().any(|q| {
                    mine.contains(&q.role)
                        && matches(&q.resource, &p.resource)
                        && matches(&q.action, &p.action)
                        && (q.condition.is_null() || q.condition == p.condition)
                })
            })
    }
}

/// A caller's permissions on some resources, carried in the context a Citus coordinator
/// mints (`Claims::g`): the workers, where `protect`'s policies run on the shards, have no
/// roles, permissions or memberships. Complete for the resources in `r`: every permission
/// of the caller's roles (inheritance expanded) whose resource pattern matches one of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Carried {
    /// the resources these permissions are complete for
    pub r: Vec<String>,
    /// the permissions: resource pattern, action pattern, condition
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p: Vec<(String, String, Value)>,
    /// the user's organization in the tenant (`self_org` in conditions)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o: Option<String>,
}

impl Carried {
    /// `can` from the carried permissions, or None when `resource` is not one they are
    /// complete for (the caller then asks the node's own tables).
    pub fn decide(
        &self,
        resource: &str,
        action: &str,
        ctx: &Value,
        user: Option<&str>,
    ) -> Option<bool> {
        if !self.r.iter().any(|r| r == resource) {
            return None;
        }
        let who = Subject {
            user,
            org: self.o.as_deref(),
        };
        Some(self.p.iter().any(|(res, act, cond)| {
            matches(res, resource) && matches(act, action) && condition_holds_for(cond, ctx, &who)
        }))
    }
}

impl Policy {
    /// What a context carries for `roles` (with `org`) about `resources`: see [`Carried`].
    pub fn carried(&self, roles: &[String], resources: &[String], org: Option<String>) -> Carried {
        let all = self.expand(roles);
        let mut p: Vec<(String, String, Value)> = Vec::new();
        for perm in &self.permissions {
            if all.contains(&perm.role) && resources.iter().any(|r| matches(&perm.resource, r)) {
                let entry = (
                    perm.resource.clone(),
                    perm.action.clone(),
                    perm.condition.clone(),
                );
                if !p.contains(&entry) {
                    p.push(entry);
                }
            }
        }
        Carried {
            r: resources.to_vec(),
            p,
            o: org,
        }
    }
}

/// The role that owns a tenant: only `tenant_service` and `tenant_admin` change it.
pub const OWNER_ROLE: &str = "owner";

impl Policy {
    /// May a holder of `granter` roles give a role the permission `action` on `resource`
    /// under `condition`? Only if the granter holds a permission that covers it: the same or
    /// a wider pattern, unconditionally or under the identical condition.
    pub fn may_grant_permission(
        &self,
        granter: &[String],
        resource: &str,
        action: &str,
        condition: &Value,
    ) -> bool {
        let mine = self.expand(granter);
        self.permissions.iter().any(|q| {
            mine.contains(&q.role)
                && matches(&q.resource, resource)
                && matches(&q.action, action)
                && (q.condition.is_null() || q.condition == *condition)
        })
    }

    /// Every role `roles` hold, inherited ones included, sorted.
    pub fn effective(&self, roles: &[String]) -> Vec<String> {
        let mut v: Vec<String> = self.expand(roles).into_iter().collect();
        v.sort();
        v
    }
}

/// The roles every tenant starts with (`builtin_roles`): templates cannot redefine them.
pub const BUILTIN_ROLE_NAMES: [&str; 4] = ["viewer", "member", "admin", "owner"];

/// The permissions of a role template, from a JSON array of
/// `{"resource", "action", "condition"?}` or the design documents' shape
/// `{"resource", "action", "conditions": [{"field", "value"}, ...]}` (every condition must
/// hold: they become one condition object). Unknown keys are refused, naming them.
pub fn template_permissions(v: &Value) -> MtResult<Vec<(String, String, Value)>> {
    let Value::Array(items) = v else {
        return Err(MtError::invalid("permissions must be a JSON array"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(o) = item else {
            return Err(MtError::invalid(format!(
                "permission {i} must be a JSON object"
            )));
        };
        let unknown: Vec<&str> = o
            .keys()
            .map(String::as_str)
            .filter(|k| !["resource", "action", "condition", "conditions"].contains(k))
            .collect();
        if !unknown.is_empty() {
            return Err(MtError::invalid(format!(
                "permission {i}: unknown keys {}",
                unknown.join(", ")
            ))
            .hint("Use resource, action and condition (or conditions: [{field, value}])."));
        }
        let text = |k: &str| -> MtResult<String> {
            let s = o.get(k).and_then(Value::as_str).ok_or_else(|| {
                MtError::invalid(format!("permission {i}: \"{k}\" must be a string"))
            })?;
            crate::core::names::permission_part(k, s)?;
            Ok(s.to_string())
        };
        let (resource, action) = (text("resource")?, text("action")?);
        let condition = match (o.get("condition"), o.get("conditions")) {
            (Some(_), Some(_)) => {
                return Err(MtError::invalid(format!(
                    "permission {i}: give condition or conditions, not both"
                )))
            }
            (Some(c), None) => c.clone(),
            (None, Some(Value::Array(cs))) => {
                let mut obj = serde_json::Map::new();
                for c in cs {
                    let field = c.get("field").and_then(Value::as_str);
                    let value = c.get("value");
                    let (Some(field), Some(value), true) =
                        (field, value, c.as_object().is_some_and(|m| m.len() == 2))
                    else {
                        return Err(MtError::invalid(format!(
                            "permission {i}: each of conditions must be {{\"field\", \"value\"}}"
                        )));
                    };
                    obj.insert(field.to_string(), value.clone());
                }
                if obj.is_empty() {
                    Value::Null
                } else {
                    Value::Object(obj)
                }
            }
            (None, Some(_)) => {
                return Err(MtError::invalid(format!(
                    "permission {i}: conditions must be an array"
                )))
            }
            (None, None) => Value::Null,
        };
        validate_condition(&condition)?;
        out.push((resource, action, condition));
    }
    Ok(out)
}

/// A built-in role template: name, roles it inherits, (resource, action, condition).
pub type RoleTemplate = (
    &'static str,
    Vec<&'static str>,
    Vec<(&'static str, &'static str, Value)>,
);

/// Built-in role templates copied into every new tenant.
pub fn builtin_roles() -> Vec<RoleTemplate> {
    vec![
        ("viewer", vec![], vec![("*", "read", Value::Null)]),
        (
            "member",
            vec!["viewer"],
            vec![
                ("*", "create", Value::Null),
                ("*", "update", serde_json::json!({"owner_id": "self"})),
                ("*", "delete", serde_json::json!({"owner_id": "self"})),
            ],
        ),
        ("admin", vec!["member"], vec![("*", "*", Value::Null)]),
        ("owner", vec!["admin"], vec![]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(role: &str, res: &str, act: &str, cond: Value) -> Permission {
        Permission {
            role: role.into(),
            resource: res.into(),
            action: act.into(),
            condition: cond,
        }
    }

    /// The seeds' matrix: explorer < business < agency, with self and owner conditions.
    fn seeds() -> Policy {
        let mut inherits = HashMap::new();
        inherits.insert("business".to_string(), vec!["explorer".to_string()]);
        inherits.insert("agency".to_string(), vec!["business".to_string()]);
        inherits.insert("admin".to_string(), vec!["agency".to_string()]);
        Policy {
            inherits,
            permissions: vec![
                p("explorer", "missions", "read", Value::Null),
                p("explorer", "profile", "update", json!({"userId": "self"})),
                p("business", "campaigns", "create", Value::Null),
                p(
                    "business",
                    "campaigns",
                    "update",
                    json!({"ownerId": "self"}),
                ),
                p(
                    "agency",
                    "campaigns",
                    "read",
                    json!({"scope": "own_campaigns"}),
                ),
                p("agency", "reports", "*", Value::Null),
                p("admin", "*", "*", Value::Null),
            ],
        }
    }

    #[test]
    fn carried_permissions_decide_as_the_policy_does() {
        let pol = seeds();
        let resources = vec!["campaigns".to_string(), "reports".to_string()];
        let ctxs = [
            json!({}),
            json!({"ownerId": "bob"}),
            json!({"ownerId": "ann"}),
            json!({"scope": "own_campaigns"}),
        ];
        for role in ["explorer", "business", "agency", "admin", "nobody"] {
            let roles = vec![role.to_string()];
            let c = pol.carried(&roles, &resources, None);
            for res in ["campaigns", "reports"] {
                for act in ["read", "create", "update", "delete", "export"] {
                    for ctx in &ctxs {
                        let want = pol.can(&roles, res, act, ctx, Some("bob"));
                        assert_eq!(
                            c.decide(res, act, ctx, Some("bob")),
                            Some(want),
                            "{role} {res} {act} {ctx}"
                        );
                    }
                }
            }
            // complete only for the resources it was made for
            assert_eq!(c.decide("missions", "read", &json!({}), Some("bob")), None);
        }
        // only what matches the resources travels; wildcards do
        let c = pol.carried(&["admin".to_string()], &["campaigns".to_string()], None);
        assert!(
            c.p.iter().all(|(r, _, _)| r == "campaigns" || r == "*"),
            "{c:?}"
        );
        assert!(!c
            .p
            .iter()
            .any(|(r, _, _)| r == "missions" || r == "reports"));
        // self_org comes from the carried organization
        let mut pol = Policy::default();
        pol.permissions
            .push(p("member", "docs", "read", json!({"org": "self_org"})));
        let c = pol.carried(
            &["member".to_string()],
            &["docs".to_string()],
            Some("crew".into()),
        );
        assert_eq!(
            c.decide("docs", "read", &json!({"org": "crew"}), None),
            Some(true)
        );
        assert_eq!(
            c.decide("docs", "read", &json!({"org": "other"}), None),
            Some(false)
        );
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Carried>(&json).unwrap(), c);
    }

    #[test]
    fn template_permissions_take_both_shapes() {
        let p = template_permissions(&json!([
            {"resource": "missions", "action": "read"},
            {"resource": "missions", "action": "create", "conditions": [{"field": "type", "value": "user_generated"}]},
            {"resource": "profile", "action": "update", "condition": {"userId": "self"}}
        ]))
        .unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], ("missions".into(), "read".into(), Value::Null));
        assert_eq!(p[1].2, json!({"type": "user_generated"}));
        assert_eq!(p[2].2, json!({"userId": "self"}));
        for bad in [
            json!({}),
            json!([{"resource": "a"}]),
            json!([{"resource": "a", "action": "b", "limts": 1}]),
            json!([{"resource": "A B", "action": "b"}]),
            json!([{"resource": "a", "action": "b", "conditions": [{"field": "x"}]}]),
            json!([{"resource": "a", "action": "b", "condition": {"x": {"regex": "."}}}]),
            json!([{"resource": "a", "action": "b", "condition": {}, "conditions": []}]),
        ] {
            assert!(template_permissions(&bad).is_err(), "{bad}");
        }
        let e = template_permissions(&json!([{"resource": "a", "action": "b", "limts": 1}]))
            .unwrap_err();
        assert!(e.to_string().contains("limts"), "{e}");
    }

    #[test]
    fn no_escalation_through_grants() {
        let pol = seeds();
        let r = |x: &str| vec![x.to_string()];
        // business holds campaigns/create and campaigns/update (own only)
        assert!(pol.may_grant_permission(&r("business"), "campaigns", "create", &Value::Null));
        assert!(
            pol.may_grant_permission(&r("business"), "missions", "read", &Value::Null),
            "inherited"
        );
        assert!(
            !pol.may_grant_permission(&r("business"), "*", "*", &Value::Null),
            "wildcards it lacks"
        );
        assert!(!pol.may_grant_permission(&r("business"), "campaigns", "*", &Value::Null));
        assert!(
            !pol.may_grant_permission(&r("business"), "campaigns", "update", &Value::Null),
            "wider than its own condition"
        );
        assert!(pol.may_grant_permission(
            &r("business"),
            "campaigns",
            "update",
            &json!({"ownerId": "self"})
        ));
        assert!(!pol.may_grant_permission(
            &r("business"),
            "campaigns",
            "update",
            &json!({"ownerId": "u9"})
        ));
        assert!(
            pol.may_grant_permission(&r("agency"), "reports", "export", &json!({"x": 1})),
            "narrower than its own"
        );
        assert!(pol.may_grant_permission(&r("admin"), "*", "*", &Value::Null));
        // inheritance: only roles whose every permission the granter holds
        assert!(pol.may_grant(&r("agency"), "business"));
        assert!(!pol.may_grant(&r("business"), "agency"));
        assert!(!pol.may_grant(&r("agency"), "admin"));
        assert_eq!(
            pol.effective(&r("agency")),
            vec!["agency", "business", "explorer"]
        );
        assert!(pol.effective(&[]).is_empty());
    }

    #[test]
    fn self_org_is_the_users_organization() {
        let mut pol = seeds();
        pol.permissions
            .push(p("business", "deals", "read", json!({"org": "self_org"})));
        let r = vec!["business".to_string()];
        let north = Subject {
            user: Some("u1"),
            org: Some("o-north"),
        };
        let none = Subject {
            user: Some("u1"),
            org: None,
        };
        assert!(pol.can_for(&r, "deals", "read", &json!({"org": "o-north"}), &north));
        assert!(!pol.can_for(&r, "deals", "read", &json!({"org": "o-south"}), &north));
        assert!(
            !pol.can_for(&r, "deals", "read", &json!({"org": "o-north"}), &none),
            "no organization, no match"
        );
        assert!(!pol.can_for(&r, "deals", "read", &json!({"org": null}), &none));
        assert!(pol.can(&r, "campaigns", "create", &json!({}), Some("u1")));
    }

    #[test]
    fn seed_matrix() {
        let pol = seeds();
        let r = |x: &str| vec![x.to_string()];
        let me = Some("u1");
        let none = json!({});
        assert!(pol.can(&r("explorer"), "missions", "read", &none, me));
        assert!(!pol.can(&r("explorer"), "campaigns", "create", &none, me));
        assert!(
            pol.can(&r("business"), "missions", "read", &none, me),
            "inherited"
        );
        assert!(pol.can(
            &r("business"),
            "campaigns",
            "update",
            &json!({"ownerId": "u1"}),
            me
        ));
        assert!(!pol.can(
            &r("business"),
            "campaigns",
            "update",
            &json!({"ownerId": "u2"}),
            me
        ));
        assert!(
            !pol.can(&r("business"), "campaigns", "update", &none, me),
            "missing field fails"
        );
        assert!(pol.can(
            &r("explorer"),
            "profile",
            "update",
            &json!({"userId": "u1"}),
            me
        ));
        assert!(!pol.can(
            &r("explorer"),
            "profile",
            "update",
            &json!({"userId": "u1"}),
            None
        ));
        assert!(
            pol.can(&r("agency"), "reports", "delete", &none, me),
            "action wildcard"
        );
        assert!(pol.can(
            &r("agency"),
            "campaigns",
            "read",
            &json!({"scope": "own_campaigns"}),
            me
        ));
        assert!(!pol.can(
            &r("agency"),
            "campaigns",
            "read",
            &json!({"scope": "all"}),
            me
        ));
        assert!(
            pol.can(&r("admin"), "anything", "purge", &none, me),
            "super admin *"
        );
        assert!(!pol.can(&[], "missions", "read", &none, me));
    }

    #[test]
    fn cycles_are_detected() {
        let pol = seeds();
        assert!(pol.creates_cycle("explorer", &["agency".to_string()]));
        assert!(pol.creates_cycle("x", &["x".to_string()]));
        assert!(!pol.creates_cycle("viewer2", &["agency".to_string()]));
        // expand terminates even on a cyclic graph
        let mut cyc = Policy::default();
        cyc.inherits.insert("a".into(), vec!["b".into()]);
        cyc.inherits.insert("b".into(), vec!["a".into()]);
        assert_eq!(cyc.expand(&["a".to_string()]).len(), 2);
    }

    #[test]
    fn grant_rules() {
        let pol = seeds();
        let r = |x: &str| vec![x.to_string()];
        assert!(pol.may_grant(&r("agency"), "business"));
        assert!(pol.may_grant(&r("admin"), "agency"));
        assert!(!pol.may_grant(&r("business"), "agency"));
        assert!(!pol.may_grant(&r("explorer"), "admin"));
    }

    #[test]
    fn operators() {
        let ctx = json!({"status": "open", "amount": 50, "owner": "u1", "n": "7"});
        assert!(condition_holds(
            &json!({"status": {"in": ["open", "draft"]}}),
            &ctx,
            None
        ));
        assert!(!condition_holds(
            &json!({"status": {"in": ["closed"]}}),
            &ctx,
            None
        ));
        assert!(condition_holds(
            &json!({"status": {"ne": "archived"}}),
            &ctx,
            None
        ));
        assert!(condition_holds(&json!({"amount": {"lte": 50}}), &ctx, None));
        assert!(!condition_holds(&json!({"amount": {"lt": 50}}), &ctx, None));
        assert!(condition_holds(&json!({"n": {"gt": 6}}), &ctx, None));
        assert!(condition_holds(
            &json!({"owner": {"in": ["self"]}}),
            &ctx,
            Some("u1")
        ));
        assert!(
            condition_holds(&json!({"amount": "50"}), &ctx, None),
            "numbers compare loosely with strings"
        );
        assert!(condition_holds(&Value::Null, &ctx, None));
        assert!(!condition_holds(&json!([1]), &ctx, None));
    }

    #[test]
    fn conditions_are_validated_on_write() {
        assert!(validate_condition(&json!({"owner_id": "self"})).is_ok());
        assert!(validate_condition(&json!({"a": {"in": [1]}})).is_ok());
        assert!(validate_condition(&Value::Null).is_ok());
        for bad in [
            json!({"a": {"regex": ".*"}}),
            json!({"a": {"in": 1}}),
            json!({"a": {"lt": "x"}}),
            json!({"a": {"eq": 1, "ne": 2}}),
            json!([1]),
            json!({"": 1}),
        ] {
            assert!(validate_condition(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(matches("*", "x"));
        assert!(matches("billing.*", "billing.invoices"));
        assert!(!matches("billing.*", "billingx"));
        assert!(!matches("billing.*", "billing"));
        assert!(!matches("a", "b"));
        assert!(crate::core::names::permission_part("resource", "billing.*").is_ok());
        assert!(crate::core::names::permission_part("resource", "Bad").is_err());
    }

    #[test]
    fn builtins_form_a_chain() {
        let b = builtin_roles();
        assert_eq!(
            b.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec!["viewer", "member", "admin", "owner"]
        );
    }
}
