//! Quota arithmetic (V58-V61) and consumption under concurrency (V101).

use crate::common::*;

#[test]
fn quota_arithmetic_cannot_overflow_or_go_negative() {
    let db = Db::new("hx_arith");
    plan(
        &db,
        r#"{"name": "p1", "limits": {"seats": 5, "calls": -1}}"#,
        &["acme"],
    );
    let acme = db.tenant_id("acme").to_string();
    let mut c = as_tenant(&db, "mt_it_app", "acme");
    // V58: a check of i64::MAX units never overflows into "fits"
    let fits: bool = c
        .query_one("SELECT tenant.check('seats', $1)", &[&i64::MAX])
        .unwrap()
        .get(0);
    assert!(!fits, "V58: check('seats', i64::MAX)");
    // V59: i64::MAX on an unlimited resource is refused as out of range (MT030: at most
    // 10^15 a call), never a numeric overflow (22003); the largest allowed amount taken until
    // the counter is full is refused as a limit (MT010), never an overflow either
    assert_eq!(
        consume(&mut c, "calls", i64::MAX),
        Err("MT030".to_string()),
        "V59: i64::MAX"
    );
    let max = 1_000_000_000_000_000i64;
    assert_eq!(consume(&mut c, "calls", 1), Ok(None), "V59: unlimited");
    su_exec(
        &db,
        &format!(
            "UPDATE tenant.usage_counters SET used = {} WHERE resource = 'calls'",
            i64::MAX - max / 2
        ),
    );
    assert_eq!(
        consume(&mut c, "calls", max),
        Err("MT010".to_string()),
        "V59: past i64::MAX"
    );
    // V60: zero and negative amounts are invalid
    for n in [0, -1, i64::MIN] {
        assert_eq!(
            consume(&mut c, "seats", n),
            Err("MT030".to_string()),
            "V60: consume('seats', {n})"
        );
    }
    // V61: i64::MAX on a limited resource (out of range: MT030), more than the limit (MT010),
    // then exact filling
    assert_eq!(
        consume(&mut c, "seats", i64::MAX),
        Err("MT030".to_string()),
        "V61"
    );
    assert_eq!(
        consume(&mut c, "seats", 6),
        Err("MT010".to_string()),
        "V61: 6 of 5"
    );
    assert_eq!(consume(&mut c, "seats", 5), Ok(Some(0)), "V61: fill");
    assert_eq!(
        consume(&mut c, "seats", 1),
        Err("MT010".to_string()),
        "V61: over"
    );
    assert_eq!(
        su_i64(
            &db,
            &format!("SELECT sum(used)::int8 FROM tenant.usage_counters WHERE tenant_id = '{acme}' AND resource = 'seats'")
        ),
        5,
        "V61: the stored counter"
    );
}

#[test]
fn consume_is_exact_under_16_concurrent_connections() {
    let db = Db::new("hx_conc");
    plan(
        &db,
        r#"{"name": "hx-conc", "limits": {"calls_limited": 100}}"#,
        &["acme"],
    );
    let acme = db.tenant_id("acme").to_string();
    let tok = token_for(&db, "acme");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
    // V101: 16 connections race for the last units: exactly the limit is granted
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let name = db.name.clone();
            let tok = tok.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = connect(&name, "mt_it_app");
                set_token(&mut c, &tok);
                barrier.wait();
                let mut ok = 0i64;
                for _ in 0..200 {
                    match consume(&mut c, "calls_limited", 1) {
                        Ok(_) => ok += 1,
                        Err(code) => {
                            assert_eq!(code, "MT010", "V101: refusal code");
                            break;
                        }
                    }
                }
                ok
            })
        })
        .collect();
    let total: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 100, "V101: successful consumes");
    assert_eq!(
        su_i64(
            &db,
            &format!("SELECT sum(used)::int8 FROM tenant.usage_counters WHERE tenant_id = '{acme}' AND resource = 'calls_limited'")
        ),
        100,
        "V101: stored counter"
    );
}
