\set k random(1, 8)
SELECT tenant.consume('api_calls', 1, 'endpoint-' || :k::text);
