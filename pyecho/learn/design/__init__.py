"""Which measurements to make: what each protocol tells about each target, forward selection
over measurements, identifiability maps."""
