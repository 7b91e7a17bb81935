"""The UI's pages and forms, one module per area."""
