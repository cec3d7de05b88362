"""The sanity check's probes: each observes one symptom during or after the steps, and judges
it into findings that name the symptom, what it points at and what to do."""
