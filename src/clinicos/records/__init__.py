"""The clinical record: patients, encounters, notes, observations, conditions, allergies,
the medication list and prescriptions, with identifying fields encrypted at rest."""
