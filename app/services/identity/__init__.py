"""Who may act: staff users and MCP clients."""
