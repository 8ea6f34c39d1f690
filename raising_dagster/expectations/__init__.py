"""Data-quality invariants of the corpus, and the checks that guard each asset with them."""
