//! Teams (issue 17): no escalation inside a tenant, effective roles, checks for another
//! user, invitations that can be listed, revoked and re-sent, application events.

use crate::common::jwt::{add_keys, authenticate, hs};
use crate::common::*;
use postgres::Client;

/// acme: explorer < business < agency; `rolemgr` may manage roles and holds only
/// campaigns/create; members eve (explorer), bob (business), ann (agency), mgr (rolemgr),
/// hr (members/manage). globex gets a role of its own that nothing here may touch.
fn seed(db: &Db) {
    let mut be = db.as_role("mt_it_backend");
    exec_in(
        &mut be,
        "acme",
        r#"SELECT tenant.create_role('explorer');
           SELECT tenant.create_role('business', ARRAY['explorer']);
           SELECT tenant.create_role('agency', ARRAY['business']);
           SELECT tenant.create_role('rolemgr');
           SELECT tenant.create_role('hr');
           SELECT tenant.grant_permission('explorer', 'missions', 'read');
           SELECT tenant.grant_permission('business', 'campaigns', 'create');
           SELECT tenant.grant_permission('business', 'campaigns', 'update', '{"owner_id": "self"}');
           SELECT tenant.grant_permission('agency', 'members', 'invite');
           SELECT tenant.grant_permission('agency', 'reports', '*');
           SELECT tenant.grant_permission('rolemgr', 'roles', 'manage');
           SELECT tenant.grant_permission('rolemgr', 'campaigns', 'create');
           SELECT tenant.grant_permission('hr', 'members', 'manage');
           SELECT tenant.add_member('acme', 'eve', ARRAY['explorer']);
           SELECT tenant.add_member('acme', 'bob', ARRAY['business']);
           SELECT tenant.add_member('acme', 'ann', ARRAY['agency']);
           SELECT tenant.add_member('acme', 'mgr', ARRAY['rolemgr']);
           SELECT tenant.add_member('acme', 'hr', ARRAY['hr']);"#,
    );
    exec_in(
        &mut be,
        "globex",
        r#"SELECT tenant.create_role('rolemgr');
           SELECT tenant.grant_permission('rolemgr', 'roles', 'manage');
           SELECT tenant.add_member('globex', 'mgr', ARRAY['rolemgr']);"#,
    );
}

/// Roles and permissions of a tenant, as comparable text.
fn rbac_of(db: &Db, slug: &str) -> String {
    let id = db.tenant_id(slug);
    su_text(
        db,
        &format!(
            "SELECT coalesce((SELECT string_agg(name || ':' || inherits::text, ',' ORDER BY name) \
                               FROM tenant.roles WHERE tenant_id = '{id}'), '') || '|' || \
                    coalesce((SELECT string_agg(role || ':' || resource || ':' || action || ':' || coalesce(condition::text, ''), ',' \
                                                ORDER BY role, resource, action) \
                               FROM tenant.permissions WHERE tenant_id = '{id}'), '')"
        ),
    )
}

fn can_as(c: &mut Client, tenant: &str, user: &str, resource: &str, action: &str) -> bool {
    one_in(
        c,
        (tenant, user),
        &format!("SELECT tenant.can('{resource}', '{action}')"),
    )
}

#[test]
fn teams_a_role_manager_cannot_escalate() {
    let db = Db::new("teams_escalation");
    seed(&db);
    let mut be = db.as_role("mt_it_backend");
    let acme_before = rbac_of(&db, "acme");
    let globex_before = rbac_of(&db, "globex");
    // mgr holds roles/manage and campaigns/create, nothing else
    for (sql, what) in [
        (
            "SELECT tenant.grant_permission('rolemgr', '*', '*')",
            "grant itself everything",
        ),
        (
            "SELECT tenant.grant_permission('rolemgr', 'campaigns', '*')",
            "a wider action than it holds",
        ),
        (
            "SELECT tenant.grant_permission('rolemgr', 'reports', 'read')",
            "a permission it lacks",
        ),
        (
            "SELECT tenant.grant_permission('explorer', 'campaigns', 'update')",
            "unconditional where others hold it under a condition",
        ),
        (
            "SELECT tenant.create_role('rolemgr', ARRAY['owner'])",
            "inherit owner",
        ),
        (
            "SELECT tenant.create_role('rolemgr', ARRAY['admin'])",
            "inherit admin",
        ),
        (
            "SELECT tenant.create_role('rolemgr', ARRAY['agency'])",
            "inherit a role with permissions it lacks",
        ),
        (
            "SELECT tenant.create_role('sneaky', ARRAY['admin'])",
            "a new role above itself",
        ),
        ("SELECT tenant.create_role('owner')", "redefine owner"),
        ("SELECT tenant.drop_role('owner')", "drop owner"),
        (
            "SELECT tenant.grant_permission('owner', 'x', 'y')",
            "grant to owner",
        ),
        (
            "SELECT tenant.revoke_permission('owner', '*', '*')",
            "revoke from owner",
        ),
    ] {
        assert_eq!(
            err_in(&mut be, ("acme", "mgr"), sql),
            "MT020",
            "mgr: {what}"
        );
    }
    // the roles the owner's rights rest on are out of reach too, and revoking or dropping
    // needs what it takes away
    for (sql, what) in [
        (
            "SELECT tenant.revoke_permission('admin', '*', '*')",
            "strip admin (and so the owner)",
        ),
        (
            "SELECT tenant.grant_permission('member', 'reports', 'read')",
            "widen a built-in role beyond its own rights",
        ),
        (
            "SELECT tenant.create_role('viewer', ARRAY['rolemgr'])",
            "redefine a built-in role",
        ),
        (
            "SELECT tenant.drop_role('explorer')",
            "drop a role with permissions it lacks",
        ),
        (
            "SELECT tenant.revoke_permission('explorer', 'missions', 'read')",
            "revoke what it lacks",
        ),
    ] {
        assert_eq!(
            err_in(&mut be, ("acme", "mgr"), sql),
            "MT020",
            "mgr: {what}"
        );
    }
    assert_eq!(rbac_of(&db, "acme"), acme_before, "nothing changed in acme");
    assert!(!can_as(&mut be, "acme", "mgr", "billing", "delete"));
    // what it holds it may hand out
    exec_in(
        &mut be,
        ("acme", "mgr"),
        "SELECT tenant.grant_permission('explorer', 'campaigns', 'create');
         SELECT tenant.create_role('helper', ARRAY['rolemgr'])",
    );
    assert!(can_as(&mut be, "acme", "eve", "campaigns", "create"));
    // a member without roles/manage cannot manage roles at all
    assert_eq!(
        err_in(&mut be, ("acme", "bob"), "SELECT tenant.create_role('x')"),
        "MT020"
    );
    // the backend itself (no user in the context) is not held to a member's rights
    exec_in(
        &mut be,
        "acme",
        "SELECT tenant.grant_permission('owner', 'billing', 'manage')",
    );
    // add_member refuses roles the tenant does not define, for everyone
    assert_eq!(
        err_of(
            &mut be,
            "SELECT tenant.add_member('acme', 'zed', ARRAY['nosuch'])"
        ),
        "MT030"
    );
    assert_eq!(
        err_of(
            &mut be,
            "SELECT tenant.add_member('globex', 'zed', ARRAY['business'])"
        ),
        "MT030",
        "acme's roles are not globex's"
    );
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.members WHERE user_id = 'zed'"
        ),
        0
    );
    // a members manager cannot erase an owner or a member above it; an admin cannot hand
    // out owner through an invitation
    exec_in(
        &mut be,
        "acme",
        "SELECT tenant.add_member('acme', 'olive', ARRAY['owner']);
         SELECT tenant.add_member('acme', 'boss', ARRAY['admin'])",
    );
    assert_eq!(
        err_in(
            &mut be,
            ("acme", "hr"),
            "SELECT tenant.forget_user('olive')"
        ),
        "MT020"
    );
    assert_eq!(
        err_in(&mut be, ("acme", "hr"), "SELECT tenant.forget_user('eve')"),
        "MT020"
    );
    assert_eq!(
        err_in(
            &mut be,
            ("acme", "boss"),
            "SELECT tenant.invite('x@example.com', 'owner')"
        ),
        "MT020"
    );
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.members WHERE user_id IN ('olive', 'eve')"
        ),
        2
    );
    // globex's roles were never touched by any of it
    assert_eq!(rbac_of(&db, "globex"), globex_before);
    // and mgr's rights in globex are globex's: it cannot reach acme's roles from there
    exec_in(
        &mut be,
        ("globex", "mgr"),
        "SELECT tenant.drop_role('rolemgr')",
    );
    assert!(
        rbac_of(&db, "acme").contains("rolemgr:"),
        "acme's rolemgr is still there"
    );
}

#[test]
fn teams_effective_roles_has_role_and_can_user() {
    let db = Db::new("teams_roles");
    seed(&db);
    let mut be = db.as_role("mt_it_backend");
    let roles = |c: &mut Client, ctx: (&str, &str), f: &str| -> Vec<String> {
        one_in::<Vec<String>>(c, ctx, &format!("SELECT tenant.{f}()"))
    };
    assert_eq!(
        roles(&mut be, ("acme", "ann"), "effective_roles"),
        ["agency", "business", "explorer"]
    );
    assert_eq!(roles(&mut be, ("acme", "ann"), "current_roles"), ["agency"]);
    assert!(one_in::<bool>(
        &mut be,
        ("acme", "ann"),
        "SELECT tenant.has_role('explorer')"
    ));
    assert!(!one_in::<bool>(
        &mut be,
        ("acme", "ann"),
        "SELECT tenant.has_role('admin')"
    ));
    // a member of acme only: nothing in globex
    assert!(roles(&mut be, ("globex", "ann"), "effective_roles").is_empty());
    assert!(!one_in::<bool>(
        &mut be,
        ("globex", "ann"),
        "SELECT tenant.has_role('agency')"
    ));
    // without a context: nothing
    let mut api = db.as_role("mt_it_api");
    assert!(q1::<Vec<String>>(&mut api, "SELECT tenant.effective_roles()").is_empty());
    assert!(!q1::<bool>(&mut api, "SELECT tenant.has_role('owner')"));

    // can_user: the backend (no user in the context) and members allowed members/manage
    let can_user = |c: &mut Client, ctx: Ctx<'_>, args: &str| -> Result<bool, String> {
        in_tenant(c, ctx, &format!("SELECT tenant.can_user({args})")).map(|r| r[0].get(0))
    };
    let acme: Ctx<'_> = "acme".into();
    assert_eq!(
        can_user(
            &mut be,
            acme,
            r#"'bob', 'campaigns', 'update', '{"owner_id": "bob"}'"#
        ),
        Ok(true)
    );
    assert_eq!(
        can_user(
            &mut be,
            acme,
            r#"'bob', 'campaigns', 'update', '{"owner_id": "ann"}'"#
        ),
        Ok(false)
    );
    assert_eq!(
        can_user(&mut be, acme, "'eve', 'campaigns', 'create'"),
        Ok(false)
    );
    assert_eq!(
        can_user(&mut be, acme, "'ann', 'missions', 'read'"),
        Ok(true),
        "inherited"
    );
    assert_eq!(
        can_user(
            &mut be,
            ("acme", "hr").into(),
            "'bob', 'campaigns', 'create'"
        ),
        Ok(true)
    );
    assert_eq!(
        can_user(&mut be, ("acme", "bob").into(), "'ann', 'reports', 'read'"),
        Err("MT020".into()),
        "bob may not ask about others"
    );
    assert_eq!(
        can_user(&mut be, "globex".into(), "'bob', 'campaigns', 'create'"),
        Ok(false),
        "bob is nobody in globex"
    );
    assert_eq!(
        err_of(
            &mut api,
            "SELECT tenant.can_user('bob', 'campaigns', 'create')"
        ),
        "MT001"
    );
}

#[test]
fn teams_invitations_are_listed_revoked_and_resent() {
    let db = Db::new("teams_invitations");
    seed(&db);
    let mut be = db.as_role("mt_it_backend");
    let one_text = |c: &mut Client, ctx: (&str, &str), sql: &str| -> Result<String, String> {
        in_tenant(c, ctx, sql).map(|r| r[0].get(0))
    };
    let tok1 = one_text(
        &mut be,
        ("acme", "ann"),
        "SELECT tenant.invite('a@example.com', 'business')",
    )
    .unwrap();
    one_text(
        &mut be,
        ("acme", "ann"),
        "SELECT tenant.invite('b@example.com', 'explorer')",
    )
    .unwrap();
    let listed = texts_in(
        &mut be,
        ("acme", "ann"),
        "SELECT email || ':' || role || ':' || coalesce(invited_by, '') FROM tenant.pending_invitations()",
    );
    assert_eq!(
        listed,
        ["a@example.com:business:ann", "b@example.com:explorer:ann"]
    );
    // no token or hash in what is listed
    let cols = texts_in(
        &mut be,
        ("acme", "ann"),
        "SELECT string_agg(x.key, ',' ORDER BY x.key) FROM tenant.pending_invitations() p, jsonb_each(to_jsonb(p)) x",
    );
    assert!(
        !cols[0].contains("token") && !cols[0].contains("hash"),
        "{cols:?}"
    );
    // another tenant sees none of them, and cannot revoke or resend them
    assert!(texts_in(
        &mut be,
        "globex",
        "SELECT email FROM tenant.pending_invitations()"
    )
    .is_empty());
    let id_a: String = su_text(
        &db,
        "SELECT id::text FROM tenant.invitations WHERE email = 'a@example.com'",
    );
    let id_b: String = su_text(
        &db,
        "SELECT id::text FROM tenant.invitations WHERE email = 'b@example.com'",
    );
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            &format!("SELECT tenant.revoke_invitation('{id_a}')")
        ),
        "MT030"
    );
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            &format!("SELECT tenant.resend_invitation('{id_a}')")
        ),
        "MT030"
    );
    // members without members/invite may neither list nor change them
    assert_eq!(
        err_in(
            &mut be,
            ("acme", "bob"),
            "SELECT * FROM tenant.pending_invitations()"
        ),
        "MT020"
    );
    assert_eq!(
        err_in(
            &mut be,
            ("acme", "bob"),
            &format!("SELECT tenant.revoke_invitation('{id_b}')")
        ),
        "MT020"
    );
    // resend: a new token, the old one dead
    let tok2 = one_text(
        &mut be,
        ("acme", "ann"),
        &format!("SELECT tenant.resend_invitation('{id_a}')"),
    )
    .unwrap();
    assert_ne!(tok1, tok2);
    assert_eq!(
        err_of(
            &mut be,
            &format!("SELECT tenant.accept_invitation('{tok1}', 'late')")
        ),
        "MT004"
    );
    let joined: String = q1(
        &mut be,
        &format!("SELECT tenant.accept_invitation('{tok2}', 'newbie')::text"),
    );
    assert_eq!(joined, db.tenant_id("acme").to_string());
    assert_eq!(
        err_in(
            &mut be,
            ("acme", "ann"),
            &format!("SELECT tenant.resend_invitation('{id_a}')")
        ),
        "MT030",
        "accepted"
    );
    // revoke: gone from the list, its token dead, a second revoke is an error
    let b_token = one_text(
        &mut be,
        ("acme", "ann"),
        &format!("SELECT tenant.resend_invitation('{id_b}')"),
    )
    .unwrap();
    assert!(one_in::<bool>(
        &mut be,
        ("acme", "ann"),
        &format!("SELECT tenant.revoke_invitation('{id_b}')")
    ));
    assert_eq!(
        err_of(
            &mut be,
            &format!("SELECT tenant.accept_invitation('{b_token}', 'x')")
        ),
        "MT004"
    );
    assert_eq!(
        err_in(
            &mut be,
            ("acme", "ann"),
            &format!("SELECT tenant.revoke_invitation('{id_b}')")
        ),
        "MT030"
    );
    assert!(texts_in(
        &mut be,
        ("acme", "ann"),
        "SELECT email FROM tenant.pending_invitations()"
    )
    .is_empty());
    // every step is in acme's audit chain, none in globex's
    let events = su_text(
        &db,
        &format!(
            "SELECT string_agg(record_id, ',' ORDER BY id) FROM tenant.audit_log \
                  WHERE tenant_id = '{}' AND record_id LIKE 'invitation.%'",
            db.tenant_id("acme")
        ),
    );
    assert_eq!(
        events,
        "invitation.resent,invitation.resent,invitation.revoked"
    );
    assert_eq!(
        su_i64(&db, &format!("SELECT count(*) FROM tenant.audit_log WHERE tenant_id = '{}' AND record_id LIKE 'invitation.%'", db.tenant_id("globex"))),
        0
    );
    assert!(audit_valid(&mut be, "acme"));
}

#[test]
fn teams_application_events_join_the_tenants_chain() {
    let db = Db::new("teams_events");
    seed(&db);
    let mut be = db.as_role("mt_it_backend");
    exec_in(
        &mut be,
        ("acme", "ann"),
        r#"SELECT tenant.log_event('data.exported', '{"rows": 5}', 'report-7');
           SELECT tenant.log_event('login:failed')"#,
    );
    let acme = db.tenant_id("acme");
    let rows = su_text(
        &db,
        &format!(
            "SELECT string_agg(operation || '|' || coalesce(record_id, '') || '|' || user_id || '|' || new_data::text, ';' ORDER BY id) \
             FROM tenant.audit_log WHERE tenant_id = '{acme}' AND operation = 'APP'"
        ),
    );
    assert_eq!(
        rows,
        r#"APP|report-7|ann|{"data": {"rows": 5}, "action": "data.exported"};APP||ann|{"data": {}, "action": "login:failed"}"#
    );
    assert!(audit_valid(&mut be, "acme"), "verifiable like row entries");
    // an edited application event breaks the chain like any other entry
    let mut su = db.as_role("postgres");
    su.batch_execute(
        "ALTER TABLE tenant.audit_log DISABLE TRIGGER USER;
         UPDATE tenant.audit_log SET new_data = '{\"action\": \"nothing\"}' WHERE operation = 'APP' AND record_id = 'report-7';
         ALTER TABLE tenant.audit_log ENABLE TRIGGER USER;",
    )
    .unwrap();
    assert!(!audit_valid(&mut be, "acme"));
    // globex's chain has none of it
    assert_eq!(
        su_i64(&db, &format!("SELECT count(*) FROM tenant.audit_log WHERE tenant_id = '{}' AND operation = 'APP'", db.tenant_id("globex"))),
        0
    );
    // no context, bad names, read-only tenants: refused, nothing written
    let mut api = db.as_role("mt_it_api");
    assert_eq!(err_of(&mut api, "SELECT tenant.log_event('x')"), "MT001");
    assert_eq!(
        err_in(&mut be, "acme", "SELECT tenant.log_event('Bad Action')"),
        "MT030"
    );
    assert_eq!(
        err_in(&mut be, "acme", "SELECT tenant.log_event('ok', '{}', '')"),
        "MT030"
    );
    assert_eq!(
        su_i64(
            &db,
            "SELECT count(*) FROM tenant.audit_log WHERE operation = 'APP'"
        ),
        2
    );
}

/// The design documents' permission matrix (seeds, "RBAC"), in their own shape.
const MATRIX: [(&str, &str, &str); 4] = [
    (
        "explorer",
        "{}",
        r#"[{"resource": "missions", "action": "read"},
            {"resource": "missions", "action": "create", "conditions": [{"field": "type", "value": "user_generated"}]},
            {"resource": "profile", "action": "update", "conditions": [{"field": "userId", "value": "self"}]},
            {"resource": "rewards", "action": "read", "conditions": [{"field": "userId", "value": "self"}]}]"#,
    ),
    ("influencer", "{explorer}", "[]"),
    (
        "business",
        "{explorer}",
        r#"[{"resource": "campaigns", "action": "create"},
            {"resource": "campaigns", "action": "update", "conditions": [{"field": "ownerId", "value": "self"}]},
            {"resource": "analytics", "action": "read", "conditions": [{"field": "scope", "value": "own_campaigns"}]},
            {"resource": "billing", "action": "read"}]"#,
    ),
    (
        "agency",
        "{business}",
        r#"[{"resource": "clients", "action": "create"},
            {"resource": "clients", "action": "read"},
            {"resource": "analytics", "action": "read", "conditions": [{"field": "scope", "value": "all_clients"}]}]"#,
    ),
];

#[test]
fn teams_role_templates_carry_the_design_documents_matrix_into_every_tenant() {
    let db = Db::new("teams_templates");
    let mut admin = db.as_role("mt_it_admin");
    let mut be = db.as_role("mt_it_backend");
    // only tenant_admin defines templates
    assert_eq!(
        err_of(&mut be, "SELECT tenant.define_role_template('x')"),
        "42501"
    );
    for (name, inherits, perms) in MATRIX {
        admin
            .execute(
                "SELECT tenant.define_role_template($1, $2::text::text[], $3::text::jsonb)",
                &[&name, &inherits, &perms],
            )
            .unwrap();
    }
    // bad definitions: MT030, nothing stored
    for sql in [
        "SELECT tenant.define_role_template('owner')",
        "SELECT tenant.define_role_template('x', ARRAY['nosuch'])",
        "SELECT tenant.define_role_template('explorer', ARRAY['agency'])",
        r#"SELECT tenant.define_role_template('x', '{}', '[{"resource": "a", "action": "b", "limts": 1}]')"#,
        r#"SELECT tenant.define_role_template('x', '{}', '{"resource": "a"}')"#,
        "SELECT tenant.define_role_template('Bad Name')",
        "SELECT tenant.drop_role_template('explorer')",
    ] {
        assert_eq!(err_of(&mut admin, sql), "MT030", "{sql}");
    }
    assert_eq!(su_i64(&db, "SELECT count(*) FROM tenant.role_templates"), 4);
    // a new tenant gets them at creation
    be.batch_execute("SELECT tenant.create('initech', 'Initech')")
        .unwrap();
    exec_in(
        &mut be,
        "initech",
        "SELECT tenant.add_member('initech', 'ex', ARRAY['explorer']);
         SELECT tenant.add_member('initech', 'inf', ARRAY['influencer']);
         SELECT tenant.add_member('initech', 'biz', ARRAY['business']);
         SELECT tenant.add_member('initech', 'ag', ARRAY['agency'])",
    );
    // every cell of the matrix, for every role (inheritance included)
    let cells: [(&str, &str, &str, [bool; 4]); 14] = [
        // resource, action, ctx (the user is the row's `self`), [explorer, influencer, business, agency]
        ("missions", "read", "{}", [true, true, true, true]),
        (
            "missions",
            "create",
            r#"{"type": "user_generated"}"#,
            [true, true, true, true],
        ),
        (
            "missions",
            "create",
            r#"{"type": "official"}"#,
            [false, false, false, false],
        ),
        (
            "profile",
            "update",
            r#"{"userId": "SELF"}"#,
            [true, true, true, true],
        ),
        (
            "profile",
            "update",
            r#"{"userId": "someone-else"}"#,
            [false, false, false, false],
        ),
        (
            "rewards",
            "read",
            r#"{"userId": "SELF"}"#,
            [true, true, true, true],
        ),
        ("campaigns", "create", "{}", [false, false, true, true]),
        (
            "campaigns",
            "update",
            r#"{"ownerId": "SELF"}"#,
            [false, false, true, true],
        ),
        (
            "campaigns",
            "update",
            r#"{"ownerId": "someone-else"}"#,
            [false, false, false, false],
        ),
        (
            "analytics",
            "read",
            r#"{"scope": "own_campaigns"}"#,
            [false, false, true, true],
        ),
        (
            "analytics",
            "read",
            r#"{"scope": "all_clients"}"#,
            [false, false, false, true],
        ),
        ("billing", "read", "{}", [false, false, true, true]),
        ("clients", "create", "{}", [false, false, false, true]),
        ("clients", "read", "{}", [false, false, false, true]),
    ];
    let users = ["ex", "inf", "biz", "ag"];
    for (res, act, ctx, expected) in cells {
        for (user, want) in users.iter().zip(expected) {
            let ctx = ctx.replace("SELF", user);
            let got: bool = one_in(
                &mut be,
                ("initech", *user),
                &format!("SELECT tenant.can('{res}', '{act}', '{ctx}'::jsonb)"),
            );
            assert_eq!(got, want, "{user}: {act} {res} {ctx}");
        }
    }
    // existing tenants get them on request, one or all; another tenant is untouched
    let roles_of = |slug: &str| {
        su_text(
            &db,
            &format!(
                "SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM tenant.roles \
                 WHERE tenant_id = '{}' AND NOT builtin",
                db.tenant_id(slug)
            ),
        )
    };
    assert_eq!(roles_of("acme"), "");
    let n: i64 = q1(&mut be, "SELECT tenant.apply_role_templates('acme')");
    assert_eq!(n, 4);
    assert_eq!(roles_of("acme"), "agency,business,explorer,influencer");
    assert_eq!(roles_of("globex"), "", "globex was not asked");
    let n: i64 = q1(&mut be, "SELECT tenant.apply_role_templates()");
    assert_eq!(n, 12, "4 roles in each of the 3 tenants");
    assert_eq!(roles_of("globex"), "agency,business,explorer,influencer");
    // applying twice adds nothing
    let perms = su_i64(&db, "SELECT count(*) FROM tenant.permissions");
    let _: i64 = q1(&mut be, "SELECT tenant.apply_role_templates()");
    assert_eq!(
        su_i64(&db, "SELECT count(*) FROM tenant.permissions"),
        perms
    );
    // the API role may not apply templates
    let mut api = db.as_role("mt_it_api");
    assert_eq!(
        err_of(&mut api, "SELECT tenant.apply_role_templates()"),
        "42501"
    );
    // dropping a template leaves tenants' roles alone
    assert!(q1::<bool>(
        &mut admin,
        "SELECT tenant.drop_role_template('influencer')"
    ));
    assert_eq!(roles_of("acme"), "agency,business,explorer,influencer");
}

#[test]
fn teams_protect_maps_condition_fields_and_guards_rows_for_others() {
    let db = Db::new("teams_protect");
    let mut be = db.as_role("mt_it_backend");
    // the documents' way of writing conditions: ownerId, status
    exec_in(
        &mut be,
        "acme",
        r#"SELECT tenant.create_role('writer');
           SELECT tenant.create_role('lead', ARRAY['writer']);
           SELECT tenant.grant_permission('writer', 'posts', 'create');
           SELECT tenant.grant_permission('writer', 'posts', 'read', '{"ownerId": "self"}');
           SELECT tenant.grant_permission('writer', 'posts', 'update', '{"ownerId": "self", "state": {"ne": "published"}}');
           SELECT tenant.grant_permission('lead', 'posts', 'read');
           SELECT tenant.grant_permission('lead', 'posts', 'assign');
           SELECT tenant.add_member('acme', 'wanda', ARRAY['writer']);
           SELECT tenant.add_member('acme', 'walt', ARRAY['writer']);
           SELECT tenant.add_member('acme', 'lena', ARRAY['lead'])"#,
    );
    exec_in(
        &mut be,
        "globex",
        "SELECT tenant.create_role('lead');
         SELECT tenant.grant_permission('lead', 'posts', '*');
         SELECT tenant.add_member('globex', 'lena', ARRAY['lead'])",
    );
    let mut owner = db.as_role("mt_it_owner");
    owner
        .batch_execute(
            r#"CREATE TABLE public.posts (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                 tenant_id uuid NOT NULL, author text NOT NULL DEFAULT tenant.current_user_id(),
                 state text NOT NULL DEFAULT 'draft', title text);
             SELECT tenant.isolate('public.posts');
             SELECT tenant.protect('public.posts', 'posts', columns => '{"ownerId": "author", "state": "state"}');
             GRANT SELECT, INSERT, UPDATE, DELETE ON public.posts TO mt_it_backend;"#,
        )
        .unwrap();
    // bad mappings: MT030 (unknown column, not a string, not an object)
    for sql in [
        r#"SELECT tenant.protect('public.posts', 'posts', columns => '{"ownerId": "nosuch"}')"#,
        r#"SELECT tenant.protect('public.posts', 'posts', columns => '{"ownerId": 1}')"#,
        r#"SELECT tenant.protect('public.posts', 'posts', columns => '["author"]')"#,
    ] {
        assert_eq!(err_of(&mut owner, sql), "MT030", "{sql}");
    }
    let run = |c: &mut Client, ctx: (&str, &str), sql: &str| -> Result<u64, String> {
        in_tenant_tx(c, ctx, |tx| tx.execute(sql, &[])).map_err(|e| sqlstate(&e))
    };
    let w = ("acme", "wanda");
    assert_eq!(
        run(
            &mut be,
            w,
            "INSERT INTO public.posts (title) VALUES ('mine')"
        ),
        Ok(1)
    );
    // a writer cannot create a row owned by someone else; the lead (posts/assign) can
    assert_eq!(
        run(
            &mut be,
            w,
            "INSERT INTO public.posts (author, title) VALUES ('walt', 'forged')"
        ),
        Err("42501".into())
    );
    assert_eq!(
        run(
            &mut be,
            ("acme", "lena"),
            "INSERT INTO public.posts (author, title) VALUES ('walt', 'for walt')"
        ),
        Ok(1)
    );
    // {"ownerId": "self"} holds for the row's author column
    assert_eq!(
        run(&mut be, w, "SELECT 1 FROM public.posts"),
        Ok(1),
        "wanda reads her own"
    );
    assert_eq!(
        run(&mut be, ("acme", "walt"), "SELECT 1 FROM public.posts"),
        Ok(1)
    );
    assert_eq!(
        run(&mut be, ("acme", "lena"), "SELECT 1 FROM public.posts"),
        Ok(2)
    );
    // the state field: own drafts only
    assert_eq!(
        run(&mut be, w, "UPDATE public.posts SET title = 'edited'"),
        Ok(1)
    );
    su_exec(
        &db,
        "UPDATE public.posts SET state = 'published' WHERE author = 'wanda'",
    );
    assert_eq!(
        run(&mut be, w, "UPDATE public.posts SET title = 'again'"),
        Ok(0)
    );
    // globex's lead with posts/* sees nothing of acme's rows, and acme's rows stay as they were
    assert_eq!(
        run(&mut be, ("globex", "lena"), "SELECT 1 FROM public.posts"),
        Ok(0)
    );
    assert_eq!(
        run(
            &mut be,
            ("globex", "lena"),
            "UPDATE public.posts SET title = 'x'"
        ),
        Ok(0)
    );
    assert_eq!(
        su_text(
            &db,
            "SELECT string_agg(author || ':' || title, ',' ORDER BY id) FROM public.posts"
        ),
        "wanda:edited,walt:for walt"
    );
}

#[test]
fn teams_audit_records_the_acting_role_and_the_end_users_address() {
    let db = Db::new("teams_who");
    audited(&db);
    add_keys(&db, &[]);
    let acme = db.tenant_id("acme");
    // a pooled backend connected as postgres that SET ROLEs to the service role
    let mut su = db.as_role("postgres");
    su.batch_execute(
        "SET ROLE mt_it_backend;
         BEGIN;
         SELECT tenant.set_context('acme', 'ann', true, '198.51.100.9');
         INSERT INTO public.notes (body) VALUES ('from ann');
         SELECT tenant.log_event('data.exported');
         COMMIT;
         RESET ROLE;",
    )
    .unwrap();
    let who = su_text(
        &db,
        &format!(
            "SELECT string_agg(operation || '|' || db_role || '|' || db_user || '|' || end_user_addr::text || '|' || user_id, ';' ORDER BY id) \
             FROM tenant.audit_log WHERE tenant_id = '{acme}' AND operation IN ('INSERT', 'APP')"
        ),
    );
    assert_eq!(
        who,
        "INSERT|postgres|mt_it_backend|198.51.100.9/32|ann;APP|postgres|mt_it_backend|198.51.100.9/32|ann"
    );
    // the address comes from the signed context only: a GUC the application sets means nothing
    let mut be = db.as_role("mt_it_backend");
    be.batch_execute(
        "BEGIN;
         SET LOCAL app.client_ip = '203.0.113.66';
         SELECT tenant.set_context('acme', 'bob');
         INSERT INTO public.notes (body) VALUES ('from bob');
         COMMIT;",
    )
    .unwrap();
    let bob: Option<String> = q1(
        &mut be,
        &format!("SELECT (SELECT end_user_addr::text FROM tenant.audit_log WHERE tenant_id = '{acme}' AND user_id = 'bob' AND operation = 'INSERT')"),
    );
    assert_eq!(bob, None);
    // a JWT may carry it as the client_ip claim; a malformed one is refused
    let mut api = db.as_role("mt_it_api");
    let exp = unix_now() + 600;
    let good = hs(
        "hs1",
        &serde_json::json!({"sub": "carol", "tenant_id": "acme", "exp": exp, "client_ip": "2001:db8::7"}),
    );
    let mut tx = api.transaction().unwrap();
    tx.query_one("SELECT tenant.authenticate($1)", &[&good])
        .unwrap();
    tx.execute("INSERT INTO public.notes (body) VALUES ('from carol')", &[])
        .unwrap();
    tx.commit().unwrap();
    let carol: String = su_text(
        &db,
        &format!("SELECT end_user_addr::text || '|' || db_user FROM tenant.audit_log WHERE tenant_id = '{acme}' AND user_id = 'carol'"),
    );
    assert_eq!(carol, "2001:db8::7/128|mt_it_api");
    for bad in [serde_json::json!("not-an-ip"), serde_json::json!(42)] {
        let t = hs(
            "hs1",
            &serde_json::json!({"sub": "carol", "tenant_id": "acme", "exp": exp, "client_ip": bad}),
        );
        assert_eq!(authenticate(&mut api, &t), Err("MT004".into()), "{bad}");
    }
    assert_eq!(
        err_of(
            &mut be,
            "SELECT tenant.set_context('acme', 'ann', true, 'localhost')"
        ),
        "MT030"
    );
    // every column is under the hash: editing the recorded address or role breaks the chain
    assert!(audit_valid(&mut be, "acme"));
    for (col, value) in [("end_user_addr", "'192.0.2.1'"), ("db_user", "'somebody'")] {
        let mut su = db.as_role("postgres");
        su.batch_execute(&format!(
            "ALTER TABLE tenant.audit_log DISABLE TRIGGER USER;
             CREATE TEMP TABLE keep AS SELECT id, {col} AS v FROM tenant.audit_log WHERE user_id = 'ann' AND operation = 'INSERT';
             UPDATE tenant.audit_log SET {col} = {value} WHERE id = (SELECT id FROM keep);"
        ))
        .unwrap();
        assert!(!audit_valid(&mut be, "acme"), "{col} edited");
        su.batch_execute(&format!(
            "UPDATE tenant.audit_log l SET {col} = k.v FROM keep k WHERE l.id = k.id;
             ALTER TABLE tenant.audit_log ENABLE TRIGGER USER;"
        ))
        .unwrap();
        assert!(audit_valid(&mut be, "acme"), "{col} restored");
    }
    // globex's chain holds none of acme's addresses
    assert_eq!(
        su_i64(&db, &format!("SELECT count(*) FROM tenant.audit_log WHERE tenant_id = '{}' AND end_user_addr IS NOT NULL", db.tenant_id("globex"))),
        0
    );
}

#[test]
fn teams_organizations_group_members_per_tenant_and_feed_conditions() {
    let db = Db::new("teams_orgs");
    seed(&db);
    let mut be = db.as_role("mt_it_backend");
    exec_in(
        &mut be,
        "acme",
        r#"SELECT tenant.create_organization('north', 'North branch');
           SELECT tenant.create_organization('south', 'South branch');
           SELECT tenant.grant_permission('business', 'deals', 'read', '{"org_id": "self_org"}');
           SELECT tenant.create_role('orgadmin');
           SELECT tenant.grant_permission('orgadmin', 'organizations', 'manage');
           SELECT tenant.add_member('acme', 'olga', ARRAY['orgadmin']);
           SELECT tenant.add_member('acme', 'bea', ARRAY['business']);
           SELECT tenant.set_member_organization('bob', 'north')"#,
    );
    exec_in(
        &mut be,
        "globex",
        "SELECT tenant.create_organization('north', 'Globex North');
         SELECT tenant.add_member('globex', 'bob', ARRAY['member'])",
    );
    let id = |slug: &str, tenant: &str| {
        su_text(
            &db,
            &format!(
                "SELECT id::text FROM tenant.organizations WHERE slug = '{slug}' AND tenant_id = '{}'",
                db.tenant_id(tenant)
            ),
        )
    };
    let (north, south, g_north) = (
        id("north", "acme"),
        id("south", "acme"),
        id("north", "globex"),
    );
    // the member's organization feeds self_org
    let deal =
        |org: &str| format!("SELECT tenant.can('deals', 'read', '{{\"org_id\": \"{org}\"}}')");
    assert!(one_in::<bool>(&mut be, ("acme", "bob"), &deal(&north)));
    assert!(!one_in::<bool>(&mut be, ("acme", "bob"), &deal(&south)));
    assert!(
        !one_in::<bool>(&mut be, ("acme", "bea"), &deal(&north)),
        "no organization: no match"
    );
    let cur: Option<String> = one_in(
        &mut be,
        ("acme", "bob"),
        "SELECT tenant.current_organization()::text",
    );
    assert_eq!(cur.as_deref(), Some(north.as_str()));
    let none: Option<String> = one_in(
        &mut be,
        ("acme", "bea"),
        "SELECT tenant.current_organization()::text",
    );
    assert_eq!(none, None);
    // can_user sees the target's organization
    let cu: bool = one_in(
        &mut be,
        "acme",
        &format!("SELECT tenant.can_user('bob', 'deals', 'read', '{{\"org_id\": \"{north}\"}}')"),
    );
    assert!(cu);
    // a moved member's answers change at once
    exec_in(
        &mut be,
        ("acme", "olga"),
        "SELECT tenant.set_member_organization('bob', 'south')",
    );
    assert!(one_in::<bool>(&mut be, ("acme", "bob"), &deal(&south)));
    assert!(!one_in::<bool>(&mut be, ("acme", "bob"), &deal(&north)));
    // isolated per tenant: acme sees its own two, globex's cannot be used from acme
    let mut api = db.as_role("mt_it_api");
    api.batch_execute(&format!(
        "SET multitenant.context = '{}'",
        token_for(&db, "acme")
    ))
    .unwrap();
    let seen = texts(
        &mut api,
        "SELECT slug FROM tenant.organizations ORDER BY slug",
    );
    assert_eq!(
        seen,
        ["north", "south"],
        "an application role sees its tenant's only"
    );
    api.batch_execute("RESET multitenant.context").unwrap();
    assert_eq!(
        q1::<i64>(&mut api, "SELECT count(*) FROM tenant.organizations"),
        0,
        "no context, no rows"
    );
    assert_eq!(
        err_in(
            &mut be,
            "acme",
            &format!("SELECT tenant.set_member_organization('bob', '{g_north}')")
        ),
        "MT030"
    );
    assert_eq!(
        err_in(
            &mut be,
            "globex",
            &format!("SELECT tenant.drop_organization('{south}')")
        ),
        "MT030"
    );
    // bad input and denied callers; a manager never moves itself nor an owner
    exec_in(
        &mut be,
        "acme",
        "SELECT tenant.add_member('acme', 'ole', ARRAY['owner'])",
    );
    for (ctx, sql, code) in [
        (
            ("acme", "olga"),
            "SELECT tenant.set_member_organization('olga', 'north')",
            "MT020",
        ),
        (
            ("acme", "olga"),
            "SELECT tenant.set_member_organization('ole', 'north')",
            "MT020",
        ),
        (
            ("acme", "bob"),
            "SELECT tenant.create_organization('x', 'X')",
            "MT020",
        ),
        (
            ("acme", "olga"),
            "SELECT tenant.create_organization('north', 'again')",
            "MT030",
        ),
        (
            ("acme", "olga"),
            "SELECT tenant.create_organization('Bad Slug', 'X')",
            "MT030",
        ),
        (
            ("acme", "olga"),
            "SELECT tenant.set_member_organization('nobody', 'north')",
            "MT030",
        ),
        (
            ("acme", "olga"),
            "SELECT tenant.set_member_organization('bob', 'nowhere')",
            "MT030",
        ),
    ] {
        assert_eq!(err_in(&mut be, ctx, sql), code, "{sql}");
    }
    // dropping an organization leaves its members in the tenant, without one
    exec_in(&mut be, "acme", "SELECT tenant.drop_organization('south')");
    let org: Option<String> = q1(
        &mut be,
        &format!("SELECT (SELECT organization_id::text FROM tenant.members WHERE tenant_id = '{}' AND user_id = 'bob')", db.tenant_id("acme")),
    );
    assert_eq!(org, None);
    assert!(!one_in::<bool>(&mut be, ("acme", "bob"), &deal(&south)));
    // globex's organization and bob's membership there never moved
    assert_eq!(
        su_text(
            &db,
            &format!(
                "SELECT count(*)::text FROM tenant.organizations WHERE tenant_id = '{}'",
                db.tenant_id("globex")
            )
        ),
        "1"
    );
}
