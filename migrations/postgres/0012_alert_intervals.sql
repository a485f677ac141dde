-- Drift alert rules (issue #19): how often each rule is evaluated, in minutes (1 = at every
-- pass of the evaluator, as before).
ALTER TABLE alert_rules ADD COLUMN interval_minutes BIGINT NOT NULL DEFAULT 1;
