"""Training of the re-ranker: SFT on traces and DAPO with verifiable rewards."""
