"""Building blocks shared by edgevision's models."""
