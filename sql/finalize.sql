-- multitenant finalize: SQL wrappers, triggers, policies and grants (runs last).

-- The permissive half of the isolation policies (tenant.isolate): RLS needs one permissive
-- policy to let any row through, the restrictive ones narrow it to the tenant. Written as a
-- call (inlined to `true` by the planner, so it costs nothing) so that the policy depends on
-- the extension: DROP EXTENSION ... CASCADE removes it with the restrictive ones, and a table
-- left with RLS forced and no policy shows no rows to anyone (fail closed).
CREATE FUNCTION tenant_internal._allow() RETURNS boolean
LANGUAGE sql IMMUTABLE LEAKPROOF PARALLEL SAFE
AS $$ SELECT true $$;
COMMENT ON FUNCTION tenant_internal._allow() IS
    'Internal: the permissive isolation policy (always true; exists so the policy depends on the extension).';

-- Usage of the current tenant: per resource of its plan, the current window against the
-- limit, and everything used between from_ts and to_ts (daily history plus what
-- run_maintenance() has not rolled up yet).
CREATE FUNCTION tenant.usage_report(from_ts timestamptz DEFAULT date_trunc('month', now()),
                                    to_ts timestamptz DEFAULT now())
RETURNS TABLE (resource text, period text, limit_value bigint, window_used bigint,
               percent_used numeric, window_resets timestamptz, used_in_range bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH t AS (SELECT tenant.require_tenant() AS id),
    lim AS (
        SELECT l.resource, l.period, l.limit_value FROM tenant.plan_limits l, t, tenant.tenants tt
        WHERE tt.id = t.id AND l.plan = tt.plan
          AND NOT EXISTS (SELECT 1 FROM tenant.tenant_limits o WHERE o.tenant_id = t.id AND o.resource = l.resource)
        UNION ALL
        SELECT o.resource, o.period, o.limit_value FROM tenant.tenant_limits o, t WHERE o.tenant_id = t.id
    )
    SELECT lim.resource, lim.period, lim.limit_value,
           coalesce(cur.used, 0),
           CASE WHEN lim.limit_value < 0 THEN NULL
                WHEN lim.limit_value = 0 THEN CASE WHEN coalesce(cur.used, 0) > 0 THEN 100 ELSE 0 END
                ELSE round(100.0 * coalesce(cur.used, 0) / lim.limit_value, 2) END,
           CASE WHEN lim.period = 'none' THEN NULL ELSE cur.window_end END,
           coalesce((SELECT sum(d.used) FROM tenant.usage_daily d, t
                     WHERE d.tenant_id = t.id AND d.resource = lim.resource
                       AND d.day >= from_ts::date AND d.day <= to_ts::date), 0)::bigint
         + coalesce((SELECT sum(c.used - c.rolled) FROM tenant.usage_counters c, t
                     WHERE c.tenant_id = t.id AND c.resource = lim.resource AND c.key = ''
                       AND c.window_end > from_ts AND c.window_start <= to_ts), 0)::bigint
    FROM lim
    LEFT JOIN LATERAL (
        SELECT c.used, c.window_end FROM tenant.usage_counters c, t
        WHERE c.tenant_id = t.id AND c.resource = lim.resource AND c.key = ''
          AND c.window_start <= now() AND now() < c.window_end
    ) cur ON true
    ORDER BY lim.resource
$$;

-- Invoice lines of a tenant for the month starting at period_start: the plan's base price,
-- then for each monthly limit with an overage price the units above the limit.
CREATE FUNCTION tenant.invoice(tenant text, period_start date DEFAULT date_trunc('month', now())::date)
RETURNS TABLE (line text, quantity bigint, unit_price numeric, amount numeric, currency text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
    t tenant.tenants;
BEGIN
    IF NOT (pg_has_role('tenant_service', 'USAGE') OR pg_has_role('tenant_admin', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to read invoices',
            HINT = 'Grant tenant_service or tenant_admin to the calling role.';
    END IF;
    -- the one tenant resolver (MT002 when there is none)
    SELECT * INTO t FROM tenant.tenants tt WHERE tt.id = tenant_internal._tenant_id(invoice.tenant);
    IF period_start <> date_trunc('month', period_start)::date THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'period_start must be the first day of a month';
    END IF;
    RETURN QUERY
    SELECT format('plan %s (%s)', p.name, to_char(period_start, 'YYYY-MM')), 1::bigint, p.price, p.price, p.currency
    FROM tenant.plans p WHERE p.name = t.plan;
    RETURN QUERY
    WITH lim AS (
        SELECT l.resource, l.limit_value, l.overage_price FROM tenant.plan_limits l
        WHERE l.plan = t.plan AND l.period = 'month'
          AND NOT EXISTS (SELECT 1 FROM tenant.tenant_limits o WHERE o.tenant_id = t.id AND o.resource = l.resource)
        UNION ALL
        SELECT o.resource, o.limit_value, o.overage_price FROM tenant.tenant_limits o
        WHERE o.tenant_id = t.id AND o.period = 'month'
    )
    SELECT format('overage %s: %s above %s', lim.resource, c.used - lim.limit_value, lim.limit_value),
           c.used - lim.limit_value, lim.overage_price,
           least(round((c.used - lim.limit_value) * lim.overage_price, 2), 999999999999.99),
           coalesce((SELECT p.currency FROM tenant.plans p WHERE p.name = t.plan), 'USD')
    FROM lim
    JOIN tenant.usage_counters c
      ON c.tenant_id = t.id AND c.resource = lim.resource AND c.key = '' AND c.window_start = period_start::timestamptz
    WHERE lim.overage_price IS NOT NULL AND lim.limit_value >= 0 AND c.used > lim.limit_value
    ORDER BY 1;
END
$$;

-- JWT keys as tenant_admin may see them: everything but the key material.
CREATE FUNCTION tenant.jwt_key_list()
RETURNS TABLE (kid text, alg text, issuer text, audience text, valid_from timestamptz,
               valid_until timestamptz, active boolean, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_has_role('tenant_admin', 'USAGE') THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to list JWT keys',
            HINT = 'Grant tenant_admin to the calling role.';
    END IF;
    RETURN QUERY
    SELECT k.kid, k.alg, k.issuer, k.audience, k.valid_from, k.valid_until, k.active, k.created_at
    FROM tenant.jwt_keys k ORDER BY k.created_at, k.kid;
END
$$;

-- Housekeeping for pg_cron: roll counters into daily history, drop old windows and history,
-- end expired trials. Returns what it did.
CREATE FUNCTION tenant.run_maintenance(retention interval DEFAULT '400 days')
RETURNS jsonb LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $$
DECLARE
    rolled bigint; dropped bigint; history bigint; moved jsonb;
    parts int := 0; past_due int := 0; grace interval; s timestamptz; pname text; r record;
BEGIN
    IF NOT (pg_has_role('tenant_admin', 'USAGE') OR pg_has_role('tenant_service', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to run maintenance';
    END IF;
    -- windows are dropped once older than min(retention, 62 days): a shorter retention would
    -- drop the windows limits are counted in
    IF retention IS NULL OR retention < interval '62 days' THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'retention must be at least 62 days';
    END IF;
    -- one maintenance run at a time (pg_cron may start two at once): two creating the same
    -- event partition, each holding a lock the other's DDL needs, would deadlock
    PERFORM pg_advisory_xact_lock(7596552542186169411);
    -- the extension's library defines its settings when it is loaded: load it before
    -- current_setting('multitenant.payment_grace') below
    PERFORM tenant.current_tenant();
    WITH todo AS (
        SELECT c.tenant_id, c.resource, c.key, c.window_start, c.window_end, c.used, c.rolled
        FROM tenant.usage_counters c WHERE c.used <> c.rolled
        FOR UPDATE
    ), moved AS (
        UPDATE tenant.usage_counters c SET rolled = todo.used
        FROM todo
        WHERE c.tenant_id = todo.tenant_id AND c.resource = todo.resource AND c.key = todo.key
          AND c.window_start = todo.window_start
        RETURNING todo.tenant_id, todo.resource,
                  least(todo.window_end - interval '1 microsecond', now())::date AS day,
                  todo.used - todo.rolled AS delta
    ), ins AS (
        INSERT INTO tenant.usage_daily AS d (tenant_id, resource, day, used)
        SELECT tenant_id, resource, day, least(sum(delta::numeric), 9223372036854775807)::bigint
        FROM moved GROUP BY 1, 2, 3
        ON CONFLICT (tenant_id, resource, day)
        DO UPDATE SET used = least(d.used::numeric + EXCLUDED.used, 9223372036854775807)::bigint
        RETURNING 1
    )
    SELECT count(*) INTO rolled FROM ins;
    DELETE FROM tenant.usage_counters c
    WHERE c.used = c.rolled AND c.window_end < now() - least(retention, interval '62 days');
    GET DIAGNOSTICS dropped = ROW_COUNT;
    DELETE FROM tenant.usage_daily d WHERE d.day < (now() - retention)::date;
    GET DIAGNOSTICS history = ROW_COUNT;
    DELETE FROM tenant.metric_daily d WHERE d.day < (now() - retention)::date;
    DELETE FROM tenant.usage_events_default e WHERE e.at < now() - retention;
    -- usage events: a partition for this month and the next (unless the default partition
    -- already holds rows of that month), months past the retention dropped
    FOR m IN 0..1 LOOP
        s := date_trunc('month', now()) + make_interval(months => m);
        pname := 'usage_events_' || to_char(s, 'YYYYMM');
        IF to_regclass('tenant.' || quote_ident(pname)) IS NULL
           AND NOT EXISTS (SELECT 1 FROM tenant.usage_events_default e
                           WHERE e.at >= s AND e.at < s + interval '1 month') THEN
            EXECUTE format('CREATE TABLE tenant.%I PARTITION OF tenant.usage_events FOR VALUES FROM (%L) TO (%L)',
                           pname, s, s + interval '1 month');
            parts := parts + 1;
        END IF;
    END LOOP;
    FOR r IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'tenant.usage_events'::regclass AND c.relname ~ '^usage_events_[0-9]{6}$'
               AND to_date(substr(c.relname, 14), 'YYYYMM') + interval '1 month' < now() - retention LOOP
        EXECUTE format('DROP TABLE tenant.%I', r.relname);
    END LOOP;
    -- subscriptions past due longer than multitenant.payment_grace: the tenant is suspended
    -- through the state machine (audited), and reactivated by a later successful payment
    grace := current_setting('multitenant.payment_grace')::interval;
    IF grace > interval '0' THEN
        FOR r IN SELECT sub.tenant_id, sub.past_due_since FROM tenant.subscriptions sub
                 JOIN tenant.tenants t ON t.id = sub.tenant_id
                 WHERE sub.status = 'past_due' AND sub.past_due_since + grace <= now()
                   AND t.status IN ('active', 'trial')
                 ORDER BY sub.tenant_id FOR UPDATE OF sub LOOP
            PERFORM tenant.set_status(r.tenant_id::text, 'suspended');
            UPDATE tenant.subscriptions SET suspended_by_billing = true, updated_at = now()
            WHERE tenant_id = r.tenant_id;
            PERFORM tenant_internal._event(r.tenant_id, 'tenant.suspended_for_payment',
                jsonb_build_object('past_due_since', r.past_due_since, 'grace', grace::text));
            past_due := past_due + 1;
        END LOOP;
    END IF;
    -- the lifecycle, through the state machine set_status uses (each move audited with its
    -- reason): expired trials suspended, suspended past the grace period deleted, deleted
    -- past their retention purged
    moved := tenant_internal._lifecycle();
    RETURN jsonb_build_object('rolled_up', rolled, 'windows_dropped', dropped,
                              'history_dropped', history, 'event_partitions_created', parts,
                              'suspended_for_payment', past_due) || moved;
END
$$;

-- Usage events of any metric, for the current tenant (issue 15): the event, and its daily
-- rollup (tenant.metric_daily), in the caller's transaction.
CREATE FUNCTION tenant.track(metric text, value numeric DEFAULT 1, user_id text DEFAULT NULL,
                             properties jsonb DEFAULT '{}'::jsonb)
RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t uuid := tenant.require_tenant();
    id bigint;
BEGIN
    IF metric IS NULL OR metric !~ '^[a-z0-9_.-]{1,100}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = format('invalid metric name %s', coalesce(quote_literal(metric), 'NULL')),
            HINT = 'Use 1-100 characters of a-z, 0-9, ''_'', ''.'' and ''-''.';
    END IF;
    IF value IS NULL OR value = 'NaN'::numeric OR value < 0 OR value > 1e15 THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = format('invalid value %s of metric %s: a number 0-1e15', coalesce(value::text, 'NULL'), metric);
    END IF;
    IF properties IS NULL OR jsonb_typeof(properties) <> 'object' OR octet_length(properties::text) > 8192 THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'properties must be a JSON object of at most 8 KiB';
    END IF;
    IF user_id IS NOT NULL AND (length(user_id) = 0 OR length(user_id) > 256) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'user_id must be 1-256 characters';
    END IF;
    -- a context that names a user records events for that user only
    IF user_id IS NOT NULL AND tenant.current_user_id() IS NOT NULL AND user_id <> tenant.current_user_id() THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to record events for another user';
    END IF;
    INSERT INTO tenant.usage_events (tenant_id, metric, value, user_id, properties)
    VALUES (t, metric, value, coalesce(user_id, tenant.current_user_id()), properties)
    RETURNING usage_events.id INTO id;
    INSERT INTO tenant.metric_daily AS d (tenant_id, metric, day, total, events)
    VALUES (t, metric, (now() AT TIME ZONE 'UTC')::date, value, 1)
    ON CONFLICT (tenant_id, metric, day) DO UPDATE SET total = d.total + EXCLUDED.total, events = d.events + 1;
    RETURN id;
END
$$;

-- The plans loaded, with their limits.
CREATE FUNCTION tenant.plans()
RETURNS TABLE (name text, display_name text, price numeric, currency text, billing_cycle text,
               features text[], restrictions text[], limits jsonb)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.name, coalesce(p.display_name, p.name), p.price, p.currency, p.billing_cycle,
           p.features, p.restrictions,
           coalesce((SELECT jsonb_object_agg(l.resource, jsonb_build_object('limit', l.limit_value, 'period', l.period,
                                                                              'overage_price', l.overage_price))
                     FROM tenant.plan_limits l WHERE l.plan = p.name), '{}'::jsonb)
    FROM tenant.plans p ORDER BY p.price, p.name
$$;

-- Billing records (issue 15). For tenant_service and tenant_admin; payment providers stay
-- outside the database and call record_payment from their webhooks.
CREATE FUNCTION tenant.subscribe(tenant text, plan text DEFAULT NULL, status text DEFAULT 'active',
                                 external_ref text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tenant.tenants;
BEGIN
    IF NOT (pg_has_role('tenant_service', 'USAGE') OR pg_has_role('tenant_admin', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to manage subscriptions';
    END IF;
    SELECT * INTO t FROM tenant.tenants tt WHERE tt.id = tenant_internal._tenant_id(subscribe.tenant);
    IF status IS NULL OR status NOT IN ('trialing', 'active') THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = format('a subscription starts trialing or active, not %s', coalesce(status, 'NULL'));
    END IF;
    IF plan IS NOT NULL AND plan <> t.plan THEN
        PERFORM tenant.set_plan(t.id::text, plan);
    END IF;
    INSERT INTO tenant.subscriptions AS s (tenant_id, plan, status, current_period_start, current_period_end, external_ref)
    VALUES (t.id, coalesce(plan, t.plan), status, date_trunc('month', now())::date,
            (date_trunc('month', now()) + interval '1 month')::date, external_ref)
    ON CONFLICT (tenant_id) DO UPDATE SET plan = EXCLUDED.plan,
        -- a past due subscription stays past due until record_payment says it is paid
        status = CASE WHEN s.status = 'past_due' THEN 'past_due' ELSE EXCLUDED.status END,
        external_ref = coalesce(EXCLUDED.external_ref, s.external_ref), canceled_at = NULL,
        updated_at = now();
    PERFORM tenant_internal._event(t.id, 'subscription.started',
        jsonb_build_object('plan', coalesce(plan, t.plan), 'status', status));
END
$$;

CREATE FUNCTION tenant.cancel_subscription(tenant text)
RETURNS boolean LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id uuid;
BEGIN
    IF NOT (pg_has_role('tenant_service', 'USAGE') OR pg_has_role('tenant_admin', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to manage subscriptions';
    END IF;
    id := tenant_internal._tenant_id(cancel_subscription.tenant);
    UPDATE tenant.subscriptions s SET status = 'canceled', canceled_at = now(), updated_at = now()
    WHERE s.tenant_id = id AND s.status <> 'canceled';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM tenant_internal._event(id, 'subscription.canceled', '{}'::jsonb);
    RETURN true;
END
$$;

CREATE FUNCTION tenant.add_credit(tenant text, amount numeric, reason text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tid uuid; cid bigint;
BEGIN
    IF NOT (pg_has_role('tenant_service', 'USAGE') OR pg_has_role('tenant_admin', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to grant credits';
    END IF;
    tid := tenant_internal._tenant_id(add_credit.tenant);
    IF amount IS NULL OR amount = 'NaN'::numeric OR amount <= 0 OR amount > 1e9 OR round(amount, 2) <> amount THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = format('invalid credit amount %s: 0.01 to 1e9, in cents', coalesce(amount::text, 'NULL'));
    END IF;
    INSERT INTO tenant.credits (tenant_id, amount, reason) VALUES (tid, amount, reason) RETURNING id INTO cid;
    PERFORM tenant_internal._event(tid, 'credit.granted', jsonb_build_object('id', cid, 'amount', amount, 'reason', reason));
    RETURN cid;
END
$$;

-- One invoice per subscribed tenant and month, with numbered lines (tenant.invoice's lines:
-- the plan, then each overage) and the tenant's unapplied credits (whole credits, oldest
-- first, while they fit). Run twice or concurrently, each invoice is created once.
CREATE FUNCTION tenant.generate_invoices(period_start date DEFAULT (date_trunc('month', now()) - interval '1 month')::date)
RETURNS integer LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
DECLARE
    s record; l record; c record; inv uuid; n integer := 0; line integer;
    sub numeric; applied numeric; cur text;
BEGIN
    IF NOT (pg_has_role('tenant_service', 'USAGE') OR pg_has_role('tenant_admin', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to generate invoices';
    END IF;
    IF period_start IS NULL OR period_start <> date_trunc('month', period_start)::date THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'period_start must be the first day of a month';
    END IF;
    -- only a finished month: its invoice is stored once, so usage after it would go unbilled
    IF period_start + interval '1 month' > now() THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'the month is not over yet',
            HINT = 'Invoice a month once it has ended (the default is last month).';
    END IF;
    FOR s IN SELECT sub.tenant_id, t.plan FROM tenant.subscriptions sub JOIN tenant.tenants t ON t.id = sub.tenant_id
             WHERE sub.status IN ('active', 'past_due') AND t.status <> 'purged'
               AND sub.current_period_start < (period_start + interval '1 month')::date
             ORDER BY sub.tenant_id LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM tenant.invoices i WHERE i.tenant_id = s.tenant_id AND i.period_start = generate_invoices.period_start);
        INSERT INTO tenant.invoices (tenant_id, number, period_start, period_end, currency, subtotal, total)
        VALUES (s.tenant_id,
                format('INV-%s-%s', to_char(period_start, 'YYYYMM'), lpad(nextval('tenant.invoice_number_seq')::text, 6, '0')),
                period_start, (period_start + interval '1 month')::date, 'USD', 0, 0)
        ON CONFLICT (tenant_id, period_start) DO NOTHING
        RETURNING id INTO inv;
        CONTINUE WHEN inv IS NULL;  -- a concurrent run made it
        line := 0; sub := 0; cur := NULL;
        FOR l IN SELECT * FROM tenant.invoice(s.tenant_id::text, period_start) LOOP
            line := line + 1;
            INSERT INTO tenant.invoice_lines (invoice_id, line_no, description, quantity, unit_price, amount)
            VALUES (inv, line, l.line, l.quantity, l.unit_price, l.amount);
            sub := sub + l.amount;
            cur := coalesce(cur, l.currency);
        END LOOP;
        applied := 0;
        FOR c IN SELECT cr.id, cr.amount FROM tenant.credits cr
                 WHERE cr.tenant_id = s.tenant_id AND cr.invoice_id IS NULL ORDER BY cr.id FOR UPDATE LOOP
            EXIT WHEN applied + c.amount > sub;
            UPDATE tenant.credits SET invoice_id = inv WHERE id = c.id;
            applied := applied + c.amount;
        END LOOP;
        UPDATE tenant.invoices SET subtotal = sub, credits = applied, total = sub - applied,
               currency = coalesce(cur, 'USD'),
               status = CASE WHEN sub - applied = 0 THEN 'paid' ELSE 'open' END,
               paid_at = CASE WHEN sub - applied = 0 THEN now() END
        WHERE id = inv;
        PERFORM tenant_internal._event(s.tenant_id, 'invoice.issued',
            jsonb_build_object('invoice', inv, 'period', period_start, 'total', sub - applied));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- What a payment provider's webhook reports: an invoice paid (the subscription is active
-- again, a tenant the billing suspended is reactivated) or a payment failed (the
-- subscription is past due; after multitenant.payment_grace run_maintenance suspends the
-- tenant). Returns the subscription's status.
CREATE FUNCTION tenant.record_payment(invoice uuid, succeeded boolean, reference text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    i tenant.invoices; st text; t tenant.tenants; sub tenant.subscriptions;
BEGIN
    IF NOT (pg_has_role('tenant_service', 'USAGE') OR pg_has_role('tenant_admin', 'USAGE')) THEN
        RAISE EXCEPTION USING ERRCODE = 'MT020', MESSAGE = 'permission denied to record payments';
    END IF;
    IF succeeded IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = 'succeeded must be true or false';
    END IF;
    SELECT * INTO i FROM tenant.invoices ii WHERE ii.id = record_payment.invoice FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'MT030', MESSAGE = format('invoice %s does not exist', coalesce(invoice::text, 'NULL'));
    END IF;
    IF i.status = 'void' THEN
        RAISE EXCEPTION USING ERRCODE = 'MT040', MESSAGE = 'the invoice is void';
    END IF;
    SELECT * INTO sub FROM tenant.subscriptions s WHERE s.tenant_id = i.tenant_id FOR UPDATE;
    IF succeeded THEN
        IF i.status <> 'paid' THEN
            UPDATE tenant.invoices SET status = 'paid', paid_at = now(), payment_ref = coalesce(reference, payment_ref)
            WHERE id = i.id;
        END IF;
        -- active again once no other invoice of the tenant is still failed
        IF sub.tenant_id IS NOT NULL AND sub.status = 'past_due' AND NOT EXISTS (
               SELECT 1 FROM tenant.invoices o WHERE o.tenant_id = i.tenant_id AND o.status = 'failed' AND o.id <> i.id) THEN
            UPDATE tenant.subscriptions SET status = 'active', past_due_since = NULL, updated_at = now()
            WHERE tenant_id = i.tenant_id;
            SELECT * INTO t FROM tenant.tenants tt WHERE tt.id = i.tenant_id;
            IF sub.suspended_by_billing AND t.status = 'suspended' THEN
                PERFORM tenant.set_status(i.tenant_id::text, 'active');
            END IF;
            UPDATE tenant.subscriptions SET suspended_by_billing = false WHERE tenant_id = i.tenant_id;
        END IF;
    ELSE
        IF i.status = 'paid' THEN
            RAISE EXCEPTION USING ERRCODE = 'MT040', MESSAGE = 'the invoice is already paid';
        END IF;
        UPDATE tenant.invoices SET status = 'failed', payment_ref = coalesce(reference, payment_ref) WHERE id = i.id;
        UPDATE tenant.subscriptions SET status = 'past_due', past_due_since = coalesce(past_due_since, now()),
               updated_at = now()
        WHERE tenant_id = i.tenant_id AND status IN ('active', 'past_due');
    END IF;
    PERFORM tenant_internal._event(i.tenant_id, CASE WHEN succeeded THEN 'payment.succeeded' ELSE 'payment.failed' END,
        jsonb_build_object('invoice', i.id, 'number', i.number, 'reference', reference));
    SELECT s.status INTO st FROM tenant.subscriptions s WHERE s.tenant_id = i.tenant_id;
    RETURN st;
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON tenant.audit_log
    FOR EACH ROW EXECUTE FUNCTION tenant_internal._audit_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON tenant.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._audit_guard();
CREATE TRIGGER audit_heads_guard BEFORE UPDATE OR DELETE ON tenant.audit_heads
    FOR EACH ROW EXECUTE FUNCTION tenant_internal._audit_guard();
CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON tenant.audit_heads
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._audit_guard();

-- Partitions and inheritance children of isolated tables, created or attached later, are
-- isolated in the same statement (tenant_internal._on_ddl runs as the role that ran the DDL).
CREATE EVENT TRIGGER multitenant_isolate_children ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION tenant_internal._on_ddl();

-- Cross-backend cache invalidation when tenants or the secret change.
CREATE FUNCTION tenant_internal._tables_changed() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$ BEGIN PERFORM tenant_internal._invalidate(TG_RELID); RETURN NULL; END $$;

CREATE TRIGGER tenants_changed AFTER UPDATE OR DELETE OR TRUNCATE ON tenant.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._tables_changed();
DO $inval$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['secret', 'jwt_keys', 'members', 'roles', 'permissions', 'plans', 'plan_limits', 'tenant_limits', 'tenant_features'] LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenant.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._tables_changed()', t || '_changed', t);
    END LOOP;
END
$inval$;


-- Application roles see only their own tenant's row; the backend and admins see all.
ALTER TABLE tenant.tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenants_own ON tenant.tenants FOR SELECT TO PUBLIC
    USING (id = (SELECT tenant.current_tenant()));
CREATE POLICY tenants_service ON tenant.tenants FOR SELECT TO tenant_service, tenant_admin
    USING (true);




-- Tenant-scoped extension tables: application roles read their own tenant's rows, the
-- backend and admins read all. Writes go through the extension's functions only.
DO $rls$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['members', 'usage_counters', 'usage_daily', 'tenant_limits', 'tenant_features', 'roles', 'permissions', 'organizations',
                             -- where a request lands (issue 14)
                             'domains', 'branding', 'custom_fields', 'onboarding_progress', 'storage_objects',
                             -- alerts, events, rollups and billing records (issue 15)
                             'usage_alerts', 'usage_events', 'metric_daily', 'subscriptions', 'invoices', 'credits'] LOOP
        EXECUTE format('ALTER TABLE tenant.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON tenant.%I FOR SELECT TO PUBLIC '
                       'USING (tenant_id = (SELECT tenant.current_tenant()))', t || '_own', t);
        EXECUTE format('CREATE POLICY %I ON tenant.%I FOR SELECT TO tenant_service, tenant_admin '
                       'USING (true)', t || '_service', t);
    END LOOP;
END
$rls$;

-- invoice lines follow their invoice's visibility
ALTER TABLE tenant.invoice_lines ENABLE ROW LEVEL SECURITY;
CREATE POLICY invoice_lines_own ON tenant.invoice_lines FOR SELECT TO PUBLIC
    USING (EXISTS (SELECT 1 FROM tenant.invoices i WHERE i.id = invoice_id));

-- The audit log: an entry about a table is readable by a role of the entry's tenant only if
-- that role may read the table itself (the entry holds the row's data). The table is found by
-- its name, which survives pg_dump/restore (oids do not); a dropped or renamed table's entries
-- are hidden from application roles. Management events and everything of the tenant are for
-- tenant_auditor members in the tenant's context; tenant_service and tenant_admin read all.
ALTER TABLE tenant.audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_log_own ON tenant.audit_log FOR SELECT TO PUBLIC
    USING (tenant_id = (SELECT tenant.current_tenant())
           AND table_name IS NOT NULL
           AND coalesce(pg_catalog.has_table_privilege(pg_catalog.to_regclass(table_name), 'SELECT'), false));
CREATE POLICY audit_log_auditor ON tenant.audit_log FOR SELECT TO tenant_auditor
    USING (tenant_id = (SELECT tenant.current_tenant()));
CREATE POLICY audit_log_service ON tenant.audit_log FOR SELECT TO tenant_service, tenant_admin
    USING (true);

-- Per-tenant statistics for operators (tenant_admin, tenant_service): rows per registered
-- table estimated from the planner's statistics (no scan), audit volume from the chain
-- heads, last activity from the audit log's (tenant_id, at) index, current usage.
CREATE FUNCTION tenant.tenant_stats()
RETURNS TABLE (tenant_id uuid, slug text, status text, plan text, estimated_rows bigint,
               audit_entries bigint, last_activity timestamptz, usage jsonb)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH reg AS (
        SELECT relid::oid AS oid, tenant_column::text AS col FROM tenant.isolated_tables
        UNION SELECT relid::oid, tenant_column::text FROM tenant.row_limits
    ), st AS (
        SELECT r.oid, greatest(c.reltuples, 0) AS reltuples, s.null_frac, s.n_distinct,
               s.most_common_vals::text::text[] AS mcv, s.most_common_freqs AS mcf
        FROM reg r JOIN pg_class c ON c.oid = r.oid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = r.col
    )
    SELECT t.id, t.slug, t.status, t.plan,
           coalesce((SELECT sum(CASE
                        WHEN st.mcv IS NOT NULL AND t.id::text = ANY (st.mcv)
                            THEN st.mcf[array_position(st.mcv, t.id::text)] * st.reltuples
                        WHEN st.n_distinct IS NULL THEN 0
                        ELSE greatest(1 - st.null_frac - coalesce((SELECT sum(f) FROM unnest(st.mcf) f), 0), 0)
                             / greatest((CASE WHEN st.n_distinct < 0 THEN -st.n_distinct * st.reltuples ELSE st.n_distinct END)
                                        - coalesce(cardinality(st.mcv), 0), 1)
                             * st.reltuples END) FROM st), 0)::bigint,
           coalesce((SELECT sum(h.seq - h.base_seq) FROM tenant.audit_heads h
                     WHERE h.chain LIKE t.id::text || '/%'), 0)::bigint,
           (SELECT max(l.at) FROM tenant.audit_log l WHERE l.tenant_id = t.id),
           coalesce((SELECT jsonb_object_agg(u.resource, u.used) FROM tenant.usage_counters u
                     WHERE u.tenant_id = t.id AND u.key = '' AND now() >= u.window_start AND now() < u.window_end), '{}')
    FROM tenant.tenants t
    ORDER BY t.slug
$$;


-- Per backend: the session (pg_stat_activity) and the tenant and user it entered last
-- (with multitenant.track_activity = on). SECURITY DEFINER: pg_stat_activity hides other
-- roles' sessions from roles without pg_read_all_stats. For tenant_admin and tenant_service.
CREATE FUNCTION tenant.activity()
RETURNS TABLE (pid integer, db_user name, application_name text, client_addr inet,
               backend_start timestamptz, state text, xact_start timestamptz, query_start timestamptz,
               wait_event_type text, wait_event text, tenant_id uuid, tenant_slug text, user_id text,
               entered_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.pid, a.usename, a.application_name, a.client_addr, a.backend_start,
           a.state, a.xact_start, a.query_start, a.wait_event_type, a.wait_event,
           c.tenant_id, t.slug, c.user_id, c.since
    FROM pg_stat_activity a
    LEFT JOIN tenant.backend_contexts c ON c.pid = a.pid AND c.backend_start = a.backend_start
    LEFT JOIN tenant.tenants t ON t.id = c.tenant_id
    WHERE a.backend_type = 'client backend' AND a.datname = current_database()
    ORDER BY a.pid
$$;

-- Citus (docs/citus.md). The isolation policies of a distributed table run on the workers'
-- shards, where they verify the context: the coordinator gives each worker its context secret
-- (and the secret's id, which every token carries) and its tenant registry (the status decides
-- whether a verified context may read or write). Statement triggers keep the workers'
-- registry up to date; tenant.citus_sync() pushes everything (after CREATE EXTENSION, after adding a worker).
CREATE FUNCTION tenant_internal._citus_role() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN
        RETURN 'none';
    END IF;
    IF pg_catalog.citus_is_coordinator() THEN
        RETURN 'coordinator';
    END IF;
    RETURN 'worker';
END $$;
COMMENT ON FUNCTION tenant_internal._citus_role() IS
    'Internal: none (no Citus), coordinator or worker.';

CREATE FUNCTION tenant_internal._citus_has_workers() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- nested: pg_dist_node exists only with Citus
    IF tenant_internal._citus_role() = 'coordinator' THEN
        RETURN EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node WHERE groupid <> 0);
    END IF;
    RETURN false;
END $$;
COMMENT ON FUNCTION tenant_internal._citus_has_workers() IS
    'Internal: this is a Citus coordinator with workers registered.';

-- The audited tables (all, or those of relids), as [{name, ignore_columns, changed_only}]:
-- a worker registers the shells of the distributed ones, whose shards carry the audit trigger.
CREATE FUNCTION tenant_internal._citus_audited(relids oid[]) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'name', pg_catalog.format('%I.%I', n.nspname, c.relname),
               'ignore_columns', a.ignore_columns, 'changed_only', a.changed_only)), '[]'::jsonb)
    FROM tenant.audited_tables a
    JOIN pg_catalog.pg_class c ON c.oid = a.relid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE relids IS NULL OR a.relid::oid = ANY (relids)
$$;
COMMENT ON FUNCTION tenant_internal._citus_audited(oid[]) IS
    'Internal (Citus): audited tables as a worker registers them.';

-- The row-limited tables (all, or those of relids), as [{name, resource, tenant_column}]: a
-- worker registers the distributed ones, whose shards count their rows (docs/citus.md).
CREATE FUNCTION tenant_internal._citus_row_limits(relids oid[]) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'name', pg_catalog.format('%I.%I', n.nspname, c.relname),
               'resource', r.resource, 'tenant_column', r.tenant_column)), '[]'::jsonb)
    FROM tenant.row_limits r
    JOIN pg_catalog.pg_class c ON c.oid = r.relid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE relids IS NULL OR r.relid::oid = ANY (relids)
$$;
COMMENT ON FUNCTION tenant_internal._citus_row_limits(oid[]) IS
    'Internal (Citus): row-limited tables as a worker registers them.';

-- What a worker needs, as JSON: the secret (when with_secret) and the tenants (all when ids is
-- NULL; else those, or with deleted their removal).
CREATE FUNCTION tenant_internal._citus_payload(ids uuid[], with_secret boolean, deleted boolean)
RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'secret', CASE WHEN with_secret THEN
            (SELECT pg_catalog.jsonb_build_object('key', pg_catalog.encode(s.key, 'hex'),
                                                   'key_id', s.key_id, 'created_at', s.created_at)
             FROM tenant.secret s) END,
        'full', ids IS NULL,
        'deleted', CASE WHEN deleted THEN pg_catalog.to_jsonb(ids) ELSE '[]'::jsonb END,
        'tenants', CASE WHEN deleted THEN '[]'::jsonb ELSE
            (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(t)), '[]'::jsonb)
             FROM tenant.tenants t WHERE ids IS NULL OR t.id = ANY (ids)) END,
        'audited', CASE WHEN ids IS NULL THEN tenant_internal._citus_audited(NULL) END,
        'row_limits', CASE WHEN ids IS NULL THEN tenant_internal._citus_row_limits(NULL) END
    )::text
$$;
COMMENT ON FUNCTION tenant_internal._citus_payload(uuid[], boolean, boolean) IS
    'Internal (Citus): the secret and tenants a worker needs, as JSON text.';

-- Send a payload to every worker: each applies it in a transaction of its own (Citus'
-- run_command_on_workers), so a worker that cannot be reached fails the caller's statement.
CREATE FUNCTION tenant_internal._citus_push(payload text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN SELECT * FROM pg_catalog.run_command_on_workers(
                 pg_catalog.format('SELECT tenant_internal._citus_receive(%L)', payload)) LOOP
        IF NOT r.success THEN
            RAISE EXCEPTION 'multitenant: the Citus worker %:% was not updated: %', r.nodename, r.nodeport, r.result
                USING ERRCODE = '08006',
                      HINT = 'Bring the worker back, then run SELECT tenant.citus_sync(); as a superuser on the coordinator.';
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
COMMENT ON FUNCTION tenant_internal._citus_push(text) IS
    'Internal (Citus): apply a payload on every worker; fails when a worker is not updated.';

-- On a worker: take the coordinator's secret and tenants. Run by the superuser that
-- run_command_on_workers connects as; revoked from PUBLIC like every internal function.
CREATE FUNCTION tenant_internal._citus_receive(payload text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p jsonb := payload::jsonb;
BEGIN
    IF tenant_internal._citus_role() <> 'worker' THEN
        RAISE EXCEPTION 'multitenant: only a Citus worker takes the coordinator''s registry'
            USING ERRCODE = '0A000';
    END IF;
    IF pg_catalog.jsonb_typeof(p->'secret') = 'object' THEN
        UPDATE tenant.secret
        SET key = pg_catalog.decode(p->'secret'->>'key', 'hex'),
            key_id = (p->'secret'->>'key_id')::uuid,
            created_at = (p->'secret'->>'created_at')::timestamptz;
    END IF;
    -- audited tables: the shells of the distributed ones (whose shards fire the trigger)
    IF pg_catalog.jsonb_typeof(p->'audited') = 'array' THEN
        IF (p->>'full')::boolean THEN
            DELETE FROM tenant.audited_tables;
        END IF;
        INSERT INTO tenant.audited_tables (relid, ignore_columns, changed_only)
        SELECT r.relid, ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e->'ignore_columns')),
               (e->>'changed_only')::boolean
        FROM pg_catalog.jsonb_array_elements(p->'audited') e,
             LATERAL (SELECT pg_catalog.to_regclass(e->>'name') AS relid) r
        WHERE r.relid IS NOT NULL
          AND EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = r.relid)
        ON CONFLICT (relid) DO UPDATE SET
            ignore_columns = EXCLUDED.ignore_columns, changed_only = EXCLUDED.changed_only;
    END IF;
    IF pg_catalog.jsonb_typeof(p->'unaudited') = 'array' THEN
        DELETE FROM tenant.audited_tables
        WHERE relid::oid IN (SELECT pg_catalog.to_regclass(e)::oid
                             FROM pg_catalog.jsonb_array_elements_text(p->'unaudited') e);
    END IF;
    -- row-limited tables: the shells of the distributed ones (whose shards count the rows)
    IF pg_catalog.jsonb_typeof(p->'row_limits') = 'array' THEN
        IF (p->>'full')::boolean THEN
            DELETE FROM tenant.row_limits;
        END IF;
        INSERT INTO tenant.row_limits (relid, resource, tenant_column)
        SELECT r.relid, e->>'resource', e->>'tenant_column'
        FROM pg_catalog.jsonb_array_elements(p->'row_limits') e,
             LATERAL (SELECT pg_catalog.to_regclass(e->>'name') AS relid) r
        WHERE r.relid IS NOT NULL
          AND EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = r.relid)
        ON CONFLICT (relid) DO UPDATE SET
            resource = EXCLUDED.resource, tenant_column = EXCLUDED.tenant_column;
    END IF;
    IF pg_catalog.jsonb_typeof(p->'unlimited') = 'array' THEN
        DELETE FROM tenant.row_limits
        WHERE relid::oid IN (SELECT pg_catalog.to_regclass(e)::oid
                             FROM pg_catalog.jsonb_array_elements_text(p->'unlimited') e);
    END IF;
    IF pg_catalog.jsonb_typeof(p->'tenants') <> 'array' THEN
        RETURN;
    END IF;
    -- a tenant purged on the coordinator: its chains here are erased too
    PERFORM tenant_internal._audit_erase_node((e->>'id')::uuid)
    FROM pg_catalog.jsonb_array_elements(p->'tenants') e
    WHERE e->>'status' = 'purged'
      AND NOT EXISTS (SELECT 1 FROM tenant.tenants t
                      WHERE t.id = (e->>'id')::uuid AND t.status = 'purged');
    DELETE FROM tenant.tenants t
    WHERE t.id IN (SELECT e::uuid FROM pg_catalog.jsonb_array_elements_text(p->'deleted') e)
       OR ((p->>'full')::boolean
           AND t.id NOT IN (SELECT (e->>'id')::uuid FROM pg_catalog.jsonb_array_elements(p->'tenants') e))
       -- a slug (or schema) now held by another tenant: the old holder's row goes first
       OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(p->'tenants') e
                  WHERE (e->>'id')::uuid <> t.id
                    AND (e->>'slug' = t.slug OR e->>'schema_name' = t.schema_name::text));
    INSERT INTO tenant.tenants
    SELECT * FROM pg_catalog.jsonb_populate_recordset(NULL::tenant.tenants, p->'tenants')
    ON CONFLICT (id) DO UPDATE SET
        slug = EXCLUDED.slug, name = EXCLUDED.name, plan = EXCLUDED.plan, status = EXCLUDED.status,
        region = EXCLUDED.region, settings = EXCLUDED.settings, trial_ends_at = EXCLUDED.trial_ends_at,
        created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
        suspended_at = EXCLUDED.suspended_at, deleted_at = EXCLUDED.deleted_at,
        purge_after = EXCLUDED.purge_after, period_end = EXCLUDED.period_end,
        placement = EXCLUDED.placement, schema_name = EXCLUDED.schema_name;
END $$;
COMMENT ON FUNCTION tenant_internal._citus_receive(text) IS
    'Internal (Citus, on a worker): take the coordinator''s secret and tenants.';

-- Tenants created, changed or removed on the coordinator: the same on every worker, one
-- push per statement (transition tables: one trigger per event).
CREATE FUNCTION tenant_internal._citus_tenants_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids uuid[];
BEGIN
    IF NOT tenant_internal._citus_has_workers() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        SELECT pg_catalog.array_agg(id) INTO ids FROM gone;
    ELSE
        SELECT pg_catalog.array_agg(id) INTO ids FROM changed;
    END IF;
    IF ids IS NOT NULL THEN
        PERFORM tenant_internal._citus_push(tenant_internal._citus_payload(ids, false, TG_OP = 'DELETE'));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_to_citus_workers_insert AFTER INSERT ON tenant.tenants
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tenants_changed();
CREATE TRIGGER tenants_to_citus_workers_update AFTER UPDATE ON tenant.tenants
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tenants_changed();
CREATE TRIGGER tenants_to_citus_workers_delete AFTER DELETE ON tenant.tenants
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tenants_changed();
COMMENT ON FUNCTION tenant_internal._citus_tenants_changed() IS
    'Internal (Citus): tenants changed on the coordinator are changed on every worker.';

-- Roles, permissions or memberships changed or removed on the coordinator: contexts minted
-- before then carry permissions (claim g) the workers must no longer trust. The tenant's
-- updated_at moves, reaches the workers with the tenant (above), and a worker reads a
-- context's carried permissions only when it was minted since (docs/citus.md).
CREATE FUNCTION tenant_internal._citus_rbac_narrowed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT tenant_internal._citus_has_workers() THEN
        RETURN NULL;
    END IF;
    UPDATE tenant.tenants SET updated_at = pg_catalog.clock_timestamp()
    WHERE id IN (SELECT DISTINCT tenant_id FROM gone);
    RETURN NULL;
END $$;
DO $narrowed$
DECLARE t text; op text;
BEGIN
    FOREACH t IN ARRAY ARRAY['members', 'roles', 'permissions'] LOOP
        FOREACH op IN ARRAY ARRAY['update', 'delete'] LOOP
            EXECUTE pg_catalog.format(
                'CREATE TRIGGER %I AFTER %s ON tenant.%I REFERENCING OLD TABLE AS gone '
                'FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_rbac_narrowed()',
                t || '_narrowed_' || op, pg_catalog.upper(op), t);
        END LOOP;
    END LOOP;
END
$narrowed$;
COMMENT ON FUNCTION tenant_internal._citus_rbac_narrowed() IS
    'Internal (Citus): a tenant whose roles, permissions or memberships changed is pushed to the workers with a new updated_at.';

-- Tables audited or row-limited on the coordinator (or no longer): registered the same on
-- every worker, whose shards fire the triggers.
CREATE FUNCTION tenant_internal._citus_tables_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    payload jsonb;
    audited boolean := TG_TABLE_NAME = 'audited_tables';
BEGIN
    IF NOT tenant_internal._citus_has_workers() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        -- a table dropped meanwhile has no name left (its shell went with it on the workers)
        SELECT pg_catalog.jsonb_build_object(CASE WHEN audited THEN 'unaudited' ELSE 'unlimited' END,
                   pg_catalog.jsonb_agg(pg_catalog.format('%I.%I', n.nspname, c.relname)))
        INTO payload
        FROM gone g JOIN pg_catalog.pg_class c ON c.oid = g.relid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        HAVING pg_catalog.count(*) > 0;
    ELSIF audited THEN
        SELECT pg_catalog.jsonb_build_object('audited',
                   tenant_internal._citus_audited(pg_catalog.array_agg(relid::oid)))
        INTO payload FROM changed
        HAVING pg_catalog.count(*) > 0;
    ELSE
        SELECT pg_catalog.jsonb_build_object('row_limits',
                   tenant_internal._citus_row_limits(pg_catalog.array_agg(relid::oid)))
        INTO payload FROM changed
        HAVING pg_catalog.count(*) > 0;
    END IF;
    IF payload IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM tenant_internal._citus_push(payload::text);
    RETURN NULL;
END $$;
CREATE TRIGGER audited_to_citus_workers_insert AFTER INSERT ON tenant.audited_tables
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tables_changed();
CREATE TRIGGER audited_to_citus_workers_update AFTER UPDATE ON tenant.audited_tables
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tables_changed();
CREATE TRIGGER audited_to_citus_workers_delete AFTER DELETE ON tenant.audited_tables
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tables_changed();
CREATE TRIGGER row_limits_to_citus_workers_insert AFTER INSERT ON tenant.row_limits
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tables_changed();
CREATE TRIGGER row_limits_to_citus_workers_update AFTER UPDATE ON tenant.row_limits
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tables_changed();
CREATE TRIGGER row_limits_to_citus_workers_delete AFTER DELETE ON tenant.row_limits
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION tenant_internal._citus_tables_changed();
COMMENT ON FUNCTION tenant_internal._citus_tables_changed() IS
    'Internal (Citus): tables audited or row-limited on the coordinator are registered on every worker.';

-- The whole registry and the secret to every worker. For the superuser, on the coordinator.
CREATE FUNCTION tenant.citus_sync() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF tenant_internal._citus_role() <> 'coordinator' THEN
        RAISE EXCEPTION 'multitenant: tenant.citus_sync() runs on the coordinator of a Citus cluster'
            USING ERRCODE = '0A000';
    END IF;
    RETURN tenant_internal._citus_push(tenant_internal._citus_payload(NULL, true, false));
END $$;
COMMENT ON FUNCTION tenant.citus_sync() IS
    'Citus: give every worker the coordinator''s context secret, tenant registry, audited and row-limited tables; returns the number of workers. Superuser only.';

-- A new context secret (and id): every context minted before stops verifying, on every node.
CREATE FUNCTION tenant.rotate_context_secret() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE tenant.secret
    SET key = pg_catalog.decode(replace(pg_catalog.gen_random_uuid()::text, '-', '')
                                || replace(pg_catalog.gen_random_uuid()::text, '-', ''), 'hex'),
        key_id = pg_catalog.gen_random_uuid(),
        created_at = pg_catalog.now();
    IF tenant_internal._citus_has_workers() THEN
        PERFORM tenant_internal._citus_push(tenant_internal._citus_payload(NULL, true, false));
    END IF;
END $$;
COMMENT ON FUNCTION tenant.rotate_context_secret() IS
    'Replace the key that signs context tokens (on every Citus node): every context minted before stops verifying. Superuser only.';

-- Privileges: least by default.
REVOKE ALL ON SCHEMA tenant FROM PUBLIC;
GRANT USAGE ON SCHEMA tenant TO PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA tenant FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tenant FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tenant_internal FROM PUBLIC;

GRANT SELECT ON tenant.tenants TO PUBLIC;
GRANT SELECT ON tenant.isolated_tables TO PUBLIC;
GRANT SELECT ON tenant.members TO PUBLIC;
GRANT SELECT ON tenant.plans, tenant.plan_limits, tenant.row_limits, tenant.role_templates, tenant.export_exclusions TO PUBLIC;
GRANT SELECT ON tenant.audit_log, tenant.audited_tables TO PUBLIC;
GRANT SELECT ON tenant.roles, tenant.permissions, tenant.organizations TO PUBLIC;
GRANT SELECT ON tenant.usage_counters, tenant.usage_daily, tenant.tenant_limits, tenant.tenant_features TO PUBLIC;
GRANT SELECT ON tenant.domains, tenant.branding, tenant.custom_fields, tenant.onboarding_steps, tenant.onboarding_progress, tenant.storage_objects TO PUBLIC;
GRANT SELECT ON tenant.outbox, tenant.schema_migrations, tenant.custom_field_columns TO tenant_service, tenant_admin;

-- What PUBLIC may execute (docs/security.md lists it; tests/integration/hostile/surface.rs checks it): the
-- documented API and tenant_internal._allow, the policy helper above. Everything else is revoked.
GRANT EXECUTE ON FUNCTION
    tenant.current_tenant(), tenant.require_tenant(), tenant.current_user_id(),
    tenant.context_status(), tenant.clear_context(),
    tenant.current_claims(), tenant.current_roles(),
    tenant.has_feature(text), tenant.require_feature(text),
    tenant.consume(text, bigint, text), tenant.check(text, bigint), tenant.usage_report(timestamptz, timestamptz),
    tenant.verify_audit(text),
    tenant.can(text, text, jsonb), tenant.authorize(text, text, jsonb),
    tenant.create_role(text, text[]), tenant.drop_role(text),
    tenant.grant_permission(text, text, text, jsonb), tenant.revoke_permission(text, text, text),
    tenant.invite(text, text, integer),
    tenant.effective_roles(), tenant.has_role(text), tenant.can_user(text, text, text, jsonb),
    tenant.pending_invitations(), tenant.revoke_invitation(uuid), tenant.resend_invitation(uuid, integer),
    tenant.log_event(text, jsonb, text),
    tenant.forget_user(text), tenant.adopt(regclass, text, text),
    tenant.set_setting(text, jsonb), tenant.get_setting(text, jsonb),
    tenant.my_tenants(text),
    tenant.create_organization(text, text), tenant.drop_organization(text),
    tenant.set_member_organization(text, text), tenant.current_organization(),
    tenant.isolate(regclass, text), tenant.unisolate(regclass), tenant.protect(regclass, text, text, jsonb),
    tenant_internal._allow()
TO PUBLIC;

-- Registration functions that write shared state (counters, audit chains): tenant_admin.
GRANT EXECUTE ON FUNCTION
    tenant.limit_rows(regclass, text, text), tenant.unlimit_rows(regclass),
    tenant.audit(regclass, text[], boolean), tenant.unaudit(regclass),
    -- CREATE TRIGGER (run as the table's owner by the two above) needs EXECUTE on them; they
    -- read their registration when they fire, so a trigger attached by hand only raises
    tenant_internal._audit_trigger(), tenant_internal._limit_rows_trigger()
TO tenant_admin;
-- The schema is usable by everyone (CREATE POLICY by a table owner names
-- tenant_internal._allow, CREATE TRIGGER by a tenant_admin the trigger functions); what is in
-- it is not: every function but _allow is revoked from PUBLIC above.
GRANT USAGE ON SCHEMA tenant_internal TO PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.check_isolation() TO tenant_admin, tenant_service;
GRANT EXECUTE ON FUNCTION tenant.activity() TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.export_rows(text, regclass) TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.update(text, text, text, jsonb, text, boolean) TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.set_setting_default(text, jsonb) TO tenant_admin;
GRANT SELECT ON tenant.setting_defaults TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.export(text, boolean), tenant.import(text, jsonb), tenant.tenant_stats()
TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.purge(text, boolean), tenant.exclude_from_export(regclass, text[])
TO tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.define_role_template(text, text[], jsonb), tenant.drop_role_template(text)
TO tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.apply_role_templates(text) TO tenant_service, tenant_admin;

GRANT EXECUTE ON FUNCTION tenant.set_context(text, text, boolean, text) TO tenant_service;
GRANT EXECUTE ON FUNCTION tenant.authenticate(text, text) TO tenant_user, tenant_service;
-- Plans, metering, alerts and billing (issue 15)
GRANT SELECT ON tenant.usage_alerts, tenant.usage_events, tenant.metric_daily, tenant.subscriptions,
    tenant.invoices, tenant.invoice_lines, tenant.credits TO PUBLIC;
GRANT EXECUTE ON FUNCTION
    tenant.track(text, numeric, text, jsonb), tenant.has_restriction(text), tenant.plans()
TO PUBLIC;
-- giving usage back or setting a gauge is for the trusted backend: an application role that
-- could would lift its own limits
GRANT EXECUTE ON FUNCTION
    tenant.release(text, bigint, text), tenant.set_usage(text, bigint, text),
    tenant.subscribe(text, text, text, text), tenant.cancel_subscription(text),
    tenant.add_credit(text, numeric, text), tenant.generate_invoices(date),
    tenant.record_payment(uuid, boolean, text)
TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.load_plan(text), tenant.install_default_plans() TO tenant_admin;
-- Where a request lands (issue 14)
GRANT EXECUTE ON FUNCTION
    tenant.add_domain(text), tenant.remove_domain(text), tenant.set_branding(jsonb),
    tenant.define_custom_field(text, text, text, boolean, text[], text), tenant.drop_custom_field(text, text),
    tenant.validate_custom_fields(text, jsonb),
    tenant.complete_step(text, jsonb), tenant.onboarding(),
    tenant.storage_path(text), tenant.register_object(text, bigint), tenant.unregister_object(text)
TO PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.resolve(text, text) TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.get_branding(text) TO tenant_user, tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.set_context_for_host(text, text, text, boolean, text) TO tenant_service;
GRANT EXECUTE ON FUNCTION
    tenant.mark_domain_verified(text, text), tenant.set_tls_status(text, text, timestamptz),
    tenant.pending_domains(interval), tenant.take_events(integer)
TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.define_onboarding_step(text, text, text, boolean, integer), tenant.drop_onboarding_step(text),
    tenant.enforce_custom_fields(regclass, text, text, text), tenant.unenforce_custom_fields(regclass),
    tenant_internal._custom_fields_trigger(),
    tenant.provision_schema(text, text), tenant.migrate_schemas(text, text)
TO tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.add_jwt_key(text, text, text, text, text, timestamptz, timestamptz),
    tenant.deactivate_jwt_key(text),
    tenant.rotate_jwt_key(text, text, text, text, integer),
    tenant.jwt_key_list()
TO tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.add_member(text, text, text[]), tenant.remove_member(text, text),
    tenant.set_plan(text, text), tenant.invoice(text, date), tenant.run_maintenance(interval),
    tenant.accept_invitation(text, text)
TO tenant_service, tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.load_plan(jsonb), tenant.set_limit_override(text, text, bigint, text, double precision),
    tenant.set_feature_override(text, text, boolean), tenant.purge_audit(integer, integer)
TO tenant_admin;
GRANT EXECUTE ON FUNCTION
    tenant.create(text, text, text, text, jsonb, text, text), tenant.set_status(text, text)
TO tenant_service, tenant_admin;

-- Every function and table says what it is (\df+ and \dt+ show it); docs/reference.md has the
-- details and examples.
COMMENT ON SCHEMA tenant IS 'multitenant: tenant isolation, plans, permissions and audit (docs/reference.md).';
COMMENT ON FUNCTION tenant."check"(text, bigint) IS 'Would amount of resource fit the current tenant''s limit now? Consumes nothing.';
COMMENT ON FUNCTION tenant."create"(text, text, text, text, jsonb, text, text) IS 'Create a tenant (slug, name, plan, status, settings over the defaults, region, owner member) with its built-in roles and the role templates; returns its id. For tenant_service and tenant_admin.';
COMMENT ON TABLE tenant.setting_defaults IS 'Settings every new tenant starts with (tenant.set_setting_default).';
COMMENT ON FUNCTION tenant.update(text, text, text, jsonb, text, boolean) IS 'Edit a tenant (display name, slug, settings merged or replaced, region); returns it. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.set_setting(text, jsonb) IS 'Set (or with NULL remove) one setting of the current tenant. For the backend and members allowed settings/update.';
COMMENT ON FUNCTION tenant.get_setting(text, jsonb) IS 'One setting of the current tenant, or fallback.';
COMMENT ON FUNCTION tenant.set_setting_default(text, jsonb) IS 'The value new tenants get for a setting (NULL removes it). For tenant_admin.';
COMMENT ON FUNCTION tenant.accept_invitation(text, text) IS 'Redeem an invitation token for a user (once, before it expires); returns the tenant. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.add_jwt_key(text, text, text, text, text, timestamptz, timestamptz) IS 'Register a key (kid, alg, key, issuer, audience, validity) that verifies JWTs for tenant.authenticate. For tenant_admin.';
COMMENT ON FUNCTION tenant.add_member(text, text, text[]) IS 'Make a user an active member of a tenant with roles. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.audit(regclass, text[], boolean) IS 'Log every INSERT, UPDATE, DELETE and TRUNCATE of a table in tenant.audit_log (hash-chained per tenant). For tenant_admin members who own the table.';
COMMENT ON FUNCTION tenant.add_domain(text) IS 'Register a custom domain for the current tenant (plan feature custom_domains); returns the DNS records (TXT token, CNAME) to create. Resolves once verified.';
COMMENT ON FUNCTION tenant.remove_domain(text) IS 'Remove a custom domain of the current tenant.';
COMMENT ON FUNCTION tenant.mark_domain_verified(text, text) IS 'For the DNS worker: the TXT record of hostname holds token; that claim owns the hostname and resolves, other claims are dropped. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.set_tls_status(text, text, timestamptz) IS 'For the certificate worker: TLS status (pending, active, failed, expired) and expiry of a domain. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.pending_domains(interval) IS 'What the DNS/TLS worker has to do: unverified domains, no active certificate, or one expiring within renew_within. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.resolve(text, text) IS 'The tenant a request is for: verified custom domain, else <slug>.<multitenant.base_domain>, else the header (uuid or slug); NULL when none; MT006 when host and header disagree.';
COMMENT ON FUNCTION tenant.set_context_for_host(text, text, text, boolean, text) IS 'set_context for the tenant tenant.resolve(host, header_tenant) finds; MT002 when none. For tenant_service.';
COMMENT ON FUNCTION tenant.authenticate(text, text) IS 'Enter the tenant named by a JWT verified with tenant.jwt_keys, for the rest of the transaction; MT006 when expected_tenant (the request''s) is another. For tenant_user and tenant_service.';
COMMENT ON FUNCTION tenant.set_branding(jsonb) IS 'Change keys of the current tenant''s branding (checked; null removes one); returns the whole record. Plan feature custom_branding, not with restriction no_custom_branding.';
COMMENT ON FUNCTION tenant.get_branding(text) IS 'Branding of the tenant served at host (login pages, before any login): {slug, name, branding}, or NULL.';
COMMENT ON FUNCTION tenant.define_custom_field(text, text, text, boolean, text[], text) IS 'Define a custom field (text, number, boolean, date, select) of an entity for the current tenant; plan limit custom_fields.';
COMMENT ON FUNCTION tenant.drop_custom_field(text, text) IS 'Drop a custom field of the current tenant.';
COMMENT ON FUNCTION tenant.validate_custom_fields(text, jsonb) IS 'True when the document fits the current tenant''s custom fields of entity, else MT030 naming every bad field.';
COMMENT ON FUNCTION tenant.enforce_custom_fields(regclass, text, text, text) IS 'Check a jsonb column of a table against the custom fields of entity on every INSERT and UPDATE. For tenant_admin members who own the table.';
COMMENT ON FUNCTION tenant.unenforce_custom_fields(regclass) IS 'Stop checking custom fields on a table.';
COMMENT ON FUNCTION tenant_internal._custom_fields_trigger() IS 'Trigger of tenant.enforce_custom_fields; reads its registration in tenant.custom_field_columns.';
COMMENT ON FUNCTION tenant.define_onboarding_step(text, text, text, boolean, integer) IS 'Define an onboarding step every tenant goes through. For tenant_admin.';
COMMENT ON FUNCTION tenant.drop_onboarding_step(text) IS 'Drop an onboarding step. For tenant_admin.';
COMMENT ON FUNCTION tenant.complete_step(text, jsonb) IS 'Mark an onboarding step done for the current tenant. For the backend and members allowed onboarding/update.';
COMMENT ON FUNCTION tenant.onboarding() IS 'The current tenant''s onboarding checklist, in order.';
COMMENT ON FUNCTION tenant.take_events(integer) IS 'Take queued events (tenant.created, domain.added, ...) for delivery outside the database, in the caller''s transaction. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.storage_path(text) IS 'tenants/<current tenant id>/<sanitised filename>: where the current tenant keeps a file. MT001 without a context.';
COMMENT ON FUNCTION tenant.register_object(text, bigint) IS 'Record an object of the current tenant (a storage_path) and its size against the storage limit; returns the total bytes.';
COMMENT ON FUNCTION tenant.unregister_object(text) IS 'Forget an object of the current tenant; returns the total bytes.';
COMMENT ON FUNCTION tenant.provision_schema(text, text) IS 'Place a tenant in a schema of its own created from a template schema, guarded by RLS; set_context puts it on the search_path. For tenant_admin.';
COMMENT ON FUNCTION tenant.migrate_schemas(text, text) IS 'Apply a migration (version, SQL) to every tenant schema that lacks it, as the caller, recording it. For tenant_admin.';
COMMENT ON TABLE tenant.domains IS 'Custom domains of tenants (tenant.add_domain); verified and TLS state set by a worker.';
COMMENT ON TABLE tenant.branding IS 'Branding record of each tenant (tenant.set_branding).';
COMMENT ON TABLE tenant.custom_fields IS 'Custom field definitions per tenant and entity (tenant.define_custom_field).';
COMMENT ON TABLE tenant.custom_field_columns IS 'jsonb columns checked against custom fields (tenant.enforce_custom_fields).';
COMMENT ON TABLE tenant.onboarding_steps IS 'Onboarding steps every tenant goes through (tenant.define_onboarding_step).';
COMMENT ON TABLE tenant.onboarding_progress IS 'Onboarding steps each tenant completed (tenant.complete_step).';
COMMENT ON TABLE tenant.outbox IS 'Events for workers outside the database (tenant.take_events).';
COMMENT ON TABLE tenant.storage_objects IS 'Objects tenants keep outside the database, with their size (tenant.register_object).';
COMMENT ON TABLE tenant.schema_migrations IS 'Migrations applied to tenant schemas (tenant.migrate_schemas).';
COMMENT ON FUNCTION tenant.authorize(text, text, jsonb) IS 'Like tenant.can, but raises MT020 when the current user may not do action on resource.';
COMMENT ON FUNCTION tenant.can(text, text, jsonb) IS 'May the current user do action on resource (role inheritance, wildcards, conditions on ctx)? False without a context.';
COMMENT ON FUNCTION tenant.clear_context() IS 'Leave the tenant context (for the session).';
COMMENT ON FUNCTION tenant.consume(text, bigint, text) IS 'Atomically use amount of resource (per key, when given) in the current window of the current tenant; returns what is left (NULL: unlimited); MT010 past a hard limit, nothing consumed.';
COMMENT ON FUNCTION tenant.release(text, bigint, text) IS 'Give back amount of resource in the current window (never below 0); returns what is left. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.set_usage(text, bigint, text) IS 'Set a gauge (storage, seats) of the current tenant to value; recorded, not refused; alerts on thresholds. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.track(text, numeric, text, jsonb) IS 'Record a usage event of any metric for the current tenant (tenant.usage_events, rolled up daily in tenant.metric_daily); returns its id.';
COMMENT ON FUNCTION tenant.has_restriction(text) IS 'Does the current tenant''s plan carry the restriction (e.g. no_api_access), not lifted by an override? False without context.';
COMMENT ON FUNCTION tenant.plans() IS 'The plans loaded, with display names and limits.';
COMMENT ON FUNCTION tenant.load_plan(text) IS 'Create or replace a plan from its YAML (as the design documents write plans) or JSON text. For tenant_admin.';
COMMENT ON FUNCTION tenant.install_default_plans() IS 'Load the free, pro, premium and enterprise plans the design documents describe; returns their keys. For tenant_admin.';
COMMENT ON FUNCTION tenant.subscribe(text, text, text, text) IS 'Start (or restart) a tenant''s subscription, trialing or active, optionally on another plan. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.cancel_subscription(text) IS 'Cancel a tenant''s subscription (no more invoices). For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.add_credit(text, numeric, text) IS 'Grant a tenant a credit, applied to its next invoices. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.generate_invoices(date) IS 'Store one invoice with numbered lines per subscribed tenant for the month (idempotent, safe concurrently); returns how many were created. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.record_payment(uuid, boolean, text) IS 'A payment provider''s verdict on an invoice: paid (subscription active, billing suspension lifted) or failed (past due; suspended after multitenant.payment_grace). For tenant_service and tenant_admin.';
COMMENT ON TABLE tenant.usage_alerts IS 'Usage thresholds crossed (multitenant.alert_thresholds), one per tenant, resource, key, window and threshold.';
COMMENT ON TABLE tenant.usage_events IS 'Usage events of any metric (tenant.track), partitioned by month.';
COMMENT ON TABLE tenant.usage_events_default IS 'Usage events outside the monthly partitions run_maintenance creates.';
COMMENT ON TABLE tenant.metric_daily IS 'Daily totals of tracked metrics per tenant.';
COMMENT ON TABLE tenant.subscriptions IS 'One subscription per tenant: plan, status, period.';
COMMENT ON TABLE tenant.invoices IS 'Invoices stored by tenant.generate_invoices, one per tenant and month.';
COMMENT ON TABLE tenant.invoice_lines IS 'Numbered lines of stored invoices.';
COMMENT ON TABLE tenant.credits IS 'Credits granted to tenants and the invoice each was applied to.';
COMMENT ON FUNCTION tenant.context_status() IS 'The current context (tenant, user, expiry, read-only) or why it does not verify.';
COMMENT ON FUNCTION tenant.create_role(text, text[]) IS 'Create or redefine a role of the current tenant inheriting other roles (cycles refused).';
COMMENT ON FUNCTION tenant.current_claims() IS 'The verified JWT claims of the current context, or NULL.';
COMMENT ON FUNCTION tenant.current_roles() IS 'The roles the current user holds directly (JWT roles claim and membership roles), sorted; empty without a context.';
COMMENT ON FUNCTION tenant.effective_roles() IS 'Every role the current user holds in the current tenant (membership and JWT roles with what they inherit), sorted; empty without a context.';
COMMENT ON FUNCTION tenant.has_role(text) IS 'Does the current user hold role in the current tenant, directly or by inheritance? False without a context.';
COMMENT ON FUNCTION tenant.can_user(text, text, text, jsonb) IS 'May user_id (by its membership roles in the current tenant) do action on resource? For tenant_service, tenant_admin and members allowed members/manage.';
COMMENT ON FUNCTION tenant.pending_invitations() IS 'The current tenant''s invitations that can still be accepted (no tokens). For tenant_service, tenant_admin and members allowed members/invite.';
COMMENT ON FUNCTION tenant.revoke_invitation(uuid) IS 'Withdraw a pending invitation of the current tenant; its token stops working.';
COMMENT ON FUNCTION tenant.resend_invitation(uuid, integer) IS 'A new token (returned) for a pending invitation of the current tenant; the old token stops working.';
COMMENT ON FUNCTION tenant.log_event(text, jsonb, text) IS 'Write an application event (operation APP) into the current tenant''s audit chain, with the context''s user.';
COMMENT ON FUNCTION tenant.current_tenant() IS 'The current tenant''s id from the verified context, or NULL (no rows of isolated tables then).';
COMMENT ON FUNCTION tenant.current_user_id() IS 'The current user id from the verified context, or NULL.';
COMMENT ON FUNCTION tenant.deactivate_jwt_key(text) IS 'Stop accepting tokens signed with a key, at once in every session. For tenant_admin.';
COMMENT ON FUNCTION tenant.drop_role(text) IS 'Drop a role of the current tenant and its permissions.';
COMMENT ON FUNCTION tenant.grant_permission(text, text, text, jsonb) IS 'Let a role of the current tenant do action on resource (wildcards), when the condition holds.';
COMMENT ON FUNCTION tenant.has_feature(text) IS 'Does the current tenant''s plan (with overrides) include the feature? False without a context.';
COMMENT ON FUNCTION tenant.invite(text, text, integer) IS 'Invite an e-mail address to the current tenant with a role; returns the single-use token (only its hash is stored).';
COMMENT ON FUNCTION tenant.invoice(text, date) IS 'Invoice lines of a tenant for a month: the plan''s price and overage above monthly limits. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.jwt_key_list() IS 'The JWT keys without their key material. For tenant_admin.';
COMMENT ON FUNCTION tenant.isolate(regclass, text) IS 'Enable and force RLS with tenant policies, a default and an index on the tenant column, on the table and every partition and child. For the table owner. Idempotent.';
COMMENT ON FUNCTION tenant.limit_rows(regclass, text, text) IS 'Count each tenant''s rows of a table against the limit of a resource; an INSERT past it raises MT010. For tenant_admin members who own the table.';
COMMENT ON FUNCTION tenant.load_plan(jsonb) IS 'Create or replace a plan from a JSON document (price, features, limits). For tenant_admin.';
COMMENT ON FUNCTION tenant.protect(regclass, text, text, jsonb) IS 'Restrictive per-command policies that call tenant.can(resource, read|create|update|delete, ctx) with ctx built from the row (owner_column as owner_id, columns: field -> column); rows for another owner also need assign. With Citus the checks are ANDed into the isolated table''s policies. For the table owner.';
COMMENT ON FUNCTION tenant.purge_audit(integer, integer) IS 'Remove audit entries past retention (chains stay verifiable); returns how many. For tenant_admin.';
COMMENT ON FUNCTION tenant.remove_member(text, text) IS 'Remove a user from a tenant. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.require_feature(text) IS 'Raise MT011 unless the current tenant has the feature; true otherwise (usable in policies and checks).';
COMMENT ON FUNCTION tenant.require_tenant() IS 'The current tenant''s id; MT001 without a context, MT003 when read-only or inactive. Default and write check of isolated tables.';
COMMENT ON FUNCTION tenant.revoke_permission(text, text, text) IS 'Remove a role''s permissions for action on resource; returns how many.';
COMMENT ON FUNCTION tenant.rotate_jwt_key(text, text, text, text, integer) IS 'Add a new key and let the old one expire after an overlap. For tenant_admin.';
COMMENT ON FUNCTION tenant.run_maintenance(interval) IS 'Roll usage counters into daily history, drop old windows and history; suspend expired trials, delete tenants suspended past multitenant.suspension_grace, purge deleted ones past their retention (schedule with pg_cron). For tenant_admin and tenant_service.';
COMMENT ON FUNCTION tenant.set_context(text, text, boolean, text) IS 'Enter a tenant (uuid or slug) as a user, for the transaction (or the session), for a request from client_ip (signed into the context, recorded by the audit trail). For tenant_service.';
COMMENT ON FUNCTION tenant.set_feature_override(text, text, boolean) IS 'Grant (true) or withhold (false) a feature for one tenant regardless of its plan; NULL removes the override. For tenant_admin.';
COMMENT ON FUNCTION tenant.set_limit_override(text, text, bigint, text, double precision) IS 'Give one tenant its own limit for a resource (-1: unlimited). For tenant_admin.';
COMMENT ON FUNCTION tenant.set_plan(text, text) IS 'Move a tenant to another plan. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.set_status(text, text) IS 'Move a tenant along its lifecycle (provisioning, trial, active, suspended, deleted, purged); MT040 for a transition not allowed.';
COMMENT ON FUNCTION tenant.unaudit(regclass) IS 'Stop auditing a table (its entries stay). For tenant_admin members who own the table.';
COMMENT ON FUNCTION tenant.unisolate(regclass) IS 'Reverse tenant.isolate on a table and everything below it. For the table owner.';
COMMENT ON FUNCTION tenant.unlimit_rows(regclass) IS 'Stop counting a table''s rows. For tenant_admin members who own the table.';
COMMENT ON FUNCTION tenant.usage_report(timestamptz, timestamptz) IS 'Usage of the current tenant per limited resource: window used, percent of the limit, reset time, used in a range.';
COMMENT ON FUNCTION tenant.verify_audit(text) IS 'Walk a tenant''s audit chains (NULL: the global ones) and report the first broken link.';
COMMENT ON FUNCTION tenant_internal._audit_content(uuid, text, text, text, text, text, timestamptz, bigint, text, text, text) IS 'Internal: the bytes an audit entry''s hash covers.';
COMMENT ON FUNCTION tenant_internal._lifecycle() IS 'Internal: the lifecycle moves of tenant.run_maintenance.';
COMMENT ON FUNCTION tenant_internal._audit_guard() IS 'Internal: keeps tenant.audit_log and tenant.audit_heads append-only.';
COMMENT ON FUNCTION tenant_internal._audit_link(bytea, bigint, bytea) IS 'Internal: the hash of a chain''s next audit entry.';
COMMENT ON FUNCTION tenant_internal._audit_trigger() IS 'Internal: the audit trigger tenant.audit attaches.';
COMMENT ON FUNCTION tenant_internal._chain_tenant(text) IS 'Internal: the tenant an audit chain belongs to.';
COMMENT ON FUNCTION tenant_internal._invalidate(oid) IS 'Internal: sends a cache invalidation to every backend.';
COMMENT ON FUNCTION tenant_internal._limit_rows_trigger() IS 'Internal: the row-count trigger tenant.limit_rows attaches.';
COMMENT ON FUNCTION tenant_internal._on_ddl() IS 'Internal: isolates partitions and children created or attached below an isolated table.';
COMMENT ON FUNCTION tenant_internal._tables_changed() IS 'Internal: invalidates the per-backend caches when the extension''s tables change.';
COMMENT ON FUNCTION tenant_internal._tenant_id(text) IS 'Internal: the tenant resolver (uuid or slug).';
COMMENT ON TABLE tenant.secret IS 'The per-database key that signs context tokens; readable only by the extension owner.';
COMMENT ON TABLE tenant.jwt_keys IS 'Keys that verify JWTs for tenant.authenticate; readable only by the extension owner (tenant.jwt_key_list shows them without key material).';
COMMENT ON TABLE tenant.role_templates IS 'Roles defined once for every tenant (tenant.define_role_template), copied by tenant.create and tenant.apply_role_templates.';
COMMENT ON FUNCTION tenant.define_role_template(text, text[], jsonb) IS 'Define or redefine a role template (inherits, permissions in either shape); copied into tenants created from now on. For tenant_admin.';
COMMENT ON FUNCTION tenant.drop_role_template(text) IS 'Drop a role template; tenants keep the roles it gave them. For tenant_admin.';
COMMENT ON FUNCTION tenant.apply_role_templates(text) IS 'Copy every role template into a tenant (NULL: every tenant); returns the number of roles applied. For tenant_service and tenant_admin.';
COMMENT ON TABLE tenant.organizations IS 'Organizations inside a tenant (B2B); a member belongs to at most one (members.organization_id).';
COMMENT ON FUNCTION tenant.create_organization(text, text) IS 'Create an organization (slug, name) in the current tenant; returns its id. For the backend and members allowed organizations/manage.';
COMMENT ON FUNCTION tenant.drop_organization(text) IS 'Drop an organization (slug or id) of the current tenant; its members stay, without an organization.';
COMMENT ON FUNCTION tenant.set_member_organization(text, text) IS 'Put a member of the current tenant into an organization (slug or id; NULL: none).';
COMMENT ON FUNCTION tenant.current_organization() IS 'The organization of the current user in the current tenant, or NULL.';
COMMENT ON TABLE tenant.export_exclusions IS 'Columns tenant.export leaves out, per table (tenant.exclude_from_export).';
COMMENT ON TABLE tenant.protected_tables IS 'Tables guarded by tenant.protect: resource, condition fields (field, column), owner column.';
COMMENT ON FUNCTION tenant.export(text, boolean) IS 'One tenant''s data as one JSON document (registered tables, members, roles, permissions, organizations, usage; audit with include_audit). For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.import(text, jsonb) IS 'Load an export document into a tenant in one transaction (tables and columns checked, tenant column rewritten, row limits kept); returns counts.';
COMMENT ON FUNCTION tenant.exclude_from_export(regclass, text[]) IS 'Leave sensitive columns of a table out of every export. For tenant_admin members who own the table.';
COMMENT ON FUNCTION tenant.purge(text, boolean) IS 'Erase a deleted tenant''s data everywhere (tables, members, roles, usage, audit entries), anonymise its row; returns the receipt. For tenant_admin.';
COMMENT ON FUNCTION tenant.my_tenants(text) IS 'The tenants the current user belongs to, with roles and organization (tenant_service/tenant_admin may name a user).';
COMMENT ON FUNCTION tenant.tenant_stats() IS 'Per tenant: estimated rows in registered tables, audit entries, last activity, current usage. For tenant_admin and tenant_service.';
COMMENT ON FUNCTION tenant.export_rows(text, regclass) IS 'One tenant''s rows of one registered table, one jsonb per row, streamed. For tenant_service and tenant_admin.';
COMMENT ON FUNCTION tenant.forget_user(text) IS 'Erase one user inside the current tenant (membership, accepted invitations, inviter name). For the backend and members allowed members/manage.';
COMMENT ON FUNCTION tenant.adopt(regclass, text, text) IS 'Make an existing table multi-tenant: add the tenant column, give its rows to one tenant in batches, NOT NULL, isolate. For the table owner.';
COMMENT ON TABLE tenant.backend_contexts IS 'Internal: the tenant each backend entered last (multitenant.track_activity).';
COMMENT ON FUNCTION tenant.activity() IS 'Backends of this database with the tenant and user they entered last (multitenant.track_activity = on). For tenant_admin and tenant_service.';
COMMENT ON TABLE tenant.members IS 'Who belongs to which tenant, with roles; a user may belong to many tenants.';
COMMENT ON TABLE tenant.plans IS 'Plans: price, currency, billing cycle, features, restrictions (tenant.load_plan).';
COMMENT ON TABLE tenant.plan_limits IS 'Limits per plan and resource (-1 = unlimited), with their period and overage price.';
COMMENT ON TABLE tenant.tenant_limits IS 'Per-tenant limit overrides (tenant.set_limit_override).';
COMMENT ON TABLE tenant.tenant_features IS 'Per-tenant feature overrides (tenant.set_feature_override).';
COMMENT ON TABLE tenant.usage_counters IS 'One counter per tenant, resource and window (tenant.consume, tenant.limit_rows).';
COMMENT ON TABLE tenant.usage_daily IS 'Daily usage history rolled up by tenant.run_maintenance.';
COMMENT ON TABLE tenant.row_limits IS 'Tables whose rows count against a limit (tenant.limit_rows).';
COMMENT ON TABLE tenant.audit_log IS 'Append-only audit trail, hash-chained per tenant (tenant.audit, tenant.verify_audit); an entry is readable as far as its table is.';
COMMENT ON TABLE tenant.audit_heads IS 'The last entry of each audit chain (and where a purged chain now starts).';
COMMENT ON TABLE tenant.audited_tables IS 'Tables audited with tenant.audit, with their ignored columns and changed_only setting.';
COMMENT ON TABLE tenant.roles IS 'Roles per tenant (built-in and custom) and what they inherit.';
COMMENT ON TABLE tenant.permissions IS 'Permissions of roles: resource, action, optional condition.';
COMMENT ON TABLE tenant.invitations IS 'Invitations to a tenant (only the token''s SHA-256 is stored); single use, expiring.';
COMMENT ON FUNCTION tenant_internal._event(uuid, text, jsonb) IS 'Internal: logs a management event in a tenant''s audit chain.';
COMMENT ON FUNCTION tenant_internal._audit_content_all(uuid, oid, text, text, text, text, text, text, text, timestamptz, bigint, text, text, text, text, text) IS 'Internal: the bytes an audit entry''s hash covers (hash format 2: every column).';
COMMENT ON FUNCTION tenant_internal._audit_verify_node(uuid) IS 'Internal (Citus, on a worker): verify a tenant''s audit chains there, for the coordinator''s verify_audit.';
COMMENT ON FUNCTION tenant_internal._audit_purge_node(integer, integer, text[]) IS 'Internal (Citus, on a worker): remove its audit entries past retention, for the coordinator''s purge_audit.';
COMMENT ON FUNCTION tenant_internal._audit_erase_node(uuid) IS 'Internal (Citus, on a worker): erase a purged tenant''s audit chains there.';
