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

/// What the trigger of a row-limited Citus shard (on a worker, without plans) may insert,
/// from the limits the context carries (`Claims::l`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardLimit {
    /// no check: a system context of the extension (its import checked the limit up front)
    /// or a role that writes without a context (it bypasses row security; counted only)
    Unchecked,
    /// at most this many rows
    Max(i64),
    /// no limit (or a limit billed as overage)
    Unlimited,
    /// the resource has no limit in the tenant's plan (MT030, as on one node)
    NotInPlan,
    /// the context was minted before the table was limited: enter it again
    Unknown,
}

/// The [`ShardLimit`] for `resource` given a context's carried limits (`None` for no
/// context) and whether the context is the extension's own system context.
pub fn shard_limit(
    carried: Option<&std::collections::BTreeMap<String, Option<i64>>>,
    system: bool,
    has_context: bool,
    resource: &str,
) -> ShardLimit {
    if system || !has_context {
        return ShardLimit::Unchecked;
    }
    match carried.and_then(|l| l.get(resource)) {
        None => ShardLimit::Unknown,
        Some(None) => ShardLimit::NotInPlan,
        Some(Some(n)) if *n < 0 => ShardLimit::Unlimited,
        Some(Some(n)) => ShardLimit::Max(*n),
    }
}

/// The limit a context carries for `limit` (see `Claims::l`): -1 when it does not stop
/// inserts (unlimited, or overage billed).
pub fn carried_limit(limit: &Limit) -> i64 {
    if limit.hard() {
        limit.limit
    } else {
        -1
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

/// A plan as loaded from a document shaped like the design documents' YAML or JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanDoc {
    /// the key tenants are put on (`set_plan`, `create(plan => ...)`)
    pub name: String,
    /// the name shown to people ("Free", "Professional"), when it differs from the key
    pub display_name: Option<String>,
    pub price: f64,
    pub currency: String,
    pub billing_cycle: String,
    pub features: Vec<String>,
    pub restrictions: Vec<String>,
    pub limits: Vec<Limit>,
}

/// The keys a plan document may have.
pub const PLAN_KEYS: [&str; 13] = [
    "key",
    "name",
    "display_name",
    "description",
    "price",
    "currency",
    "billing_cycle",
    "limits",
    "usage_caps",
    "features",
    "feature_entitlements",
    "restrictions",
    "overage",
];

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

/// Size units: a resource named `<base>_kb|_mb|_gb|_tb` is counted in bytes as
/// `<base>_bytes` (1 KB = 1024 bytes). Returns the base resource and the unit's size.
pub fn unit_of(resource: &str) -> (String, i64) {
    for (suffix, factor) in [
        ("_kb", 1i64 << 10),
        ("_mb", 1 << 20),
        ("_gb", 1 << 30),
        ("_tb", 1 << 40),
    ] {
        if let Some(base) = resource.strip_suffix(suffix) {
            if !base.is_empty() {
                return (format!("{base}_bytes"), factor);
            }
        }
    }
    (resource.to_string(), 1)
}

/// A resource and an amount as a caller names them (`storage_mb`, 5) in the unit the
/// resource is counted in (`storage_bytes`, 5 MiB); MT030 when the amount overflows.
pub fn in_base_unit(resource: &str, amount: i64) -> MtResult<(String, i64)> {
    let (base, factor) = unit_of(resource);
    let n = amount.checked_mul(factor).ok_or_else(|| {
        MtError::invalid(format!("amount {amount} of {resource} is out of range"))
    })?;
    Ok((base, n))
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

/// The key of a plan named for people: "Free" is `free`, "Pro Plus" is `pro-plus`.
pub fn plan_key(name: &str) -> String {
    let mut k = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            k.push(c.to_ascii_lowercase());
        } else if !k.ends_with('-') {
            k.push('-');
        }
    }
    k.trim_matches('-').to_string()
}

/// One of two synonymous keys (`limits`/`usage_caps`), MT030 when both are given.
fn either<'a>(
    o: &'a serde_json::Map<String, Value>,
    a: &str,
    b: &str,
) -> MtResult<Option<&'a Value>> {
    match (o.get(a), o.get(b)) {
        (Some(_), Some(_)) => Err(MtError::invalid(format!(
            "a plan has \"{a}\" or \"{b}\", not both"
        ))),
        (x, None) => Ok(x),
        (None, y) => Ok(y),
    }
}

/// Parse a plan document, as the design documents write them (YAML or JSON, here as JSON):
/// ```json
/// {"name": "Free", "price": 0, "currency": "USD", "billing_cycle": null,
///  "limits": {"api_requests_per_hour": 1000, "storage_mb": 100, "users": 5,
///             "missions": {"limit": 100, "period": "month", "overage_price": 0.5}},
///  "features": ["basic_analytics"], "restrictions": ["no_custom_branding"],
///  "overage": {"api_requests": 0.001}}
/// ```
/// `name` is the key when it is one (`free`), else the display name, whose key is derived
/// (`Free` is `free`) unless `key` gives it. `billing_cycle`: monthly/month, yearly/annual/
/// year, none/null. `usage_caps` and `feature_entitlements` are synonyms of `limits` and
/// `features`. A limit key ending in `_per_minute|_hour|_day|_month` names the resource and
/// its period; `_kb|_mb|_gb|_tb` a size counted in bytes (`storage_gb` limits
/// `storage_bytes`); -1 means unlimited; `overage` prices units above a limit (which makes it
/// soft). Unknown keys are refused, all named.
pub fn parse_plan(doc: &Value) -> MtResult<PlanDoc> {
    let o = doc
        .as_object()
        .ok_or_else(|| MtError::invalid("a plan must be an object"))?;
    let unknown: Vec<&String> = o
        .keys()
        .filter(|k| !PLAN_KEYS.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|k| format!("\"{}\"", k.escape_default()))
            .collect();
        return Err(
            MtError::invalid(format!("unknown key(s) in plan: {}", list.join(", ")))
                .hint(format!("A plan has the keys {}.", PLAN_KEYS.join(", "))),
        );
    }
    let text = |k: &str| -> MtResult<Option<&str>> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(MtError::invalid(format!("\"{k}\" must be a string"))),
        }
    };
    let shown = text("name")?.ok_or_else(|| MtError::invalid("a plan needs a \"name\""))?;
    if shown.trim().is_empty() || shown.chars().count() > 100 {
        return Err(MtError::invalid("a plan's name must be 1-100 characters"));
    }
    let name = match text("key")? {
        Some(k) => k.to_string(),
        None if names::plain("plan", shown).is_ok() => shown.to_string(),
        None => {
            let k = plan_key(shown);
            names::plain("plan", &k).map_err(|_| {
                MtError::invalid(format!(
                    "plan name \"{}\" gives no key",
                    shown.escape_default()
                ))
                .hint("Give the key (a-z, 0-9, '_', '-') with \"key\".")
            })?;
            k
        }
    };
    names::plain("plan", &name)?;
    let display_name = match text("display_name")? {
        Some(d) => Some(d.to_string()),
        None => (shown != name).then(|| shown.to_string()),
    };
    let price = match o.get("price") {
        None | Some(Value::Null) => 0.0,
        Some(v) => v
            .as_f64()
            .filter(|p| *p >= 0.0 && *p < 1e10)
            .ok_or_else(|| MtError::invalid("price must be a number >= 0"))?,
    };
    let currency = text("currency")?.unwrap_or("USD").to_string();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(MtError::invalid(
            "currency must be a three-letter ISO code such as USD",
        ));
    }
    let billing_cycle = match text("billing_cycle")? {
        // not given: monthly (0.1.0's default); given as null: no billing cycle
        None if !o.contains_key("billing_cycle") => "month",
        None | Some("none") => "none",
        Some("month" | "monthly") => "month",
        Some("year" | "yearly" | "annual" | "annually") => "year",
        Some(other) => {
            return Err(MtError::invalid(format!(
                "billing_cycle \"{}\" is not monthly, yearly, annual or null",
                other.escape_default()
            )))
        }
    }
    .to_string();
    text("description")?;
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
    match either(o, "limits", "usage_caps")? {
        None | Some(Value::Null) => {}
        Some(Value::Object(l)) => {
            for (key, v) in l {
                limits.push(one_limit(key, v, &overage)?);
            }
        }
        Some(_) => return Err(MtError::invalid("limits must be an object")),
    }
    for (i, l) in limits.iter().enumerate() {
        if limits[..i].iter().any(|x| x.resource == l.resource) {
            return Err(
                MtError::invalid(format!("resource \"{}\" is limited twice", l.resource))
                    .hint("storage_mb and storage_gb are the same resource (storage_bytes)."),
            );
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
            .hint(
                "Add the resource to \"limits\" first (sizes are priced per byte: storage_bytes).",
            ));
        }
    }
    limits.sort_by(|a, b| a.resource.cmp(&b.resource));
    Ok(PlanDoc {
        name,
        display_name,
        price,
        currency,
        billing_cycle,
        features: strings(either(o, "features", "feature_entitlements")?, "feature")?,
        restrictions: strings(o.get("restrictions"), "restriction")?,
        limits,
    })
}

fn one_limit(key: &str, v: &Value, overage: &serde_json::Map<String, Value>) -> MtResult<Limit> {
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
    let (base, factor) = unit_of(resource);
    let limit = if limit < 0 {
        limit
    } else {
        limit
            .checked_mul(factor)
            .ok_or_else(|| MtError::invalid(format!("limit \"{key}\" is out of range")))?
    };
    if price.is_none() {
        price = overage.get(resource).and_then(Value::as_f64);
    }
    if price.is_some_and(|p| p < 0.0) {
        return Err(MtError::invalid(format!(
            "overage price of \"{resource}\" must be >= 0"
        )));
    }
    if price.is_some() && period != Period::Month {
        return Err(MtError::invalid(format!(
            "overage of \"{resource}\": invoices bill overage per month; only a monthly limit can have an overage price"
        ))
        .hint("Use a _per_month limit, or a hard limit (no overage) for shorter windows."));
    }
    if factor != 1 && price.is_some() {
        return Err(MtError::invalid(format!(
            "overage of \"{resource}\": sizes are counted in bytes; price {base} per byte instead"
        )));
    }
    Ok(Limit {
        resource: base,
        limit,
        period,
        overage_price: price,
    })
}

/// Alert thresholds in percent of a limit, from a list such as `80,100` (1-1000, distinct).
pub fn parse_thresholds(s: &str) -> MtResult<Vec<i64>> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let t: i64 = part
            .parse()
            .ok()
            .filter(|t| (1..=1000).contains(t))
            .ok_or_else(|| {
                MtError::invalid(format!(
                    "alert threshold \"{part}\" is not a percentage 1-1000"
                ))
            })?;
        if !v.contains(&t) {
            v.push(t);
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// The whole percentages of `limit` that usage going from `old` to `new` reaches for the
/// first time (`t` with `old * 100 < t * limit <= new * 100`), as a range; None when there is
/// none (most calls: no threshold can be crossed, nothing else needs to be looked at).
pub fn percents_reached(limit: i64, old: i64, new: i64) -> Option<(i64, i64)> {
    if limit <= 0 || new <= old || old < 0 {
        return None;
    }
    let (limit, old, new) = (limit as i128, old as i128, new as i128);
    let lo = old * 100 / limit + 1;
    let hi = new * 100 / limit;
    (lo <= hi).then(|| {
        (
            lo.min(i64::MAX as i128) as i64,
            hi.min(i64::MAX as i128) as i64,
        )
    })
}

/// The thresholds (percent of `limit`) that usage going from `old` to `new` crosses upwards.
pub fn crossed(thresholds: &[i64], limit: i64, old: i64, new: i64) -> Vec<i64> {
    let Some((lo, hi)) = percents_reached(limit, old, new) else {
        return vec![];
    };
    thresholds
        .iter()
        .copied()
        .filter(|t| (lo..=hi).contains(t))
        .collect()
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
    /// the plan's restrictions that no override lifted
    pub restrictions: std::collections::HashSet<String>,
}

impl Entitlements {
    /// A feature the plan (or an override) grants and no restriction `no_<feature>` takes.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.contains(feature) && !self.restrictions.contains(&format!("no_{feature}"))
    }
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
        if let Some(Value::Array(r)) = v.get("restrictions") {
            e.restrictions
                .extend(r.iter().filter_map(Value::as_str).map(str::to_string));
        }
        if let Some(Value::Object(o)) = v.get("feature_overrides") {
            for (k, on) in o {
                if on.as_bool() == Some(true) {
                    // granting a feature lifts the restriction that withholds it
                    e.features.insert(k.clone());
                    e.restrictions.remove(&format!("no_{k}"));
                } else {
                    e.features.remove(k);
                    // withholding a restriction lifts it
                    e.restrictions.remove(k);
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
    #[test]
    fn shard_limits_come_from_the_context() {
        use std::collections::BTreeMap;
        let mut l = BTreeMap::new();
        l.insert("projects".to_string(), Some(3));
        l.insert("seats".to_string(), Some(-1));
        l.insert("files".to_string(), None);
        assert_eq!(
            shard_limit(Some(&l), false, true, "projects"),
            ShardLimit::Max(3)
        );
        assert_eq!(
            shard_limit(Some(&l), false, true, "seats"),
            ShardLimit::Unlimited
        );
        assert_eq!(
            shard_limit(Some(&l), false, true, "files"),
            ShardLimit::NotInPlan
        );
        assert_eq!(
            shard_limit(Some(&l), false, true, "other"),
            ShardLimit::Unknown
        );
        assert_eq!(
            shard_limit(None, false, true, "projects"),
            ShardLimit::Unknown
        );
        assert_eq!(
            shard_limit(Some(&l), true, true, "projects"),
            ShardLimit::Unchecked
        );
        assert_eq!(
            shard_limit(None, false, false, "projects"),
            ShardLimit::Unchecked
        );
        let lim = |limit, overage_price| Limit {
            resource: "r".into(),
            limit,
            period: Period::None,
            overage_price,
        };
        assert_eq!(carried_limit(&lim(5, None)), 5);
        assert_eq!(carried_limit(&lim(-1, None)), -1);
        assert_eq!(carried_limit(&lim(5, Some(0.1))), -1);
    }

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
        let p = parse_plan(&json!({"name": "pro", "limits": {"calls": {"limit": 10, "period": "month", "overage_price": 0.01}}})).unwrap();
        assert!(parse_plan(&json!({"name": "pro", "limits": {"calls": {"limit": 10, "period": "minute", "overage_price": 0.01}}})).is_err());
        assert_eq!(
            p.limits[0],
            Limit {
                resource: "calls".into(),
                limit: 10,
                period: Period::Month,
                overage_price: Some(0.01)
            }
        );
    }

    #[test]
    fn bad_plans() {
        for doc in [
            json!([]),
            json!({}),
            json!({"name": "!!!"}),
            json!({"name": "x", "key": "Bad Key"}),
            json!({"name": "x", "limts": {}}),
            json!({"name": "x", "limits": {}, "usage_caps": {}}),
            json!({"name": "x", "features": [], "feature_entitlements": []}),
            json!({"name": "x", "limits": {"storage_mb": 1, "storage_gb": 1}}),
            json!({"name": "x", "limits": {"storage_tb": 9_000_000}}),
            json!({"name": "x", "limits": {"storage_gb": 1}, "overage": {"storage_gb": 0.1}}),
            json!({"name": 5}),
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
            &json!({"name": "p", "limits": {"calls_per_month": 10}, "overage": {"calls": 0.5}})
        )
        .is_ok());
    }

    #[test]
    fn the_design_documents_plans_load_as_written() {
        // 000: YAML "Free" with a null cycle and sizes in MB
        let free = parse_plan(&json!({
            "name": "Free", "price": 0, "currency": "USD", "billing_cycle": null,
            "limits": {"api_requests_per_hour": 1000, "storage_mb": 100, "users": 5, "campaigns": 1,
                       "ar_anchors": 10, "missions_per_month": 100},
            "features": ["basic_analytics", "community_support"],
            "restrictions": ["no_custom_branding", "no_api_access", "no_priority_support"]
        }))
        .unwrap();
        assert_eq!(
            (free.name.as_str(), free.display_name.as_deref()),
            ("free", Some("Free"))
        );
        assert_eq!(free.billing_cycle, "none");
        let storage = free
            .limits
            .iter()
            .find(|l| l.resource == "storage_bytes")
            .unwrap();
        assert_eq!(storage.limit, 100 << 20);
        // 000: "Enterprise", monthly, sizes in GB, -1 unlimited
        let ent = parse_plan(&json!({"name": "Enterprise", "price": 999, "billing_cycle": "monthly",
                                     "limits": {"storage_gb": 1000, "users": -1}, "restrictions": []}))
        .unwrap();
        assert_eq!(
            (ent.name.as_str(), ent.billing_cycle.as_str()),
            ("enterprise", "month")
        );
        assert_eq!(
            ent.limits
                .iter()
                .find(|l| l.resource == "storage_bytes")
                .unwrap()
                .limit,
            1000 << 30
        );
        // 002: a tier with usage_caps and feature_entitlements
        let pro = parse_plan(&json!({"name": "Professional", "price": 49.99,
                                     "usage_caps": {"api_calls": 100000, "projects": 50},
                                     "feature_entitlements": ["custom_domain", "api_access"]}))
        .unwrap();
        assert_eq!(pro.name, "professional");
        assert_eq!(pro.features, vec!["custom_domain", "api_access"]);
        assert_eq!(pro.limits.len(), 2);
        for (cycle, want) in [
            ("yearly", "year"),
            ("annual", "year"),
            ("year", "year"),
            ("month", "month"),
        ] {
            assert_eq!(
                parse_plan(&json!({"name": "x", "billing_cycle": cycle}))
                    .unwrap()
                    .billing_cycle,
                want
            );
        }
        assert_eq!(
            parse_plan(&json!({"name": "Pro Plus", "key": "pro_plus"}))
                .unwrap()
                .name,
            "pro_plus"
        );
        let e = parse_plan(&json!({"name": "x", "limts": {}, "feature": []})).unwrap_err();
        assert!(
            e.message.contains("\"limts\"") && e.message.contains("\"feature\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn sizes_are_one_resource_in_bytes() {
        assert_eq!(
            unit_of("storage_mb"),
            ("storage_bytes".to_string(), 1 << 20)
        );
        assert_eq!(
            unit_of("bandwidth_tb"),
            ("bandwidth_bytes".to_string(), 1 << 40)
        );
        assert_eq!(unit_of("users"), ("users".to_string(), 1));
        assert_eq!(unit_of("_gb"), ("_gb".to_string(), 1));
        assert_eq!(
            in_base_unit("storage_gb", 2).unwrap(),
            ("storage_bytes".to_string(), 2 << 30)
        );
        assert!(in_base_unit("storage_tb", i64::MAX / 2).is_err());
    }

    #[test]
    fn restrictions_hold_unless_an_override_lifts_them() {
        let e = Entitlements::from_json(&json!({
            "plan": "free", "features": ["api_access", "sso"],
            "restrictions": ["no_api_access", "no_priority_support", "no_exports"],
            "feature_overrides": {"priority_support": true, "no_exports": false}
        }))
        .unwrap();
        assert!(!e.has_feature("api_access"), "withheld by no_api_access");
        assert!(e.has_feature("sso"));
        assert!(
            e.has_feature("priority_support"),
            "the override grants it and lifts no_priority_support"
        );
        assert!(e.restrictions.contains("no_api_access"));
        assert!(
            !e.restrictions.contains("no_priority_support")
                && !e.restrictions.contains("no_exports")
        );
    }

    #[test]
    fn thresholds_are_crossed_once() {
        let t = parse_thresholds(" 100, 80 ,80").unwrap();
        assert_eq!(t, vec![80, 100]);
        assert!(
            parse_thresholds("0").is_err()
                && parse_thresholds("x").is_err()
                && parse_thresholds("1001").is_err()
        );
        assert_eq!(parse_thresholds("").unwrap(), Vec::<i64>::new());
        assert_eq!(crossed(&t, 10, 7, 8), vec![80]);
        assert_eq!(crossed(&t, 10, 8, 9), Vec::<i64>::new());
        assert_eq!(crossed(&t, 10, 7, 10), vec![80, 100]);
        assert_eq!(crossed(&t, 10, 10, 12), Vec::<i64>::new());
        assert_eq!(crossed(&t, -1, 0, 5), Vec::<i64>::new());
        assert_eq!(crossed(&t, 3, 2, 3), vec![80, 100]);
        assert_eq!(crossed(&t, 5, 4, 5), vec![100]);
        assert_eq!(crossed(&t, i64::MAX, 0, i64::MAX), vec![80, 100]);
        // every step of 1 from 0 to the limit crosses each threshold exactly once
        let mut all = vec![];
        for u in 0..10 {
            all.extend(crossed(&t, 10, u, u + 1));
        }
        assert_eq!(all, vec![80, 100]);
        assert_eq!(percents_reached(10, 7, 8), Some((71, 80)));
        assert_eq!(
            percents_reached(1000, 100, 101),
            None,
            "10.0% to 10.1%: no whole percent"
        );
        assert_eq!(percents_reached(10, 8, 8), None);
        assert_eq!(percents_reached(0, 0, 8), None);
    }
}
