//! Every naming rule of the extension, one function per kind of name: pure Rust.

use crate::core::error::{MtError, MtResult};

/// A tenant slug: 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-' (a
/// DNS label, so it can be a subdomain), and not shaped like a uuid: a tenant is named by
/// its uuid or its slug, and one string must never mean two tenants.
pub fn slug(slug: &str) -> MtResult<()> {
    let ok = !slug.is_empty()
        && slug.len() <= 63
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && uuid::Uuid::parse_str(slug).is_err();
    if ok {
        Ok(())
    } else {
        Err(
            MtError::invalid(format!("invalid tenant slug \"{}\"", slug.escape_default())).hint(
                "A slug is 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-', and not a uuid.",
            ),
        )
    }
}

/// A tenant's display name: 1-200 characters, not blank.
pub fn tenant_name(name: &str) -> MtResult<()> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(MtError::invalid(
            "tenant name must be 1-200 characters and not blank",
        ));
    }
    Ok(())
}

/// A user id as the application knows it (a JWT `sub`, an e-mail, a uuid): 1-256 bytes, no
/// NUL.
pub fn user_id(u: &str) -> MtResult<()> {
    if u.is_empty() || u.len() > 256 || u.contains('\0') {
        return Err(MtError::invalid("user_id must be 1-256 characters"));
    }
    Ok(())
}

/// A JWT key id: 1-200 bytes.
pub fn kid(kid: &str) -> MtResult<()> {
    if kid.is_empty() || kid.len() > 200 {
        return Err(MtError::invalid("kid must be 1-200 characters"));
    }
    Ok(())
}

/// 1-100 characters of a-z, 0-9, '_', '-' and the `extra` bytes.
fn name_ok(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'_'
                || b == b'-'
                || extra.contains(&b)
        })
}

/// A plan, resource or feature name (`kind` names it in the message).
pub fn plain(kind: &str, s: &str) -> MtResult<()> {
    if name_ok(s, b"") {
        Ok(())
    } else {
        Err(
            MtError::invalid(format!("invalid {kind} name \"{}\"", s.escape_default()))
                .hint("Use 1-100 characters of a-z, 0-9, '_' and '-'."),
        )
    }
}

/// A resource that is metered or counted.
pub fn resource(s: &str) -> MtResult<()> {
    plain("resource", s)
}

/// A tenant's region: 1-100 characters of a-z, 0-9, '_', '-' (e.g. `eu-west-1`).
pub fn region(s: &str) -> MtResult<()> {
    plain("region", s)
}

/// A setting's key: also '.' (e.g. `branding.color`).
pub fn setting_key(s: &str) -> MtResult<()> {
    if name_ok(s, b".") {
        Ok(())
    } else {
        Err(
            MtError::invalid(format!("invalid setting key \"{}\"", s.escape_default()))
                .hint("Use 1-100 characters of a-z, 0-9, '_', '-' and '.'."),
        )
    }
}

/// An end user's IP address (v4 or v6), in its canonical text form.
pub fn client_ip(s: &str) -> MtResult<String> {
    s.trim()
        .parse::<std::net::IpAddr>()
        .map(|a| a.to_string())
        .map_err(|_| {
            MtError::invalid(format!("invalid client_ip \"{}\"", s.escape_default()))
                .hint("Give an IPv4 or IPv6 address, e.g. '203.0.113.7' or '2001:db8::1'.")
        })
}

/// The action of an application event (`tenant.log_event`): also '.' and ':'.
pub fn event_action(s: &str) -> MtResult<()> {
    if name_ok(s, b".:") {
        Ok(())
    } else {
        Err(
            MtError::invalid(format!("invalid event action \"{}\"", s.escape_default())).hint(
                "Use 1-100 characters of a-z, 0-9, '_', '-', '.' and ':' (e.g. 'data.exported').",
            ),
        )
    }
}

/// A role, permission resource or action: also '.', and '*' as a wildcard.
pub fn permission_part(kind: &str, s: &str) -> MtResult<()> {
    if s == "*" || name_ok(s, b".*") {
        Ok(())
    } else {
        Err(
            MtError::invalid(format!("invalid {kind} \"{}\"", s.escape_default()))
                .hint("Use 1-100 characters of a-z, 0-9, '_', '-', '.' (and '*' as a wildcard)."),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::Code;

    #[test]
    fn client_ips() {
        assert_eq!(client_ip("203.0.113.7").unwrap(), "203.0.113.7");
        assert_eq!(client_ip(" 2001:DB8::1 ").unwrap(), "2001:db8::1");
        for bad in ["", "localhost", "1.2.3.4/24", "1.2.3", "::g"] {
            assert_eq!(
                client_ip(bad).unwrap_err().code,
                Code::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn event_actions() {
        assert!(event_action("data.exported").is_ok());
        assert!(event_action("login:failed").is_ok());
        for bad in ["", "Data", "a b", "x;drop", &"a".repeat(101)] {
            assert_eq!(
                event_action(bad).unwrap_err().code,
                Code::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn slugs() {
        for ok in ["a", "acme", "acme-corp", "a1", &"x".repeat(63)] {
            assert!(slug(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Acme",
            "a_b",
            "a b",
            "a.b",
            "ü",
            &"x".repeat(64),
            "a\0",
            "6f9619ff-8b86-d011-b42d-00c04fc964ff",
        ] {
            assert_eq!(
                slug(bad).unwrap_err().code,
                Code::InvalidArgument,
                "{bad:?}"
            );
        }
        assert!(tenant_name("Acme").is_ok());
        assert!(tenant_name("   ").is_err());
    }

    #[test]
    fn user_ids_and_kids() {
        assert!(user_id("alice@example.com").is_ok());
        for bad in ["", "a\0b", &"u".repeat(257)] {
            assert!(user_id(bad).is_err(), "{bad:?}");
        }
        assert!(kid("k1").is_ok());
        assert!(kid("").is_err());
        assert!(kid(&"k".repeat(201)).is_err());
    }

    #[test]
    fn plain_and_permission_names() {
        assert!(resource("api_calls").is_ok());
        assert!(resource("api.calls").is_err());
        assert!(resource(&"r".repeat(101)).is_err());
        assert!(permission_part("resource", "billing.*").is_ok());
        assert!(permission_part("action", "*").is_ok());
        assert!(permission_part("role", "Bad").is_err());
    }
}
