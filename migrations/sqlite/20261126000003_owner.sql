-- With JWT auth a pending verification belongs to (user, number): `owner` is a keyed digest of
-- the user's `sub` (NULL for API-key callers). One pending verification per owner and number.
ALTER TABLE verifications ADD COLUMN owner TEXT;
DROP INDEX verifications_one_pending;
CREATE UNIQUE INDEX verifications_one_pending_per_owner
    ON verifications (phone_lookup, COALESCE(owner, '')) WHERE status = 'pending';
