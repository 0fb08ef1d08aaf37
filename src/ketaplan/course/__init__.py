"""The clinic's record of each patient's real course: infusions, levels, pain diary, labs, consent, audit."""
