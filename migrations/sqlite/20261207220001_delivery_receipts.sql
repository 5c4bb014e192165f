-- What delivery learned of a send attempt (issue 22): the vendor that carried it goes into
-- `vendor` (instead of `local`), the vendor's own id of the message, how many vendors of the
-- route were passed over first, and the delivery status its receipts moved forward
-- (`queued` < `sent` < `delivered` / `undelivered` / `failed`) with the vendor's error code.
-- NULL before delivery, and for rows without a delivery (refusals, checks, Twilio Verify).
ALTER TABLE verification_attempts ADD COLUMN vendor_message_id TEXT;
ALTER TABLE verification_attempts ADD COLUMN failovers INTEGER;
ALTER TABLE verification_attempts ADD COLUMN delivery_status TEXT;
ALTER TABLE verification_attempts ADD COLUMN delivery_error TEXT;
-- A receipt names the vendor and its message id.
CREATE INDEX verification_attempts_by_vendor_message
    ON verification_attempts (vendor, vendor_message_id) WHERE vendor_message_id IS NOT NULL;
