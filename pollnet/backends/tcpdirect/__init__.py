"""tcpdirect."""
