"""The domain layer: business rules called by HTTP routes, MCP tools and jobs alike."""
