"""FastMCP servers, one per practice area: thin tool faces over app/services."""
