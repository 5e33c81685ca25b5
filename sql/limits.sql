--
-- limits: what a session can put into an event is bounded when it is set
-- (audit.max_context_size), so that no session can make an event the
-- writer cannot read back.  (audit.max_event_size, a reload setting, is
-- tested in TAP 050.)
--
SHOW audit.max_context_size;
SHOW audit.max_event_size;

-- at the limit: accepted; one byte more: refused, naming the setting
SELECT length(set_config('audit.user_id', repeat('u', 64 * 1024), false)) AS accepted;
SELECT set_config('audit.user_id', repeat('u', 64 * 1024 + 1), false);
SET audit.request_id = 'r';
SELECT set_config('audit.request_id', repeat('r', 70000), false);
SHOW audit.request_id;
SELECT set_config('audit.service_name', repeat('s', 65537), false);
SELECT set_config('audit.user_info', '{"a": "' || repeat('i', 65536) || '"}', false);
SELECT set_config('audit.extra', '{"a": "' || repeat('e', 65536) || '"}', false);
SELECT activity_audit.set_context(repeat('u', 65537));
-- SET LOCAL and function-level settings too
BEGIN;
SELECT set_config('audit.user_id', repeat('u', 65537), true);
ROLLBACK;
RESET audit.user_id;
RESET audit.request_id;

-- the limits are the superuser's (reload settings)
SET audit.max_context_size = '1MB';
SET audit.max_event_size = '1GB';
CREATE ROLE regress_limits_role;
SET ROLE regress_limits_role;
SELECT set_config('audit.user_id', repeat('u', 65537), false);
RESET ROLE;
DROP ROLE regress_limits_role;
