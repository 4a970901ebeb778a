-- Opening a handoff first looks for an open one on the same focus (a resent
-- discharge, a referral updated). Without this index that lookup walked every open
-- handoff: measured, creates/s fell as open referrals accumulated.
CREATE INDEX handoffs_focus ON handoffs (focus, kind);
