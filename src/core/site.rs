//! Where a request lands (pure): hostnames and their resolution against the base domain,
//! branding documents, custom field definitions and values, storage paths and the schema
//! of a tenant placed in its own schema. Every check names the bad part (MT030).

use crate::core::error::{MtError, MtResult};
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------
// Hostnames

/// A hostname as a request carries it (`Host` header): case, a trailing dot and a port are
/// dropped (`Acme.Example.COM.:8443` is `acme.example.com`). None when what is left is not
/// a hostname (resolution then finds nothing).
pub fn request_host(input: &str) -> Option<String> {
    let s = input.trim();
    // an IPv6 literal has no tenant
    if s.starts_with('[') {
        return None;
    }
    let s = match s.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return None,
        None => s,
    };
    let s = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    hostname(&s).ok().map(|_| s)
}

/// A custom domain a tenant registers: lowercase after normalisation, at least two labels of
/// 1-63 characters (a-z, 0-9, '-', not at either end), at most 253 characters, not an IP
/// address. Ports, schemes and paths are refused, not dropped: the tenant asked for that
/// exact name.
pub fn custom_hostname(input: &str) -> MtResult<String> {
    let s = input.trim();
    let s = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    hostname(&s)?;
    Ok(s)
}

fn hostname(s: &str) -> MtResult<()> {
    let bad = |why: &str| {
        MtError::invalid(format!(
            "invalid hostname \"{}\": {why}",
            s.escape_default()
        ))
        .hint(
            "A hostname like app.example.com: labels of a-z, 0-9 and '-', no port, scheme or path.",
        )
    };
    if s.is_empty() || s.len() > 253 {
        return Err(bad("must be 1-253 characters"));
    }
    let labels: Vec<&str> = s.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("needs at least two labels"));
    }
    for l in &labels {
        if l.is_empty() || l.len() > 63 {
            return Err(bad("each label must be 1-63 characters"));
        }
        if !l
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad("only a-z, 0-9, '-' and '.' are allowed"));
        }
        if l.starts_with('-') || l.ends_with('-') {
            return Err(bad("a label cannot start or end with '-'"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad("an IP address is not a domain"));
    }
    Ok(())
}

/// Is `host` the base domain or under it?
pub fn under_base(host: &str, base: &str) -> bool {
    !base.is_empty() && (host == base || host.ends_with(&format!(".{base}")))
}

/// The slug a subdomain names: exactly one label directly under the base domain
/// (`acme.app.example.com` with base `app.example.com` is `acme`).
pub fn subdomain_slug<'a>(host: &'a str, base: &str) -> Option<&'a str> {
    if base.is_empty() {
        return None;
    }
    let label = host.strip_suffix(base)?.strip_suffix('.')?;
    (!label.is_empty() && !label.contains('.')).then_some(label)
}

/// The DNS name of the TXT record that proves a tenant controls `host`.
pub fn txt_record_name(host: &str) -> String {
    format!("_multitenant-verify.{host}")
}

// ---------------------------------------------------------------------------------------
// Branding

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Url,
    Color,
    Font,
    Css,
    Scheme,
    Bool,
    Text(usize),
    Email,
}

/// The keys of a branding record and what each holds.
const BRANDING: &[(&str, Kind)] = &[
    ("logo_url", Kind::Url),
    ("favicon_url", Kind::Url),
    ("primary_color", Kind::Color),
    ("secondary_color", Kind::Color),
    ("accent_color", Kind::Color),
    ("font_family", Kind::Font),
    ("custom_css", Kind::Css),
    ("color_scheme", Kind::Scheme),
    ("white_label", Kind::Bool),
    ("email_from_name", Kind::Text(100)),
    ("email_from_address", Kind::Email),
    ("email_footer", Kind::Text(2000)),
];

/// Custom CSS is limited to this many bytes.
pub const MAX_CSS: usize = 32 * 1024;

/// The branding keys, for documentation and errors.
pub fn branding_keys() -> Vec<&'static str> {
    BRANDING.iter().map(|(k, _)| *k).collect()
}

/// An https URL of at most 2,048 characters without spaces, quotes, angle brackets or
/// control characters (it ends up in HTML attributes and CSS `url()`).
pub fn https_url(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    s.len() <= 2048
        && !host.is_empty()
        && request_host(host).is_some()
        && !s.chars().any(|c| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, '"' | '\'' | '<' | '>' | '\\' | '(' | ')' | '`')
        })
}

/// `#rrggbb`.
pub fn color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && local
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".!#$%&*+-/=?^_{|}~".contains(&b))
                && custom_hostname(domain).is_ok_and(|d| d == domain)
        }
        None => false,
    }
}

fn check_value(kind: Kind, v: &Value) -> Result<(), String> {
    let s = || v.as_str().ok_or_else(|| "must be a string".to_string());
    match kind {
        Kind::Url => (https_url(s()?)).then_some(()).ok_or_else(|| {
            "must be an https URL (at most 2048 characters, no quotes or spaces)".into()
        }),
        Kind::Color => color(s()?)
            .then_some(())
            .ok_or_else(|| "must be a colour #rrggbb".into()),
        Kind::Font => {
            let f = s()?;
            (!f.is_empty()
                && f.len() <= 200
                && f.bytes().all(|b| b.is_ascii_alphanumeric() || b" ,-_'\"".contains(&b)))
            .then_some(())
            .ok_or_else(|| "must be a font list of letters, digits, spaces, commas, quotes and '-' (at most 200)".into())
        }
        Kind::Css => {
            let c = s()?;
            if c.len() > MAX_CSS {
                return Err(format!("is {} bytes, more than {MAX_CSS}", c.len()));
            }
            if c.contains('<') {
                return Err("cannot contain '<' (it would close the style element)".into());
            }
            let lower = c.to_ascii_lowercase();
            if [
                "javascript:",
                "expression(",
                "@import",
                "behavior:",
                "-moz-binding",
            ]
            .iter()
            .any(|bad| lower.contains(bad))
            {
                return Err("cannot contain script or imports (javascript:, expression(), @import, behavior, -moz-binding)".into());
            }
            if c.contains('\\') {
                return Err("cannot contain a backslash (CSS escapes would hide the above)".into());
            }
            Ok(())
        }
        Kind::Scheme => matches!(s()?, "light" | "dark" | "auto")
            .then_some(())
            .ok_or_else(|| "must be light, dark or auto".into()),
        Kind::Bool => v
            .is_boolean()
            .then_some(())
            .ok_or_else(|| "must be true or false".into()),
        Kind::Text(max) => {
            let t = s()?;
            (t.chars().count() <= max && !t.chars().any(|c| c.is_control() && c != '\n'))
                .then_some(())
                .ok_or_else(|| {
                    format!("must be at most {max} characters without control characters")
                })
        }
        Kind::Email => email(s()?)
            .then_some(())
            .ok_or_else(|| "must be an e-mail address".into()),
    }
}

/// Apply `patch` (an object; a null value removes the key) to `current`, checking every
/// key. All problems are reported at once, naming each key; nothing is applied on error.
pub fn merge_branding(current: &Map<String, Value>, patch: &Value) -> MtResult<Map<String, Value>> {
    let Some(patch) = patch.as_object() else {
        return Err(MtError::invalid("branding must be a JSON object"));
    };
    let mut problems = Vec::new();
    let mut out = current.clone();
    for (k, v) in patch {
        let Some((_, kind)) = BRANDING.iter().find(|(name, _)| name == k) else {
            problems.push(format!("{}: unknown key", k.escape_default()));
            continue;
        };
        if v.is_null() {
            out.remove(k);
            continue;
        }
        match check_value(*kind, v) {
            Ok(()) => {
                out.insert(k.clone(), v.clone());
            }
            Err(why) => problems.push(format!("{k}: {why}")),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(
            MtError::invalid(format!("invalid branding: {}", problems.join("; ")))
                .hint(format!("Keys: {}.", branding_keys().join(", "))),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Custom fields

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Number,
    Boolean,
    Date,
    Select,
}

impl FieldType {
    pub fn parse(s: &str) -> MtResult<FieldType> {
        Ok(match s {
            "text" => FieldType::Text,
            "number" => FieldType::Number,
            "boolean" => FieldType::Boolean,
            "date" => FieldType::Date,
            "select" => FieldType::Select,
            _ => {
                return Err(MtError::invalid(format!(
                    "invalid field type \"{}\"",
                    s.escape_default()
                ))
                .hint("One of text, number, boolean, date, select."))
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldDef {
    pub name: String,
    pub kind: FieldType,
    pub required: bool,
    pub options: Vec<String>,
}

/// Longest text value of a custom field.
pub const MAX_FIELD_TEXT: usize = 10_000;

/// An entity or field name: a-z first, then a-z, 0-9 and '_', at most 63 characters.
pub fn field_name(what: &str, s: &str) -> MtResult<()> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.as_bytes()[0].is_ascii_lowercase()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(
            MtError::invalid(format!("invalid {what} name \"{}\"", s.escape_default()))
                .hint("a-z first, then a-z, 0-9 and '_', at most 63 characters."),
        )
    }
}

/// A definition: select fields need 1-100 distinct non-empty options, other types none.
pub fn field_definition(
    name: &str,
    kind: &str,
    required: bool,
    options: Option<Vec<String>>,
) -> MtResult<FieldDef> {
    field_name("field", name)?;
    let kind = FieldType::parse(kind)?;
    let options = options.unwrap_or_default();
    if kind == FieldType::Select {
        if options.is_empty() || options.len() > 100 {
            return Err(MtError::invalid(format!(
                "field \"{name}\": a select field needs 1-100 options"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for o in &options {
            if o.is_empty() || o.len() > 200 || !seen.insert(o) {
                return Err(MtError::invalid(format!(
                    "field \"{name}\": options must be distinct and 1-200 characters"
                )));
            }
        }
    } else if !options.is_empty() {
        return Err(MtError::invalid(format!(
            "field \"{name}\": only select fields have options"
        )));
    }
    Ok(FieldDef {
        name: name.to_string(),
        kind,
        required,
        options,
    })
}

/// `YYYY-MM-DD`, a real day.
pub fn iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|p| p.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    if !b[..4]
        .iter()
        .chain(&b[5..7])
        .chain(&b[8..])
        .all(u8::is_ascii_digit)
    {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1 && (1..=days).contains(&d)
}

/// The problems of `doc` (a JSON object of field values) against the definitions: unknown
/// fields, missing required ones, values of the wrong type. Empty when valid. A null value
/// counts as absent.
pub fn field_problems(defs: &[FieldDef], doc: &Value) -> Vec<String> {
    let empty = Map::new();
    let obj = match doc {
        Value::Object(o) => o,
        Value::Null => &empty,
        _ => return vec!["custom fields must be a JSON object".into()],
    };
    let mut problems = Vec::new();
    for (k, v) in obj {
        let Some(def) = defs.iter().find(|d| &d.name == k) else {
            problems.push(format!("{}: unknown field", k.escape_default()));
            continue;
        };
        if v.is_null() {
            continue;
        }
        let why = match def.kind {
            FieldType::Text => match v.as_str() {
                Some(s) if s.chars().count() <= MAX_FIELD_TEXT => None,
                Some(_) => Some(format!("must be at most {MAX_FIELD_TEXT} characters")),
                None => Some("must be text".into()),
            },
            FieldType::Number => (!v.is_number()).then(|| "must be a number".into()),
            FieldType::Boolean => (!v.is_boolean()).then(|| "must be true or false".into()),
            FieldType::Date => {
                (!v.as_str().is_some_and(iso_date)).then(|| "must be a date YYYY-MM-DD".into())
            }
            FieldType::Select => (!v
                .as_str()
                .is_some_and(|s| def.options.iter().any(|o| o == s)))
            .then(|| format!("must be one of {}", def.options.join(", "))),
        };
        if let Some(why) = why {
            problems.push(format!("{k}: {why}"));
        }
    }
    for d in defs.iter().filter(|d| d.required) {
        if obj.get(&d.name).is_none_or(Value::is_null) {
            problems.push(format!("{}: required", d.name));
        }
    }
    problems
}

/// `field_problems` as an error naming each bad field (MT030).
pub fn check_fields(entity: &str, defs: &[FieldDef], doc: &Value) -> MtResult<()> {
    let p = field_problems(defs, doc);
    if p.is_empty() {
        Ok(())
    } else {
        Err(MtError::invalid(format!(
            "invalid custom fields of {entity}: {}",
            p.join("; ")
        )))
    }
}

// ---------------------------------------------------------------------------------------
// Storage paths

/// Every object of a tenant lives under this prefix.
pub fn storage_prefix(tenant: uuid::Uuid) -> String {
    format!("tenants/{tenant}/")
}

/// A file name made safe under the tenant's prefix: '/'-separated segments, empty segments
/// dropped, characters other than A-Z a-z 0-9 '.' '_' '-' replaced by '_'; '.' and '..'
/// segments are refused (MT030), as are names longer than 1,024 bytes.
pub fn storage_path(tenant: uuid::Uuid, filename: &str) -> MtResult<String> {
    let mut segs = Vec::new();
    for seg in filename.split(['/', '\\']) {
        if seg.is_empty() {
            continue;
        }
        if seg == "." || seg == ".." {
            return Err(MtError::invalid(format!(
                "invalid file name \"{}\": '.' and '..' segments are not allowed",
                filename.escape_default()
            )));
        }
        let clean: String = seg
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if clean.len() > 255 {
            return Err(MtError::invalid(
                "a file name segment is longer than 255 bytes",
            ));
        }
        segs.push(clean);
    }
    if segs.is_empty() {
        return Err(MtError::invalid("file name is empty"));
    }
    let path = format!("{}{}", storage_prefix(tenant), segs.join("/"));
    if path.len() > 1024 {
        return Err(MtError::invalid("file name is longer than 1024 bytes"));
    }
    Ok(path)
}

/// Where a registered path points: its tenant (from the prefix) when it is a canonical
/// storage path (what `storage_path` returns), else an error naming the problem.
pub fn path_owner(path: &str) -> MtResult<uuid::Uuid> {
    let bad = || {
        MtError::invalid(format!(
            "invalid object path \"{}\": not a tenant storage path",
            path.escape_default()
        ))
        .hint("Build paths with tenant.storage_path(filename).")
    };
    let rest = path.strip_prefix("tenants/").ok_or_else(bad)?;
    let (id, name) = rest.split_once('/').ok_or_else(bad)?;
    let tenant = uuid::Uuid::parse_str(id).map_err(|_| bad())?;
    if tenant.to_string() != id {
        return Err(bad());
    }
    if storage_path(tenant, name).ok().as_deref() != Some(path) {
        return Err(bad());
    }
    Ok(tenant)
}

// ---------------------------------------------------------------------------------------
// Schema placement

/// The schema of a tenant placed in its own schema: from its id (slugs can change).
pub fn tenant_schema(tenant: uuid::Uuid) -> String {
    format!("tenant_{}", tenant.simple())
}

/// Is a search_path entry (quoted or not) a tenant schema (`tenant_<32 hex>`)?
pub fn is_tenant_schema(entry: &str) -> bool {
    let e = entry.trim().trim_matches('"');
    e.strip_prefix("tenant_").is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The search_path for a context: `current` without any tenant schema, with `schema` first
/// when the tenant has one. None when `current` is already right.
pub fn search_path_for(current: &str, schema: Option<&str>) -> Option<String> {
    if schema.is_none() && !current.contains("tenant_") {
        return None;
    }
    let mut parts: Vec<String> = current
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty() && !is_tenant_schema(p))
        .collect();
    if let Some(s) = schema {
        // after an explicit pg_catalog: nothing in a tenant schema may shadow a built-in
        let at = parts
            .iter()
            .position(|p| p.trim_matches('"') == "pg_catalog")
            .map_or(0, |i| i + 1);
        parts.insert(at, format!("\"{}\"", s.replace('"', "\"\"")));
    }
    let path = parts.join(", ");
    (path != current).then_some(path)
}

/// A migration version: 1-100 characters of A-Z a-z 0-9 '.' '_' '-'.
pub fn migration_version(v: &str) -> MtResult<()> {
    if v.is_empty()
        || v.len() > 100
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(MtError::invalid(format!(
            "invalid migration version \"{}\"",
            v.escape_default()
        ))
        .hint("1-100 characters of A-Z, a-z, 0-9, '.', '_' and '-', e.g. 2026_11_27_add_notes."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_hosts_drop_case_port_and_dot() {
        assert_eq!(
            request_host("Acme.Example.COM.:8443").as_deref(),
            Some("acme.example.com")
        );
        assert_eq!(
            request_host("acme.example.com").as_deref(),
            Some("acme.example.com")
        );
        assert_eq!(request_host("localhost"), None);
        assert_eq!(request_host("10.0.0.1:80"), None);
        assert_eq!(request_host("[::1]:80"), None);
        assert_eq!(request_host("a b.com"), None);
        assert_eq!(request_host("acme.example.com:x"), None);
        assert_eq!(request_host(""), None);
    }

    #[test]
    fn custom_hostnames_are_strict() {
        assert_eq!(custom_hostname("App.Acme.com.").unwrap(), "app.acme.com");
        for bad in [
            "acme",
            "-a.com",
            "a-.com",
            "a..com",
            "acme.com:443",
            "https://a.com",
            "1.2.3.4",
            "a_b.com",
            "",
        ] {
            let e = custom_hostname(bad).unwrap_err();
            assert_eq!(e.code.sqlstate(), "MT030", "{bad}");
        }
        assert!(custom_hostname(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(custom_hostname(&format!("{}com", "a.".repeat(130))).is_err());
    }

    #[test]
    fn subdomains_name_one_label_under_the_base() {
        assert_eq!(subdomain_slug("acme.app.test", "app.test"), Some("acme"));
        assert_eq!(subdomain_slug("x.acme.app.test", "app.test"), None);
        assert_eq!(subdomain_slug("app.test", "app.test"), None);
        assert_eq!(subdomain_slug("acmeapp.test", "app.test"), None);
        assert_eq!(subdomain_slug("acme.app.test", ""), None);
        assert!(under_base("x.app.test", "app.test"));
        assert!(under_base("app.test", "app.test"));
        assert!(!under_base("myapp.test", "app.test"));
        assert!(!under_base("app.test", ""));
    }

    #[test]
    fn branding_is_checked_key_by_key() {
        let cur = Map::new();
        let ok = merge_branding(
            &cur,
            &json!({"primary_color": "#1a2B3c", "logo_url": "https://cdn.acme.com/logo.png",
                    "color_scheme": "dark", "white_label": true, "font_family": "Inter, 'Helvetica Neue', sans-serif",
                    "email_from_address": "hello@acme.com", "custom_css": ".btn { color: red }"}),
        )
        .unwrap();
        assert_eq!(ok["primary_color"], "#1a2B3c");
        let removed = merge_branding(&ok, &json!({"primary_color": null})).unwrap();
        assert!(!removed.contains_key("primary_color"));
        assert_eq!(removed["color_scheme"], "dark");
        let e = merge_branding(
            &cur,
            &json!({"primary_color": "red", "logo_url": "http://x.com/a.png", "colour": "#000000",
                    "custom_css": "</style><script>", "white_label": "yes"}),
        )
        .unwrap_err();
        for part in [
            "primary_color",
            "logo_url",
            "colour: unknown key",
            "custom_css",
            "white_label",
        ] {
            assert!(e.message.contains(part), "{part} in {}", e.message);
        }
        assert!(merge_branding(&cur, &json!({"custom_css": "a".repeat(MAX_CSS + 1)})).is_err());
        assert!(
            merge_branding(&cur, &json!({"logo_url": "https://a.com/x\" onerror=\"y"})).is_err()
        );
        assert!(merge_branding(
            &cur,
            &json!({"custom_css": "a{background:url(javascript:x)}"})
        )
        .is_err());
        assert!(merge_branding(&cur, &json!([1])).is_err());
        assert!(merge_branding(
            &cur,
            &json!({"custom_css": "@IMPORT url(https://evil.example/x.css);"})
        )
        .is_err());
        assert!(merge_branding(
            &cur,
            &json!({"custom_css": "a{background:url(\\6a avascript:x)}"})
        )
        .is_err());
    }

    #[test]
    fn fields_are_validated_and_named() {
        let defs = vec![
            field_definition("size", "number", true, None).unwrap(),
            field_definition(
                "tier",
                "select",
                false,
                Some(vec!["gold".into(), "silver".into()]),
            )
            .unwrap(),
            field_definition("due", "date", false, None).unwrap(),
            field_definition("vip", "boolean", false, None).unwrap(),
            field_definition("note", "text", false, None).unwrap(),
        ];
        assert!(field_problems(
            &defs,
            &json!({"size": 3, "tier": "gold", "due": "2024-02-29", "vip": false, "note": "x"})
        )
        .is_empty());
        let p = field_problems(
            &defs,
            &json!({"tier": "bronze", "due": "2023-02-29", "vip": 1, "note": 5, "color": "x"}),
        );
        let all = p.join("|");
        for part in [
            "tier: must be one of gold, silver",
            "due: must be a date",
            "vip:",
            "note: must be text",
            "color: unknown field",
            "size: required",
        ] {
            assert!(all.contains(part), "{part} in {all}");
        }
        assert_eq!(
            field_problems(&defs, &json!({"size": null})),
            vec!["size: required"]
        );
        assert!(field_definition("Bad", "text", false, None).is_err());
        assert!(field_definition("x", "blob", false, None).is_err());
        assert!(field_definition("x", "select", false, None).is_err());
        assert!(
            field_definition("x", "select", false, Some(vec!["a".into(), "a".into()])).is_err()
        );
        assert!(field_definition("x", "text", false, Some(vec!["a".into()])).is_err());
        assert_eq!(
            check_fields("deal", &defs, &json!([]))
                .unwrap_err()
                .code
                .sqlstate(),
            "MT030"
        );
    }

    #[test]
    fn dates_are_real_days() {
        assert!(iso_date("2024-02-29"));
        assert!(iso_date("2000-02-29"));
        assert!(!iso_date("1900-02-29"));
        assert!(!iso_date("2024-13-01"));
        assert!(!iso_date("2024-04-31"));
        assert!(!iso_date("2024-4-01"));
        assert!(!iso_date("+024-04-01"));
        assert!(!iso_date("0000-01-01"));
    }

    #[test]
    fn storage_paths_stay_under_the_prefix() {
        let t = uuid::Uuid::parse_str("11111111-2222-3333-4444-555555555555").unwrap();
        assert_eq!(
            storage_path(t, "/invoices//2024 Q1/r\u{e9}sum\u{e9}.pdf").unwrap(),
            "tenants/11111111-2222-3333-4444-555555555555/invoices/2024_Q1/r_sum_.pdf"
        );
        assert!(storage_path(t, "../other/x").is_err());
        assert!(storage_path(t, "a/./b").is_err());
        assert!(storage_path(t, "a\\..\\b").is_err());
        assert!(storage_path(t, "///").is_err());
        assert!(storage_path(t, &"a".repeat(300)).is_err());
        let p = storage_path(t, "a/b.txt").unwrap();
        assert_eq!(path_owner(&p).unwrap(), t);
        assert!(path_owner("tenants/11111111-2222-3333-4444-555555555555/../x").is_err());
        assert!(path_owner("tenants/11111111222233334444555555555555/x").is_err());
        assert!(path_owner("other/x").is_err());
        assert!(path_owner("tenants/11111111-2222-3333-4444-555555555555/a b").is_err());
    }

    #[test]
    fn search_paths_carry_one_tenant_schema() {
        let a = "tenant_11111111222233334444555555555555";
        let b = "tenant_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        assert_eq!(search_path_for("\"$user\", public", None), None);
        assert_eq!(
            search_path_for("\"$user\", public", Some(a)).unwrap(),
            format!("\"{a}\", \"$user\", public")
        );
        let once = search_path_for("\"$user\", public", Some(a)).unwrap();
        assert_eq!(search_path_for(&once, Some(a)), None);
        assert_eq!(
            search_path_for(&once, Some(b)).unwrap(),
            format!("\"{b}\", \"$user\", public")
        );
        assert_eq!(search_path_for(&once, None).unwrap(), "\"$user\", public");
        assert_eq!(search_path_for("tenant_stuff, public", None), None);
        assert_eq!(
            search_path_for("pg_catalog, public", Some(a)).unwrap(),
            format!("pg_catalog, \"{a}\", public")
        );
        assert!(!is_tenant_schema("tenant_internal"));
        assert!(is_tenant_schema(a));
    }

    #[test]
    fn schemas_and_versions() {
        let t = uuid::Uuid::parse_str("11111111-2222-3333-4444-555555555555").unwrap();
        assert_eq!(tenant_schema(t), "tenant_11111111222233334444555555555555");
        assert!(tenant_schema(t).len() <= 63);
        assert!(migration_version("2026_11_27.add-notes").is_ok());
        assert!(migration_version("x; drop").is_err());
        assert!(migration_version("").is_err());
    }
}
