-- What a send attempt's message was (issue 21): the built-in locale it was written in, its SMS
-- encoding (`gsm7` or `ucs2`) and how many SMS parts it took. NULL for rows without a rendered
-- message (refusals, checks, sends by Twilio Verify, rows written before this migration).
ALTER TABLE verification_attempts ADD COLUMN locale TEXT;
ALTER TABLE verification_attempts ADD COLUMN encoding TEXT;
ALTER TABLE verification_attempts ADD COLUMN segments INTEGER;
