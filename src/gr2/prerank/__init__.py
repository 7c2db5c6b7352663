"""prerank stage."""
