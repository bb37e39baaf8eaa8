//! Plans, limits and quota windows: pure Rust, no Postgres.

use crate::core::error::{MtError, MtResult};
use crate::core::names;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    None,
    Minute,
    Hour,
    Day,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> MtResult<Period> {
        Ok(match s {
            "none" => Period::None,
            "minute" => Period::Minute,
            "hour" => Period::Hour,
            "day" => Period::Day,
            "month" => Period::Month,
            other => {
                return Err(
                    MtError::invalid(format!("unknown limit period \"{other}\""))
                        .hint("Use none, minute, hour, day or month."),
                )
            }
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Period::None => "none",
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
        }
    }
}

/// One resource's limit. `limit < 0` means unlimited. With an overage price the limit is
/// soft: consumption continues and the excess is billed; without one it is hard.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub resource: String,
    pub limit: i64,
    pub period: Period,
    pub overage_price: Option<f64>,
}

impl Limit {
    pub fn unlimited(&self) -> bool {
        self.limit < 0
    }
    pub fn hard(&self) -> bool {
        !self.unlimited() && self.overage_price.is_none()
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian), Howard Hinnant's algorithm.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Start of the window of `period` that contains `now`, and its end (unix seconds, UTC).
/// Fixed windows aligned to the clock: `None` is one window forever.
pub fn window(period: Period, now: i64) -> (i64, i64) {
    const FOREVER: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let floor = |n: i64| now - now.rem_euclid(n);
    match period {
        Period::None => (0, FOREVER),
        Period::Minute => (floor(60), floor(60) + 60),
        Period::Hour => (floor(3600), floor(3600) + 3600),
        Period::Day => (floor(86_400), floor(86_400) + 86_400),
        Period::Month => {
            let (y, m, _) = civil_from_days(now.div_euclid(86_400));
            let start = days_from_civil(y, m, 1) * 86_400;
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (start, days_from_civil(ny, nm, 1) * 86_400)
        }
    }
}

/// A plan as loaded from a JSON document shaped like the seeds' YAML.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanDoc {
    pub name: String,
    pub price: f64,
    pub currency: String,
    pub billing_cycle: String,
    pub features: Vec<String>,
    pub restrictions: Vec<String>,
    pub limits: Vec<Limit>,
}

fn split_period(key: &str) -> (&str, Period) {
    for (suffix, p) in [
        ("_per_minute", Period::Minute),
        ("_per_hour", Period::Hour),
        ("_per_day", Period::Day),
        ("_per_month", Period::Month),
    ] {
        if let Some(r) = key.strip_suffix(suffix) {
            return (r, p);
        }
    }
    (key, Period::None)
}

fn strings(v: Option<&Value>, what: &str) -> MtResult<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                let s = x
                    .as_str()
                    .ok_or_else(|| MtError::invalid(format!("{what} must be strings")))?;
                names::plain(what, s)?;
                Ok(s.to_string())
            })
            .collect(),
        Some(_) => Err(MtError::invalid(format!(
            "{what} must be an array of strings"
        ))),
    }
}

/// Parse a plan document:
/// ```json
/// {"name": "free", "price": 0, "currency": "USD", "billing_cycle": "month",
///  "limits": {"api_requests_per_hour": 1000, "users": 5, "storage_mb": {"limit": 100},
///             "missions": {"limit": 100, "period": "month", "overage_price": 0.5}},
///  "features": ["basic_analytics"], "restrictions": ["no_custom_branding"],
///  "overage": {"api_requests": 0.001}}
/// ```
/// A limit key ending in `_per_minute|_hour|_day|_month` names the resource and its period;
/// -1 means unlimited; `overage` prices units above a limit (which makes it soft).
pub fn parse_plan(doc: &Value) -> MtResult<PlanDoc> {
    let o = doc
        .as_object()
        .ok_or_else(|| MtError::invalid("a plan must be a JSON object"))?;
    let name = o
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| MtError::invalid("a plan needs a \"name\""))?;
    names::plain("plan", name)?;
    let price = match o.get("price") {
        None | Some(Value::Null) => 0.0,
        Some(v) => v
            .as_f64()
            .filter(|p| *p >= 0.0)
            .ok_or_else(|| MtError::invalid("price must be a number >= 0"))?,
    };
    let currency = o
        .get("currency")
        .and_then(Value::as_str)
        .unwrap_or("USD")
        .to_string();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(MtError::invalid(
            "currency must be a three-letter ISO code such as USD",
        ));
    }
    let billing_cycle = o
        .get("billing_cycle")
        .and_then(Value::as_str)
        .unwrap_or("month")
        .to_string();
    if !["month", "year", "none"].contains(&billing_cycle.as_str()) {
        return Err(MtError::invalid(
            "billing_cycle must be month, year or none",
        ));
    }
    let overage = match o.get("overage") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(MtError::invalid(
                "overage must be an object of resource: price",
            ))
        }
    };
    let mut limits = Vec::new();
    if let Some(l) = o.get("limits") {
        let l = l
            .as_object()
            .ok_or_else(|| MtError::invalid("limits must be an object"))?;
        for (key, v) in l {
            let (mut resource, mut period) = split_period(key);
            let (limit, mut price) = match v {
                Value::Number(n) => (n.as_i64(), None),
                Value::Object(m) => {
                    if let Some(p) = m.get("period").and_then(Value::as_str) {
                        period = Period::parse(p)?;
                        resource = key;
                    }
                    (
                        m.get("limit").and_then(Value::as_i64),
                        m.get("overage_price").and_then(Value::as_f64),
                    )
                }
                _ => (None, None),
            };
            let limit = limit.filter(|n| *n >= -1).ok_or_else(|| {
                MtError::invalid(format!(
                    "limit \"{key}\" must be an integer >= -1 (-1 = unlimited)"
                ))
            })?;
            names::plain("resource", resource)?;
            if price.is_none() {
                price = overage.get(resource).and_then(Value::as_f64);
            }
            if price.is_some_and(|p| p < 0.0) {
                return Err(MtError::invalid(format!(
                    "overage price of \"{resource}\" must be >= 0"
                )));
            }
            if limits.iter().any(|x: &Limit| x.resource == resource) {
                return Err(MtError::invalid(format!(
                    "resource \"{resource}\" is limited twice"
                )));
            }
            limits.push(Limit {
                resource: resource.to_string(),
                limit,
                period,
                overage_price: price,
            });
        }
    }
    // every overage price is a non-negative number for a limited resource
    for (resource, price) in &overage {
        if !price.as_f64().is_some_and(|p| p >= 0.0) {
            return Err(MtError::invalid(format!(
                "overage price of \"{resource}\" must be a number >= 0"
            )));
        }
        if !limits.iter().any(|l: &Limit| &l.resource == resource) {
            return Err(MtError::invalid(format!(
                "overage price for \"{resource}\", which has no limit in the plan"
            ))
            .hint("Add the resource to \"limits\" first."));
        }
    }
    limits.sort_by(|a, b| a.resource.cmp(&b.resource));
    Ok(PlanDoc {
        name: name.to_string(),
        price,
        currency,
        billing_cycle,
        features: strings(o.get("features"), "feature")?,
        restrictions: strings(o.get("restrictions"), "restriction")?,
        limits,
    })
}

/// Remaining allowance after `used` (None when unlimited).
pub fn remaining(limit: &Limit, used: i64) -> Option<i64> {
    if limit.unlimited() {
        None
    } else {
        Some((limit.limit - used).max(0))
    }
}

/// What a tenant may do: its plan's features and limits with the tenant's overrides applied.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entitlements {
    pub plan: String,
    pub features: std::collections::HashSet<String>,
    pub limits: std::collections::HashMap<String, Limit>,
}

fn limit_rows(v: Option<&Value>) -> MtResult<Vec<Limit>> {
    let Some(Value::Array(rows)) = v else {
        return Ok(vec![]);
    };
    rows.iter()
        .map(|r| {
            let bad = || MtError::invalid("malformed limit row");
            let a = r.as_array().ok_or_else(bad)?;
            Ok(Limit {
                resource: a
                    .first()
                    .and_then(Value::as_str)
                    .ok_or_else(bad)?
                    .to_string(),
                limit: a.get(1).and_then(Value::as_i64).ok_or_else(bad)?,
                period: Period::parse(a.get(2).and_then(Value::as_str).unwrap_or("none"))?,
                overage_price: a.get(3).and_then(Value::as_f64),
            })
        })
        .collect()
}

impl Entitlements {
    /// Build from the JSON that `backend::entitlements` selects:
    /// `{"plan": .., "features": [..], "limits": [[resource, limit, period, price]..],
    ///   "overrides": [[..]..], "feature_overrides": {"feature": bool}}`.
    pub fn from_json(v: &Value) -> MtResult<Entitlements> {
        let mut e = Entitlements {
            plan: v
                .get("plan")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            ..Default::default()
        };
        if let Some(Value::Array(f)) = v.get("features") {
            e.features
                .extend(f.iter().filter_map(Value::as_str).map(str::to_string));
        }
        if let Some(Value::Object(o)) = v.get("feature_overrides") {
            for (k, on) in o {
                if on.as_bool() == Some(true) {
                    e.features.insert(k.clone());
                } else {
                    e.features.remove(k);
                }
            }
        }
        for l in limit_rows(v.get("limits"))?
            .into_iter()
            .chain(limit_rows(v.get("overrides"))?)
        {
            e.limits.insert(l.resource.clone(), l);
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::Code;
    use serde_json::json;

    #[test]
    fn windows_are_aligned() {
        let t = 1_700_000_123; // 2023-11-14T22:15:23Z
        assert_eq!(window(Period::Minute, t), (1_700_000_100, 1_700_000_160));
        assert_eq!(window(Period::Hour, t), (1_699_999_200, 1_700_002_800));
        assert_eq!(window(Period::Day, t), (1_699_920_000, 1_700_006_400));
        // 2023-11-01 .. 2023-12-01
        assert_eq!(window(Period::Month, t), (1_698_796_800, 1_701_388_800));
        // December rolls into January; February of a leap year has 29 days
        let dec = days_from_civil(2023, 12, 15) * 86_400;
        assert_eq!(
            window(Period::Month, dec),
            (
                days_from_civil(2023, 12, 1) * 86_400,
                days_from_civil(2024, 1, 1) * 86_400
            )
        );
        let feb = days_from_civil(2024, 2, 10) * 86_400;
        let (s, e) = window(Period::Month, feb);
        assert_eq!((e - s) / 86_400, 29);
        let (s, e) = window(Period::None, t);
        assert!(s <= t && t < e);
    }

    #[test]
    fn civil_round_trip() {
        for z in [-1000, 0, 1, 59, 365, 10_957, 19_675, 100_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn window_edges_roll_over() {
        let (s, e) = window(Period::Minute, 120);
        assert_eq!((s, e), (120, 180));
        assert_eq!(window(Period::Minute, 179).0, 120);
        assert_eq!(window(Period::Minute, 180).0, 180);
    }

    #[test]
    fn seed_shaped_plan() {
        let p = parse_plan(&json!({
            "name": "free", "price": 0, "currency": "USD", "billing_cycle": "month",
            "limits": {"api_requests_per_hour": 1000, "storage_mb": 100, "users": 5, "campaigns": 1,
                       "missions_per_month": 100, "seats": -1},
            "features": ["basic_analytics", "community_support"],
            "restrictions": ["no_custom_branding"],
            "overage": {"missions": 0.5}
        }))
        .unwrap();
        assert_eq!(p.name, "free");
        assert_eq!(p.features, vec!["basic_analytics", "community_support"]);
        let api = p
            .limits
            .iter()
            .find(|l| l.resource == "api_requests")
            .unwrap();
        assert_eq!(
            (api.limit, api.period, api.hard()),
            (1000, Period::Hour, true)
        );
        let m = p.limits.iter().find(|l| l.resource == "missions").unwrap();
        assert_eq!(
            (m.period, m.overage_price, m.hard()),
            (Period::Month, Some(0.5), false)
        );
        let seats = p.limits.iter().find(|l| l.resource == "seats").unwrap();
        assert!(seats.unlimited() && !seats.hard());
        assert_eq!(
            p.limits
                .iter()
                .find(|l| l.resource == "users")
                .unwrap()
                .period,
            Period::None
        );
    }

    #[test]
    fn explicit_limit_objects() {
        let p = parse_plan(&json!({"name": "pro", "limits": {"calls": {"limit": 10, "period": "minute", "overage_price": 0.01}}})).unwrap();
        assert_eq!(
            p.limits[0],
            Limit {
                resource: "calls".into(),
                limit: 10,
                period: Period::Minute,
                overage_price: Some(0.01)
            }
        );
    }

    #[test]
    fn bad_plans() {
        for doc in [
            json!([]),
            json!({}),
            json!({"name": "Bad Name"}),
            json!({"name": "x", "price": -1}),
            json!({"name": "x", "currency": "dollars"}),
            json!({"name": "x", "billing_cycle": "weekly"}),
            json!({"name": "x", "limits": {"a": -2}}),
            json!({"name": "x", "limits": {"a": "many"}}),
            json!({"name": "x", "limits": {"a": {"limit": 1, "period": "fortnight"}}}),
            json!({"name": "x", "limits": {"a_per_hour": 1, "a_per_day": 2}}),
            json!({"name": "x", "features": "sso"}),
            json!({"name": "x", "features": [1]}),
            json!({"name": "x", "overage": {"a": -1}, "limits": {"a": 1}}),
        ] {
            assert_eq!(
                parse_plan(&doc).unwrap_err().code,
                Code::InvalidArgument,
                "{doc}"
            );
        }
    }

    #[test]
    fn overrides_win() {
        let e = Entitlements::from_json(&json!({
            "plan": "free", "features": ["a", "b"],
            "limits": [["calls", 10, "hour", null], ["users", 5, "none", null]],
            "overrides": [["calls", -1, "hour", null]],
            "feature_overrides": {"b": false, "sso": true}
        }))
        .unwrap();
        assert_eq!(e.plan, "free");
        assert!(
            e.features.contains("a") && e.features.contains("sso") && !e.features.contains("b")
        );
        assert!(e.limits["calls"].unlimited());
        assert_eq!(e.limits["users"].limit, 5);
        assert!(Entitlements::from_json(&json!({"limits": [["x"]]})).is_err());
        assert_eq!(
            Entitlements::from_json(&json!({})).unwrap(),
            Entitlements::default()
        );
    }

    #[test]
    fn arithmetic() {
        let l = Limit {
            resource: "a".into(),
            limit: 100,
            period: Period::Month,
            overage_price: Some(0.5),
        };
        assert_eq!(remaining(&l, 30), Some(70));
        assert_eq!(remaining(&l, 130), Some(0));
        let u = Limit { limit: -1, ..l };
        assert_eq!(remaining(&u, 10), None);
    }

    #[test]
    fn overage_prices_must_be_non_negative_and_for_limited_resources() {
        let bad = [
            json!({"name": "p", "limits": {"calls": 10}, "overage": {"calls": -1}}),
            json!({"name": "p", "limits": {"calls": 10}, "overage": {"other": 0.1}}),
            json!({"name": "p", "limits": {"calls": 10}, "overage": {"calls": "x"}}),
        ];
        for doc in bad {
            assert!(parse_plan(&doc).is_err(), "{doc}");
        }
        assert!(parse_plan(
            &json!({"name": "p", "limits": {"calls": 10}, "overage": {"calls": 0.5}})
        )
        .is_ok());
    }
}
