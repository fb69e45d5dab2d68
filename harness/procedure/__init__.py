"""The upgrade procedure: its phases, the safety steps they are built from, the run's record and
verdict, the guard."""
