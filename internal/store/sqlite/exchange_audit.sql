-- Exchange schema, version 3: what an audit entry says about a token or a
-- device, as columns (registry.AuditEntry), with the indexes of the audit
-- query (registry.AuditQuery). device_key is device_name in lower case
-- (registry.DeviceKey), for the case-insensitive device filter.
ALTER TABLE audit ADD COLUMN reason            TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN token_id          TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN token_fingerprint TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN token_region      TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN device_id         TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN device_name       TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN device_key        TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN device_version    TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN min_version       TEXT NOT NULL DEFAULT '';

-- Entries written before version 3 said all this in target and detail
-- only. They are read here once, from the exact texts that versions 1 and
-- 2 wrote (register.go, and the rate limiter in api.go); no program reads
-- these texts after.

-- Tokens created and revoked: the target is the token ID.
UPDATE audit SET token_id = target WHERE action IN ('token.create', 'token.revoke');

-- Devices registered, deregistered, edited and deleted: the target is
-- "ID NAME", the ID a 36-character UUID.
UPDATE audit SET device_id = substr(target, 1, 36), device_name = substr(target, 38)
WHERE (action IN ('device.deregister', 'device.edit', 'device.delete') OR (action = 'device.register' AND outcome = 'success'))
	AND substr(target, 37, 1) = ' ';

-- A registration: "registered ESA NAME version V serial "S" connector "C" with token ID".
UPDATE audit SET
	token_id = substr(detail, length(detail) - 35),
	device_version = substr(detail, length(device_name) + 25,
		instr(substr(detail, length(device_name) + 25), ' serial "') - 1)
WHERE action = 'device.register' AND outcome = 'success'
	AND substr(detail, length(detail) - 47, 12) = ' with token '
	AND substr(detail, 16, length(device_name) + 9) = device_name || ' version '
	AND instr(substr(detail, length(device_name) + 25), ' serial "') > 0;

-- A refused registration: the target is the host name, the detail its reason.
UPDATE audit SET device_name = target, reason = CASE
		WHEN detail LIKE 'version % below the minimum %' THEN 'version_below_minimum'
		WHEN detail LIKE 'malformed token%' THEN 'token_malformed'
		WHEN detail LIKE 'unknown token%' THEN 'token_unknown'
		WHEN detail LIKE 'token from another region: issued by %, presented to %' THEN 'token_other_region'
		WHEN detail LIKE 'revoked token % (%' THEN 'token_revoked'
		WHEN detail LIKE 'expired token % (%' THEN 'token_expired'
		WHEN detail LIKE 'token % used up (%' OR detail LIKE 'token used up%' THEN 'token_used_up'
		WHEN detail LIKE 'rate limited:%' THEN 'rate_limited'
		ELSE 'invalid_request'
	END
WHERE action = 'device.register' AND outcome = 'failure';

-- "version V below the minimum M"
UPDATE audit SET
	device_version = substr(detail, 9, instr(detail, ' below the minimum ') - 9),
	min_version = substr(detail, instr(detail, ' below the minimum ') + 19)
WHERE reason = 'version_below_minimum';
-- "unknown token FINGERPRINT (…"; older entries have no fingerprint.
UPDATE audit SET token_fingerprint = substr(detail, 15, 16)
WHERE reason = 'token_unknown' AND substr(detail, 31, 2) = ' (';
-- "token from another region: issued by REGION, presented to REGION"
UPDATE audit SET token_region = substr(detail, 38, instr(detail, ', presented to ') - 38)
WHERE reason = 'token_other_region';
-- "revoked token ID (…", "expired token ID (…", "token ID used up (…"
UPDATE audit SET token_id = substr(detail, 15, instr(detail, ' (') - 15)
WHERE reason IN ('token_revoked', 'token_expired');
UPDATE audit SET token_id = substr(detail, 7, instr(detail, ' used up (') - 7)
WHERE reason = 'token_used_up' AND detail LIKE 'token % used up (%';

-- Fingerprints of the tokens this store holds, and the device key.
UPDATE audit SET token_fingerprint = (SELECT substr(hash, 1, 16) FROM tokens WHERE tokens.id = audit.token_id)
WHERE token_id != '' AND token_fingerprint = '' AND EXISTS (SELECT 1 FROM tokens WHERE tokens.id = audit.token_id);
UPDATE audit SET device_key = lower(device_name) WHERE device_name != '';

CREATE INDEX audit_org_time ON audit (org_id, time, id);
CREATE INDEX audit_org_action ON audit (org_id, action, id);
CREATE INDEX audit_org_device_id ON audit (org_id, device_id, id);
CREATE INDEX audit_org_device_key ON audit (org_id, device_key, id);
CREATE INDEX audit_org_token_id ON audit (org_id, token_id, id);
CREATE INDEX audit_org_token_fingerprint ON audit (org_id, token_fingerprint, id);
