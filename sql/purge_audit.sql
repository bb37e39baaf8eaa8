-- Retention for tenant.purge_audit($1 default days, $2 days for the tenants listed in $3:
-- those with 'audit_logs', state::audit::tenants_with_audit_logs).
-- Removes only a prefix of each chain (entries older than the cutoff, up to the first newer
-- one) and records where the chain now starts.
WITH chains AS (
    SELECT h.chain, h.base_seq,
           now() - make_interval(days => CASE WHEN tenant_internal._chain_tenant(h.chain) = ANY ($3::text[])
                                              THEN $2 ELSE $1 END) AS cutoff
    FROM tenant.audit_heads h
), cut AS (
    SELECT c.chain, c.base_seq,
           coalesce((SELECT min(l.seq) - 1 FROM tenant.audit_log l WHERE l.chain = c.chain AND l.at >= c.cutoff),
                    (SELECT max(l.seq) FROM tenant.audit_log l WHERE l.chain = c.chain)) AS k
    FROM chains c
), del AS (
    DELETE FROM tenant.audit_log l USING cut
    WHERE l.chain = cut.chain AND l.seq <= cut.k AND l.seq > cut.base_seq
    RETURNING l.chain, l.seq, l.hash
), upd AS (
    UPDATE tenant.audit_heads h SET base_seq = d.seq, base_hash = d.hash
    FROM (SELECT DISTINCT ON (chain) chain, seq, hash FROM del ORDER BY chain, seq DESC) d
    WHERE h.chain = d.chain
    RETURNING 1
)
SELECT count(*) FROM del
