-- Drift alerts (issue #19): an alert keeps the terms of its rule as they were when it opened
-- (pipeline, step, metric, reason, comparison, threshold), so a rule changed since (which
-- resolves its open alert) does not rewrite what its past alerts say. Alerts stored before
-- take their rule's present terms, the best there is.
ALTER TABLE alerts ADD COLUMN pipeline TEXT;
ALTER TABLE alerts ADD COLUMN step TEXT;
ALTER TABLE alerts ADD COLUMN metric TEXT;
ALTER TABLE alerts ADD COLUMN reason TEXT;
ALTER TABLE alerts ADD COLUMN comparison TEXT;
ALTER TABLE alerts ADD COLUMN threshold DOUBLE PRECISION;
UPDATE alerts SET (pipeline, step, metric, reason, comparison, threshold) = (
    SELECT r.pipeline, r.step, r.metric, r.reason, r.comparison, r.threshold
    FROM alert_rules r WHERE r.id = alerts.rule_id
);
