"""The MCP gateway: teams' MCP servers behind one authenticated ``/mcp``, deny by default."""
