"""Black-box OCI Distribution spec v1.1 conformance suite (see conftest.py)."""
