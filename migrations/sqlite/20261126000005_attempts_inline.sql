-- Send attempts move into their verification's row: `attempts` lists them, oldest first, as
-- `<attempt sid> <channel> <sent at, ms>` separated by commas. A send then writes one row instead
-- of three B-tree entries (a row and two index entries in send_attempts), and reading a
-- verification is one lookup instead of two. PostgreSQL keeps its send_attempts table.
ALTER TABLE verifications ADD COLUMN attempts TEXT NOT NULL DEFAULT '';
UPDATE verifications SET attempts = COALESCE(
    (SELECT group_concat(a.sid || ' ' || a.channel || ' ' || a.sent_at, ',' ORDER BY a.sent_at, a.rowid)
     FROM send_attempts a WHERE a.verification_sid = verifications.sid),
    '');
DROP TABLE send_attempts;
