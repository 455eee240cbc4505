"""What every stage shares, importing no torch: stages import this package, never each other."""
