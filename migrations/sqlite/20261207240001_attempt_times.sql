-- A refusal row may stand for several (issue 24): under a flood, a client's refusals beyond the
-- first ten of one reason in a ten-second window are written as one summary row at the window's
-- end, with no number, and `times` says how many it stands for. Every other row: 1.
ALTER TABLE verification_attempts ADD COLUMN times INTEGER NOT NULL DEFAULT 1;
