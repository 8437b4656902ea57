"""remote: SSH connections, commands on many hosts at once, and facts about a host."""
