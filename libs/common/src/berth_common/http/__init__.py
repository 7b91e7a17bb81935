"""HTTP pieces shared by the services: error rendering, request context, zero-copy files."""
