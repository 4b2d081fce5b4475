"""The ExpandCandidates, SelectModel and RegisterModel states."""
