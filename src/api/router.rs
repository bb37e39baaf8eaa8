//! Router queries on Citus through the policies alone.
//!
//! Citus picks the shards of a statement from its WHERE clause before row level security is
//! applied (it never looks at a policy's quals), so `SELECT ... FROM events WHERE id = 7`
//! under a context fans out to every shard although the policy keeps it to one tenant. This
//! planner hook runs before Citus' and adds `tenant_id = '<the context's tenant>'` next to
//! each isolated, hash-distributed table of the statement (`state::registry::routable`):
//! Citus then routes the statement to the tenant's shard.
//!
//! It changes no result: the comparison is put where the table's rows are its own rows (the
//! WHERE of its FROM list, or the ON clause of the join that could null it), and there the
//! table's policies already let through only rows of the context's tenant; it is added only
//! when row level security applies to the table for the role that reads it, and only when
//! the table has no policy but isolate's. Security never depends on it: the policies stay.
//!
//! Plans may be cached (prepared statements, PL/pgSQL). The id is taken only from a verified
//! token in `multitenant.context`, and when that setting changes to another tenant every
//! cached plan of the backend is marked for replanning (`gucs::context_assigned`).
//! `multitenant.route_by_context = off` turns the hook off.

use crate::core::error::MtResult;
use crate::gucs::{routed_for, ROUTE_BY_CONTEXT};
use crate::state::context::token_tenant;
use crate::state::registry::routable;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{is_a, PgList};
use std::collections::HashMap;

/// `=(uuid, uuid)` (pg_operator; checked by a #[pg_test])
const UUID_EQ_OP: pg_sys::Oid = pg_sys::Oid::from_u32(2972);

/// Deeper query trees are planned as they are.
const MAX_DEPTH: usize = 32;

thread_local! {
    /// the planner hook that was there before ours (Citus' when it is loaded)
    static PREV: std::cell::Cell<pg_sys::planner_hook_type> = const { std::cell::Cell::new(None) };
    /// set while the hook works: its own catalog reads are planned too
    static BUSY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Put the hook in front of the planner (from `_PG_init`, once per backend), when Citus is
/// loaded (it is preloaded, so its settings exist by then); without it there is nothing to
/// route.
pub fn install() {
    if !crate::pg::citus::loaded() {
        return;
    }
    // SAFETY: backends are single-threaded; _PG_init runs once, before any planning in
    // this library
    unsafe {
        PREV.with(|p| p.set(pg_sys::planner_hook));
        pg_sys::planner_hook = Some(plan);
    }
}

// The next planner is called directly, not through pgrx's FFI guard: an error raised while
// planning (for example by one of the extension's functions that a constant argument lets
// the planner evaluate) must reach the caller as it was raised, with its own SQLSTATE; the
// guard would turn it into a Rust panic and raise it again as XX000.
unsafe extern "C-unwind" {
    #[link_name = "standard_planner"]
    fn raw_standard_planner(
        parse: *mut pg_sys::Query,
        query_string: *const std::ffi::c_char,
        cursor_options: std::ffi::c_int,
        bound_params: pg_sys::ParamListInfo,
    ) -> *mut pg_sys::PlannedStmt;
}

/// The hook. Not `#[pg_guard]`: it holds nothing that needs dropping when the planner below
/// raises an error and unwinds past it as if it were C; the Rust work happens before, in
/// [`route_guarded`], which turns any panic into an error of its own.
unsafe extern "C-unwind" fn plan(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    if !parse.is_null() {
        route_guarded(parse);
    }
    let prev = PREV.with(|p| p.get());
    // SAFETY: the planner's own arguments, passed on unchanged to the hook that was there
    // before ours or to Postgres' planner; no value with a destructor is alive here
    unsafe {
        match prev {
            Some(prev) => prev(parse, query_string, cursor_options, bound_params),
            None => raw_standard_planner(parse, query_string, cursor_options, bound_params),
        }
    }
}

#[pg_guard]
extern "C-unwind" fn route_guarded(parse: *mut pg_sys::Query) {
    // a refusal to route leaves the statement as it was
    let _ = route(parse);
}

struct Busy;
impl Busy {
    fn start() -> Option<Busy> {
        // (`then`, not `then_some`: a Busy made and dropped here would clear the flag)
        (!BUSY.with(|b| b.replace(true))).then(|| Busy)
    }
}
impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.with(|b| b.set(false));
    }
}

/// Does this database have the extension's registry (`tenant.isolated_tables`)? Read from
/// the catalog caches, without a query: the library can be loaded in a database without
/// the extension, or while `CREATE EXTENSION` runs.
fn extension_tables_exist() -> bool {
    // SAFETY: NUL-terminated names; missing_ok lookups that raise nothing
    unsafe {
        let ns = pg_sys::get_namespace_oid(c"tenant".as_ptr(), true);
        ns != pg_sys::InvalidOid
            && pg_sys::get_relname_relid(c"isolated_tables".as_ptr(), ns) != pg_sys::InvalidOid
    }
}

fn route(parse: *mut pg_sys::Query) -> MtResult<()> {
    if !ROUTE_BY_CONTEXT.get() || !crate::pg::citus::loaded() {
        return Ok(());
    }
    // SAFETY: the planner's Query
    let cmd = unsafe { (*parse).commandType };
    if !matches!(
        cmd,
        pg_sys::CmdType::CMD_SELECT
            | pg_sys::CmdType::CMD_UPDATE
            | pg_sys::CmdType::CMD_DELETE
            | pg_sys::CmdType::CMD_INSERT
    ) {
        return Ok(());
    }
    let Some(_busy) = Busy::start() else {
        return Ok(());
    };
    if !extension_tables_exist() {
        return Ok(());
    }
    let tables = routable()?;
    if tables.is_empty() {
        return Ok(());
    }
    let mut w = Walk {
        tables: &tables,
        places: Vec::new(),
    };
    // SAFETY: the planner's Query tree
    unsafe { w.query(parse, 0) };
    if w.places.is_empty() {
        return Ok(());
    }
    let Some(tenant) = token_tenant() else {
        return Ok(());
    };
    for p in &w.places {
        // SAFETY: `slot` points into the planner's Query tree, changed in place before it
        // is planned (a cached plan's source is copied before planning)
        unsafe { *p.slot = pg_sys::make_and_qual(*p.slot, comparison(p.index, p.attno, tenant)) };
    }
    routed_for(tenant);
    Ok(())
}

/// Where a comparison goes: the quals `slot` points to get `attno of index = tenant`.
struct Place {
    slot: *mut *mut pg_sys::Node,
    index: std::ffi::c_int,
    attno: i16,
}

/// Finds the places of a statement's routable tables, changing nothing.
struct Walk<'a> {
    tables: &'a HashMap<pg_sys::Oid, i16>,
    places: Vec<Place>,
}

impl Walk<'_> {
    /// Every FROM list of `q`, its subqueries and CTEs.
    unsafe fn query(&mut self, q: *mut pg_sys::Query, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        // SAFETY: nodes of a Query tree the parser built (the caller's contract)
        unsafe {
            let rtable = PgList::<pg_sys::RangeTblEntry>::from_pg((*q).rtable);
            for rte in rtable.iter_ptr() {
                if (*rte).rtekind == pg_sys::RTEKind::RTE_SUBQUERY && !(*rte).subquery.is_null() {
                    self.query((*rte).subquery, depth + 1);
                }
            }
            let ctes = PgList::<pg_sys::CommonTableExpr>::from_pg((*q).cteList);
            for cte in ctes.iter_ptr() {
                let cq = (*cte).ctequery;
                if !cq.is_null() && is_a(cq, pg_sys::NodeTag::T_Query) {
                    self.query(cq as *mut pg_sys::Query, depth + 1);
                }
            }
            // MERGE (a CTE may hold one from PostgreSQL 17) joins its source and target
            // itself: its FROM list is not the place for a comparison
            let from = (*q).jointree;
            if !from.is_null() && (*q).commandType != pg_sys::CmdType::CMD_MERGE {
                self.from(q, from, depth);
            }
        }
    }

    unsafe fn from(&mut self, q: *mut pg_sys::Query, f: *mut pg_sys::FromExpr, depth: usize) {
        // SAFETY: as in `query`
        unsafe {
            let items = PgList::<pg_sys::Node>::from_pg((*f).fromlist);
            for item in items.iter_ptr() {
                self.item(q, item, &raw mut (*f).quals, depth);
            }
        }
    }

    /// `item` of a FROM list or a join; `slot`: the quals where its rows are real rows (a
    /// FROM list's WHERE, or the ON clause of the join that could null it).
    unsafe fn item(
        &mut self,
        q: *mut pg_sys::Query,
        item: *mut pg_sys::Node,
        slot: *mut *mut pg_sys::Node,
        depth: usize,
    ) {
        if item.is_null() || depth > MAX_DEPTH {
            return;
        }
        // SAFETY: as in `query`; `slot` points into the same tree
        unsafe {
            if is_a(item, pg_sys::NodeTag::T_RangeTblRef) {
                let index = (*(item as *mut pg_sys::RangeTblRef)).rtindex;
                if let Some(attno) = self.routed_column(q, index, *slot) {
                    self.places.push(Place { slot, index, attno });
                }
            } else if is_a(item, pg_sys::NodeTag::T_JoinExpr) {
                let j = item as *mut pg_sys::JoinExpr;
                let own = &raw mut (*j).quals;
                let (left, right) = match (*j).jointype {
                    pg_sys::JoinType::JOIN_INNER => (slot, slot),
                    pg_sys::JoinType::JOIN_LEFT => (slot, own),
                    pg_sys::JoinType::JOIN_RIGHT => (own, slot),
                    _ => (own, own),
                };
                self.item(q, (*j).larg, left, depth + 1);
                self.item(q, (*j).rarg, right, depth + 1);
            } else if is_a(item, pg_sys::NodeTag::T_FromExpr) {
                self.from(q, item as *mut pg_sys::FromExpr, depth + 1);
            }
        }
    }

    /// The tenant column of range table entry `index` of `q`, when it is a routable table
    /// whose row level security applies to the role reading it. (None too when `quals`
    /// already compares that column with a constant or a parameter: the statement names its
    /// tenant, and Citus plans a single comparison fastest.)
    unsafe fn routed_column(
        &self,
        q: *mut pg_sys::Query,
        index: std::ffi::c_int,
        quals: *mut pg_sys::Node,
    ) -> Option<i16> {
        // SAFETY: as in `query`; rt_fetch's index comes from the same Query
        unsafe {
            let rtable = PgList::<pg_sys::RangeTblEntry>::from_pg((*q).rtable);
            let rte = rtable.get_ptr(usize::try_from(index).ok()?.checked_sub(1)?)?;
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
                return None;
            }
            let attno = *self.tables.get(&(*rte).relid)?;
            if names_value(quals, index, attno) {
                return None;
            }
            let rls = pg_sys::check_enable_rls((*rte).relid, check_as_user(q, rte), true);
            (rls == pg_sys::CheckEnableRlsResult::RLS_ENABLED as std::ffi::c_int).then_some(attno)
        }
    }
}

/// `column attno of range table entry index = '<tenant>'::uuid`.
unsafe fn comparison(index: std::ffi::c_int, attno: i16, tenant: uuid::Uuid) -> *mut pg_sys::Node {
    // SAFETY: node constructors, in the planner's memory context; the uuid's 16 bytes are
    // copied into memory of that context (a cached plan copies the Const with them)
    unsafe {
        let var = pg_sys::makeVar(index, attno, pg_sys::UUIDOID, -1, pg_sys::InvalidOid, 0);
        let bytes = pg_sys::palloc(16) as *mut u8;
        std::ptr::copy_nonoverlapping(tenant.as_bytes().as_ptr(), bytes, 16);
        let value = pg_sys::makeConst(
            pg_sys::UUIDOID,
            -1,
            pg_sys::InvalidOid,
            16,
            pg_sys::Datum::from(bytes),
            false,
            false,
        );
        let op = pg_sys::make_opclause(
            UUID_EQ_OP,
            pg_sys::BOOLOID,
            false,
            var as *mut pg_sys::Expr,
            value as *mut pg_sys::Expr,
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
        );
        (*(op as *mut pg_sys::OpExpr)).opfuncid = pg_sys::get_opcode(UUID_EQ_OP);
        op as *mut pg_sys::Node
    }
}

/// Is one of the ANDed `quals` `column = <constant or parameter>` (either side), for the
/// column `attno` of range table entry `index`?
unsafe fn names_value(quals: *mut pg_sys::Node, index: std::ffi::c_int, attno: i16) -> bool {
    if quals.is_null() {
        return false;
    }
    // SAFETY: an expression tree of the Query the caller walks
    unsafe {
        if is_a(quals, pg_sys::NodeTag::T_BoolExpr) {
            let b = quals as *mut pg_sys::BoolExpr;
            return (*b).boolop == pg_sys::BoolExprType::AND_EXPR
                && PgList::<pg_sys::Node>::from_pg((*b).args)
                    .iter_ptr()
                    .any(|a| names_value(a, index, attno));
        }
        if !is_a(quals, pg_sys::NodeTag::T_OpExpr) {
            return false;
        }
        let op = quals as *mut pg_sys::OpExpr;
        if (*op).opno != UUID_EQ_OP {
            return false;
        }
        let args = PgList::<pg_sys::Node>::from_pg((*op).args);
        let (Some(l), Some(r)) = (args.get_ptr(0), args.get_ptr(1)) else {
            return false;
        };
        let is_column = |n: *mut pg_sys::Node| {
            is_a(n, pg_sys::NodeTag::T_Var) && {
                let v = n as *mut pg_sys::Var;
                (*v).varno == index && (*v).varattno == attno && (*v).varlevelsup == 0
            }
        };
        let is_value = |n: *mut pg_sys::Node| {
            is_a(n, pg_sys::NodeTag::T_Const) || is_a(n, pg_sys::NodeTag::T_Param)
        };
        (is_column(l) && is_value(r)) || (is_value(l) && is_column(r))
    }
}

/// The role whose row level security applies to `rte` (a view's owner for the tables it
/// reads; InvalidOid: the current user).
#[cfg(feature = "pg15")]
unsafe fn check_as_user(_q: *mut pg_sys::Query, rte: *mut pg_sys::RangeTblEntry) -> pg_sys::Oid {
    // SAFETY: an entry of the Query's range table
    unsafe { (*rte).checkAsUser }
}

/// The role whose row level security applies to `rte` (a view's owner for the tables it
/// reads; InvalidOid: the current user).
#[cfg(not(feature = "pg15"))]
unsafe fn check_as_user(q: *mut pg_sys::Query, rte: *mut pg_sys::RangeTblEntry) -> pg_sys::Oid {
    // SAFETY: an entry of the Query's range table; its permission entry is in the same Query
    unsafe {
        if (*rte).perminfoindex == 0 {
            return pg_sys::InvalidOid;
        }
        (*pg_sys::getRTEPermissionInfo((*q).rteperminfos, rte)).checkAsUser
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn the_uuid_equality_operator_is_the_one_the_router_builds() {
        let op = Spi::get_one::<pg_sys::Oid>(
            "SELECT 'pg_catalog.=(pg_catalog.uuid, pg_catalog.uuid)'::pg_catalog.regoperator::pg_catalog.oid",
        )
        .unwrap()
        .unwrap();
        assert_eq!(op, super::UUID_EQ_OP);
    }
}
