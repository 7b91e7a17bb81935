"""End-to-end tests: real clients (skopeo, podman, oras) against a running registry."""
