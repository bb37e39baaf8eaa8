-- A tenant's plan, features and limits with its overrides, as one JSON document
-- (parsed by plans::Entitlements::from_json). $1: tenant id.
SELECT jsonb_build_object(
    'plan', t.plan,
    'features', coalesce(to_jsonb(p.features), '[]'::jsonb),
    'restrictions', coalesce(to_jsonb(p.restrictions), '[]'::jsonb),
    'limits', coalesce((SELECT jsonb_agg(jsonb_build_array(l.resource, l.limit_value, l.period, l.overage_price))
                        FROM tenant.plan_limits l WHERE l.plan = t.plan), '[]'::jsonb),
    'overrides', coalesce((SELECT jsonb_agg(jsonb_build_array(o.resource, o.limit_value, o.period, o.overage_price))
                           FROM tenant.tenant_limits o WHERE o.tenant_id = t.id), '[]'::jsonb),
    'feature_overrides', coalesce((SELECT jsonb_object_agg(f.feature, f.enabled)
                                   FROM tenant.tenant_features f WHERE f.tenant_id = t.id), '{}'::jsonb))
FROM tenant.tenants t
LEFT JOIN tenant.plans p ON p.name = t.plan
WHERE t.id = $1
