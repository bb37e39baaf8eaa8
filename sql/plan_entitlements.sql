-- A plan's features and limits as one JSON document (parsed by plans::Entitlements::from_json),
-- shared by the tenants on that plan that have no overrides. $1: plan name.
SELECT jsonb_build_object(
    'plan', p.name,
    'features', coalesce(to_jsonb(p.features), '[]'::jsonb),
    'restrictions', coalesce(to_jsonb(p.restrictions), '[]'::jsonb),
    'limits', coalesce((SELECT jsonb_agg(jsonb_build_array(l.resource, l.limit_value, l.period, l.overage_price))
                        FROM tenant.plan_limits l WHERE l.plan = p.name), '[]'::jsonb))
FROM tenant.plans p
WHERE p.name = $1
