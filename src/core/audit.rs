//! Audit trail logic: pure Rust, no Postgres. Row diffs, record ids and the hash chain.
//!
//! Chains: one per tenant and writer slot (`<tenant id>/<slot>`, `global/<slot>` for rows
//! without a tenant; slot = backend pid mod 8), so writers of different tenants never wait
//! for each other and writers of one tenant rarely do. Entry n of a chain stores
//! `hash_n = SHA-256(hash_{n-1} || be64(n) || content_n)` with `hash_0` empty, where
//! `content_n` is [`content`] over the entry's stored columns
//! (`tenant_internal._audit_content_all`, every column: hash format 2; 0.1.0's entries keep
//! format 1, `_audit_content`, without the table oid, client address and application name),
//! used by the writer and by `verify_audit`.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The bytes an entry's hash covers: every field length-prefixed (`-` for NULL) and joined
/// with `|`, so that no two different entries encode alike.
pub fn content(fields: &[Option<&str>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.map_or(1, |s| s.len() + 8)).sum());
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b'|');
        }
        match f {
            None => out.push(b'-'),
            Some(s) => {
                out.extend_from_slice(s.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
    out
}

/// Chain of a writer: one per tenant and writer slot, so that concurrent writers of the
/// same tenant rarely wait for each other (and writers of different tenants never do).
pub fn chain_name(tenant: Option<&str>, slot: u32) -> String {
    format!("{}/{}", tenant.unwrap_or(GLOBAL), slot)
}

/// The name of the chains of rows without a tenant.
pub const GLOBAL: &str = "global";

/// A LIKE pattern for every chain of `tenant` (None: the global chains). Tenant ids are
/// uuids, which hold no LIKE wildcard.
pub fn chain_pattern(tenant: Option<&str>) -> String {
    format!("{}/%", tenant.unwrap_or(GLOBAL))
}

/// The tenant a chain belongs to, None for a global chain.
pub fn chain_tenant(chain: &str) -> Option<&str> {
    chain
        .split_once('/')
        .map(|(t, _)| t)
        .filter(|t| *t != GLOBAL)
}

pub fn chain_hash(prev: &[u8], seq: i64, content: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(content);
    h.finalize().into()
}

/// One stored entry as `verify_audit` reads it back.
pub struct Entry {
    pub id: i64,
    pub seq: i64,
    pub content: Vec<u8>,
    pub hash: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Intact {
        entries: i64,
    },
    Broken {
        entry_id: Option<i64>,
        seq: i64,
        reason: String,
    },
}

/// Where a chain starts: after `seq` entries removed by the retention function, whose last
/// hash was `hash` (0 and empty for a chain never pruned).
#[derive(Clone, Debug, Default)]
pub struct Base {
    pub seq: i64,
    pub hash: Vec<u8>,
}

/// Walk a chain in `seq` order from `base`. `head` is the chain head (last seq, last hash).
pub fn verify_chain(
    entries: impl IntoIterator<Item = Entry>,
    base: Base,
    head: Option<(i64, Vec<u8>)>,
) -> Verdict {
    let mut prev: Vec<u8> = base.hash;
    let mut expected = base.seq + 1;
    for e in entries {
        if e.seq != expected {
            return Verdict::Broken {
                entry_id: Some(e.id),
                seq: expected,
                reason: format!(
                    "entry {expected} is missing (next entry found is {})",
                    e.seq
                ),
            };
        }
        let h = chain_hash(&prev, e.seq, &e.content);
        if h.as_slice() != e.hash.as_slice() {
            return Verdict::Broken {
                entry_id: Some(e.id),
                seq: e.seq,
                reason: format!(
                    "entry {} (id {}) was modified: its content does not match its hash",
                    e.seq, e.id
                ),
            };
        }
        prev = e.hash;
        expected += 1;
    }
    let last = expected - 1;
    match head {
        Some((hseq, hhash)) if hseq != last || (last > base.seq && hhash != prev) => {
            Verdict::Broken {
                entry_id: None,
                seq: last + 1,
                reason: format!(
                    "the chain head says {hseq} entries, {last} are present: entries were deleted"
                ),
            }
        }
        None if last > 0 => Verdict::Broken {
            entry_id: None,
            seq: 0,
            reason: "the chain head is missing".into(),
        },
        _ => Verdict::Intact {
            entries: last - base.seq,
        },
    }
}

/// Drop ignored columns from a row image.
pub fn strip(row: &mut Value, ignore: &[String]) {
    if let Value::Object(m) = row {
        for c in ignore {
            m.remove(c);
        }
    }
}

/// Columns whose value differs between the old and new row images (sorted).
pub fn changed_columns(old: &Value, new: &Value) -> Vec<String> {
    let empty = Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut v: Vec<String> = n
        .iter()
        .filter(|(k, val)| o.get(*k) != Some(*val))
        .map(|(k, _)| k.clone())
        .chain(o.keys().filter(|k| !n.contains_key(*k)).cloned())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Keep only `cols` of a row image (for "changed columns only" logging).
pub fn only(row: &Value, cols: &[String]) -> Value {
    let mut m = Map::new();
    if let Value::Object(o) = row {
        for c in cols {
            if let Some(v) = o.get(c) {
                m.insert(c.clone(), v.clone());
            }
        }
    }
    Value::Object(m)
}

/// A stable record id from the primary key columns: the value itself for one column
/// (strings unquoted), a JSON array for several; None without a primary key.
pub fn record_id(row: &Value, pk: &[String]) -> Option<String> {
    let vals: Vec<&Value> = pk
        .iter()
        .map(|c| row.get(c).unwrap_or(&Value::Null))
        .collect();
    match vals.as_slice() {
        [] => None,
        [Value::String(s)] => Some(s.clone()),
        [v] => Some(v.to_string()),
        many => Some(Value::Array(many.iter().map(|v| (*v).clone()).collect()).to_string()),
    }
}

/// SHA-256 of `data` as lowercase hex (names a user in an event without naming it).
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_round_trip() {
        let t = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
        assert_eq!(chain_tenant(&chain_name(Some(t), 3)), Some(t));
        assert_eq!(chain_tenant(&chain_name(None, 3)), None);
        assert_eq!(chain_pattern(Some(t)), format!("{t}/%"));
        assert_eq!(chain_pattern(None), "global/%");
    }
    use serde_json::json;

    fn chain(contents: &[&str]) -> (Vec<Entry>, (i64, Vec<u8>)) {
        let mut prev = Vec::new();
        let mut out = Vec::new();
        for (i, c) in contents.iter().enumerate() {
            let seq = i as i64 + 1;
            let h = chain_hash(&prev, seq, c.as_bytes()).to_vec();
            out.push(Entry {
                id: 100 + seq,
                seq,
                content: c.as_bytes().to_vec(),
                hash: h.clone(),
            });
            prev = h;
        }
        let head = (contents.len() as i64, prev);
        (out, head)
    }

    #[test]
    fn intact_chain_verifies() {
        let (e, head) = chain(&["a", "b", "c"]);
        assert_eq!(
            verify_chain(e, Base::default(), Some(head)),
            Verdict::Intact { entries: 3 }
        );
        assert_eq!(
            verify_chain(Vec::new(), Base::default(), None),
            Verdict::Intact { entries: 0 }
        );
    }

    #[test]
    fn edits_deletions_and_truncation_are_found() {
        let (mut e, head) = chain(&["a", "b", "c"]);
        e[1].content = b"B".to_vec();
        assert!(matches!(
            verify_chain(e, Base::default(), Some(head.clone())),
            Verdict::Broken {
                entry_id: Some(102),
                seq: 2,
                ..
            }
        ));
        let (mut e, head2) = chain(&["a", "b", "c"]);
        e.remove(1);
        assert!(matches!(
            verify_chain(e, Base::default(), Some(head2)),
            Verdict::Broken { seq: 2, .. }
        ));
        let (mut e, head3) = chain(&["a", "b", "c"]);
        e.pop();
        assert!(matches!(
            verify_chain(e, Base::default(), Some(head3)),
            Verdict::Broken {
                entry_id: None,
                seq: 3,
                ..
            }
        ));
        // an attacker who rewrites an entry and recomputes its hash breaks the next link
        let (mut e, head4) = chain(&["a", "b", "c"]);
        e[1].content = b"B".to_vec();
        e[1].hash = chain_hash(&e[0].hash, 2, b"B").to_vec();
        assert!(matches!(
            verify_chain(e, Base::default(), Some(head4)),
            Verdict::Broken { seq: 3, .. }
        ));
        let (e, _) = chain(&["a"]);
        assert!(matches!(
            verify_chain(e, Base::default(), None),
            Verdict::Broken { .. }
        ));
    }

    #[test]
    fn pruned_chain_verifies_from_its_base() {
        let (mut e, head) = chain(&["a", "b", "c", "d"]);
        let dropped: Vec<Entry> = e.drain(..2).collect();
        let base = Base {
            seq: 2,
            hash: dropped[1].hash.clone(),
        };
        assert_eq!(
            verify_chain(e, base, Some(head)),
            Verdict::Intact { entries: 2 }
        );
    }

    #[test]
    fn hash_matches_the_sql_formula() {
        // sha256('\x'::bytea || int8send(1) || 'x'::bytea) computed by PostgreSQL
        let h = chain_hash(b"", 1, b"x");
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex.len(), 64);
        assert_ne!(chain_hash(b"", 1, b"x"), chain_hash(b"", 2, b"x"));
        assert_ne!(chain_hash(b"a", 1, b"x"), chain_hash(b"", 1, b"x"));
    }

    #[test]
    fn content_is_unambiguous() {
        assert_eq!(
            content(&[Some("ab"), None, Some("")]),
            b"2:ab|-|0:".to_vec()
        );
        // moving a separator between fields changes the encoding
        assert_ne!(
            content(&[Some("a|1:b"), Some("c")]),
            content(&[Some("a"), Some("b|1:c")])
        );
        assert_ne!(content(&[None]), content(&[Some("-")]));
        assert_eq!(chain_name(None, 3), "global/3");
        assert_eq!(chain_name(Some("t"), 0), "t/0");
    }

    #[test]
    fn diffs_and_ids() {
        let old = json!({"id": 1, "name": "a", "secret": "s", "gone": 1});
        let new = json!({"id": 1, "name": "b", "secret": "t", "added": 2});
        assert_eq!(
            changed_columns(&old, &new),
            vec!["added", "gone", "name", "secret"]
        );
        let mut n = new.clone();
        strip(&mut n, &["secret".to_string()]);
        assert_eq!(n, json!({"id": 1, "name": "b", "added": 2}));
        assert_eq!(
            only(&new, &["name".to_string(), "nope".to_string()]),
            json!({"name": "b"})
        );
        assert_eq!(record_id(&new, &["id".to_string()]).as_deref(), Some("1"));
        assert_eq!(
            record_id(&json!({"k": "x"}), &["k".to_string()]).as_deref(),
            Some("x")
        );
        assert_eq!(
            record_id(
                &json!({"a": 1, "b": "x"}),
                &["a".to_string(), "b".to_string()]
            )
            .as_deref(),
            Some("[1,\"x\"]")
        );
        assert_eq!(record_id(&new, &[]), None);
    }
}
